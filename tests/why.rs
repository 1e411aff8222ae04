//! `GET /why/{hash}` and `peerix why`: each kind of answer from real nodes on loopback. A holds
//! fixture paths signed by a key B trusts (and the fixture's secrets, which its filter hides), C
//! holds a path signed by a key nobody trusts, B holds nothing and knows both.

mod common;

use std::process::{Command, Output};
use std::time::Duration;

use common::{curl, eventually, hash_part, ChrootStore, Fixture, NixKey, Peerix};
use serde_json::Value;

const LOOPBACK: &str = "/ip4/127.0.0.1/tcp/0";
/// A hash no store holds: Nix's base-32, with none of the letters it lacks.
const NOBODYS: &str = "0123456789abcdfghijklmnpqrsvwxyz";

fn why_of(node: &Peerix, target: &str) -> (u16, Value) {
    let (status, body) = node.get(&format!("/why/{target}"));
    let answer = serde_json::from_slice(&body)
        .unwrap_or_else(|e| panic!("{target}: {e}: {}", String::from_utf8_lossy(&body)));
    (status, answer)
}

fn verdict_of(node: &Peerix, target: &str) -> Value {
    let (status, answer) = why_of(node, target);
    assert_eq!(status, 200, "{target}: {answer}");
    answer
}

fn peerix_why(node_url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_peerix"))
        .args(["why", "--api", node_url])
        .args(args)
        .output()
        .unwrap()
}

fn peer_id(p2p_addr: &str) -> String {
    p2p_addr.rsplit("/p2p/").next().unwrap().to_owned()
}

#[test]
fn why_explains_each_kind_of_answer() {
    let f = Fixture::get();
    let key = NixKey::generate("why-test-1");
    let stranger = NixKey::generate("stranger-1");
    let a_store = ChrootStore::signed(&key, &[&f.app, &f.secrets]);
    let scratch = tempfile::TempDir::new().unwrap();
    let c_store = ChrootStore::empty();
    let c_path = c_store.add_file(
        scratch.path(),
        "why-stranger-file",
        b"signed by a stranger\n",
    );
    c_store.sign(&stranger.secret, &[&c_path]);
    let trusting = [
        "--listen-addrs",
        LOOPBACK,
        "--trusted-public-key",
        &key.public,
    ];
    let a = Peerix::serve(a_store.root(), &trusting);
    let c = Peerix::serve(c_store.root(), &trusting);
    let (a_addr, c_addr) = (a.p2p_addr(), c.p2p_addr());
    let b_store = ChrootStore::empty();
    let both = format!("{a_addr},{c_addr}");
    let b = Peerix::serve(
        b_store.root(),
        &[&trusting[..], &["--bootstrap-peers", &both]].concat(),
    );
    // A announces app and lib (not the secrets), C its one path.
    eventually(Duration::from_secs(20), "the peers' indexes", || {
        b.status()["peers"]["paths"] == 3
    });

    // Own store, asked with a file inside the store path, over the CLI and the route.
    let app_hash = hash_part(&f.app);
    let own = verdict_of(&a, app_hash);
    assert_eq!(own["verdict"], "own_store", "{own}");
    assert_eq!(own["store_path"], f.app.as_str());
    assert_eq!(own["signed_by"], serde_json::json!(["why-test-1"]), "{own}");
    let inside = format!("{}/bin/app", f.app);
    let out = peerix_why(&a.url(), &[&inside]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.starts_with("own_store: "), "{text}");
    assert!(text.contains("\n  signed by why-test-1\n"), "{text}");
    println!("peerix why {inside}:\n{text}");

    // Filtered: the store has it, a default pattern hides it, and says which.
    let secrets = f.secrets.trim_start_matches("/nix/store/");
    let filtered = verdict_of(&a, secrets);
    assert_eq!(filtered["verdict"], "filtered", "{filtered}");
    assert_eq!(filtered["pattern"], "*-secrets-*", "{filtered}");
    assert_eq!(a.get(&format!("/{}.narinfo", hash_part(&f.secrets))).0, 404);

    // Peer: B lacks A's path, A holds it; `--json` gives the route's document.
    let out = peerix_why(&b.url(), &["--json", &f.app]);
    assert!(out.status.success());
    let held: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(held["verdict"], "peer", "{held}");
    assert_eq!(
        held["holders"],
        serde_json::json!([peer_id(&a_addr)]),
        "{held}"
    );

    // Refused: C's path, before and after Nix's request for it was refused.
    let c_hash = hash_part(&c_path);
    assert_eq!(verdict_of(&b, c_hash)["verdict"], "peer");
    assert_eq!(
        b.get(&format!("/{c_hash}.narinfo")).0,
        404,
        "C's path is untrusted"
    );
    let refused = verdict_of(&b, c_hash);
    assert_eq!(refused["verdict"], "refused", "{refused}");
    let refusal = &refused["refusal"];
    assert_eq!(refusal["kind"], "untrusted_narinfo", "{refused}");
    assert_eq!(refusal["signed_by"], serde_json::json!(["stranger-1"]));
    assert_eq!(refusal["upstream"], "not_asked");
    assert_eq!(refusal["peer_id"], peer_id(&c_addr).as_str());
    assert_eq!(
        refused["summary"],
        "no trusted signature: signed by stranger-1 only; no upstream cache to ask"
    );
    let out = peerix_why(&b.url(), &[&c_path]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("refused: no trusted signature"), "{text}");
    assert!(
        text.contains(&format!("  from peer {}", peer_id(&c_addr))),
        "{text}"
    );
    println!("peerix why {c_path}:\n{text}");

    // Absent: nobody holds it; the sources there were are named.
    let absent = verdict_of(&b, NOBODYS);
    assert_eq!(absent["verdict"], "absent", "{absent}");
    assert_eq!(absent["asked"]["peers"], 2, "{absent}");
    assert_eq!(absent["asked"]["tracker"], Value::Null);

    // A bad argument: a 400 that says what is expected, and a failing CLI.
    let (status, bad) = why_of(&b, "hello");
    assert_eq!(status, 400);
    assert!(
        bad["error"].as_str().unwrap().contains("store hash"),
        "{bad}"
    );
    let out = peerix_why(&b.url(), &["hello"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("neither a store hash"), "{stderr}");

    // No Peerix there: a clear error.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let nowhere = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let out = peerix_why(&nowhere, &[app_hash]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot reach Peerix at"), "{stderr}");

    // A page from elsewhere cannot read it, as it cannot read /status.
    for path in [format!("/why/{app_hash}"), "/status".to_owned()] {
        let answer = curl(
            &format!("{}{path}", a.url()),
            &["-H", "Origin: https://evil.example"],
        );
        assert_eq!(answer.status, 403, "{path}");
    }
    drop(c);
}
