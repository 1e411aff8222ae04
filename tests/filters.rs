//! Secret-looking store paths never leave the machine, whatever their case, and paths that are
//! garbage-collected or newly filtered are withdrawn everywhere: index stream, narinfo and NAR
//! (HTTP and the peer protocols through a second Peerix), DHT provider keys, Bitswap, index.redb.
//! Paths are made with `nix-store --add` in chroot stores, signed by a key the peers trust.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{hash_part, ChrootStore, NixKey, Peerix};
use serde_json::Value;

const LOOPBACK: &str = "/ip4/127.0.0.1/tcp/0";

/// `/nar/<narhash>.nar` of a path, from the store's own database.
fn nar_route(store: &ChrootStore, path: &str) -> String {
    let out = common::run(common::nix("nix-store", store.root()).args([
        "--store",
        &store.url(),
        "--query",
        "--hash",
        path,
    ]));
    let hash = common::stdout_text(&out);
    format!("/nar/{}.nar", hash.trim_start_matches("sha256:"))
}

fn narinfo_route(path: &str) -> String {
    format!("/{}.narinfo", hash_part(path))
}

fn status(node: &Peerix) -> Value {
    serde_json::from_slice(&node.get("/status").1).unwrap_or_default()
}

/// Polls `ready` every 100 ms until it holds; fails with `what` after `limit`.
fn eventually(limit: Duration, what: &str, mut ready: impl FnMut() -> bool) {
    let started = Instant::now();
    while !ready() {
        assert!(started.elapsed() < limit, "{what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until `node`'s last scan is done with `paths` indexed and one key provided for each,
/// plus the network's rendezvous key (provided a few seconds after the first start, and kept).
fn wait_published(node: &Peerix, paths: u64) {
    let started = Instant::now();
    loop {
        let now = status(node);
        if now["indexed_paths"] == paths
            && now["scan"]["running"] == false
            && now["node"]["provided_keys"] == paths + 1
        {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "never {paths} published and provided: {now}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until B's peers announce exactly `paths` paths over the index stream.
fn wait_remote_paths(b: &Peerix, paths: u64) {
    eventually(
        Duration::from_secs(30),
        &format!("B never saw exactly {paths} paths of its peers"),
        || status(b)["peers"]["paths"] == paths,
    );
}

fn node(store: &ChrootStore, state: &Path, key: &str, extra: &[&str]) -> Peerix {
    let mut args = vec!["--listen-addrs", LOOPBACK, "--trusted-public-key", key];
    args.extend(extra);
    Peerix::serve_in(store.root(), state, &args)
}

/// Content of `len` bytes that no other test path has.
fn content(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| ((i as u64 * 2_654_435_761) >> 7) as u8 ^ seed)
        .collect()
}

#[test]
fn secret_looking_names_in_any_case_never_leave() {
    let scratch = tempfile::tempdir().unwrap();
    let key = NixKey::generate("upstream-test-1");
    let a_store = ChrootStore::empty();
    let secrets: Vec<String> = [
        "db-password",
        "app-secret",
        "wg-private-key",
        "API-SECRETS-prod",
        "Deploy-Credentials",
        "github-TOKEN",
    ]
    .iter()
    .enumerate()
    .map(|(i, name)| a_store.add_file(scratch.path(), name, &content(i as u8, 100)))
    .collect();
    // Libraries named after the words are ordinary packages: shared.
    let shared: Vec<String> = ["libsecret-0.21.4", "gnome-keyring-46.1"]
        .iter()
        .enumerate()
        .map(|(i, name)| a_store.add_file(scratch.path(), name, &content(100 + i as u8, 100)))
        .collect();
    let all: Vec<&str> = secrets.iter().chain(&shared).map(String::as_str).collect();
    a_store.sign(&key.secret, &all);

    let (a_state, b_state) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = node(&a_store, a_state.path(), &key.public, &[]);
    let b_store = ChrootStore::empty();
    let b = node(
        &b_store,
        b_state.path(),
        &key.public,
        &["--bootstrap-peers", &a.p2p_addr()],
    );
    wait_published(&a, shared.len() as u64);
    // The index stream carried the shared paths only (a secret would make the count larger).
    wait_remote_paths(&b, shared.len() as u64);

    for path in &shared {
        for node in [&a, &b] {
            assert_eq!(node.get(&narinfo_route(path)).0, 200, "{path} not shared");
        }
        let nar = nar_route(&a_store, path);
        let (status, body) = b.get(&nar);
        assert!(status == 200 && body == a_store.dump(path), "{path}'s NAR");
    }
    for path in &secrets {
        let nar = nar_route(&a_store, path);
        // A's own HTTP front, and B, which asks A over the narinfo and NAR protocols.
        for (name, node) in [("A", &a), ("B", &b)] {
            assert_eq!(
                node.get(&narinfo_route(path)).0,
                404,
                "{name} offers {path}"
            );
            assert_eq!(node.get(&nar).0, 404, "{name} serves the NAR of {path}");
        }
    }
}

/// The CID (v1, raw leaves) the node publishes a path's NAR under.
fn nar_cid(store: &ChrootStore, path: &str, scratch: &Path) -> String {
    let file = scratch.join("nar");
    std::fs::write(&file, store.dump(path)).unwrap();
    let out = common::run(
        Command::new(env!("CARGO_BIN_EXE_peerix"))
            .args(["cid", "--cid-version", "1"])
            .arg(&file),
    );
    common::stdout_text(&out)
}

/// `POST /api/v0/{call}?arg={cid}` on `node`: curl's exit status and the body.
fn rpc(node: &Peerix, call: &str, cid: &str) -> (bool, Vec<u8>) {
    let out = Command::new("curl")
        .args(["-sS", "--fail", "--max-time", "30", "-X", "POST"])
        .arg(format!("{}/api/v0/{call}?arg={cid}", node.url()))
        .output()
        .unwrap();
    (out.status.success(), out.stdout)
}

#[test]
fn collected_and_newly_filtered_paths_are_withdrawn_everywhere() {
    let scratch = tempfile::tempdir().unwrap();
    let key = NixKey::generate("upstream-test-1");
    let a_store = ChrootStore::empty();
    // Over one 256 KiB chunk: its root is an inner node the node keeps, served until withdrawn.
    let report = a_store.add_file(scratch.path(), "quarterly-report", &content(1, 1 << 20));
    let collected = a_store.add_file(scratch.path(), "scratch-data", &content(2, 100));
    let kept = a_store.add_file(scratch.path(), "kept-data", &content(3, 100));
    a_store.sign(&key.secret, &[&report, &collected, &kept]);
    let report_cid = nar_cid(&a_store, &report, scratch.path());

    let (a_state, b_state) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = node(&a_store, a_state.path(), &key.public, &[]);
    let b_store = ChrootStore::empty();
    let b = node(
        &b_store,
        b_state.path(),
        &key.public,
        &["--bootstrap-peers", &a.p2p_addr()],
    );
    wait_published(&a, 3);
    wait_remote_paths(&b, 3);
    // Before: the report's NAR is served over Bitswap, to A's RPC and to B through A.
    let nar = a_store.dump(&report);
    assert!(
        rpc(&a, "block/get", &report_cid).0,
        "A lacks the root block"
    );
    let (fetched, body) = rpc(&b, "cat", &report_cid);
    assert!(
        fetched && body == nar,
        "B cannot fetch the NAR over Bitswap"
    );

    // Garbage-collected on A: gone from A's index and provided keys, and from B's view.
    common::run(
        common::nix("nix-store", a_store.root())
            .args(["--store", &a_store.url(), "--delete"])
            .arg(&collected),
    );
    wait_published(&a, 2);
    wait_remote_paths(&b, 2);
    assert_eq!(b.get(&narinfo_route(&collected)).0, 404);

    // A restarts with a pattern (in other capitals) that now hides the report.
    let b_addr = b.p2p_addr();
    drop(a);
    let a = node(
        &a_store,
        a_state.path(),
        &key.public,
        &[
            "--filter-pattern",
            "*-QUARTERLY-REPORT",
            "--bootstrap-peers",
            &b_addr,
        ],
    );
    wait_published(&a, 1);
    wait_remote_paths(&b, 1);
    assert_eq!(
        b.get(&narinfo_route(&kept)).0,
        200,
        "the kept path is still shared"
    );
    for (name, node) in [("A", &a), ("B", &b)] {
        assert_eq!(node.get(&narinfo_route(&report)).0, 404, "{name} offers it");
        assert_eq!(
            node.get(&nar_route(&a_store, &report)).0,
            404,
            "{name} serves it"
        );
    }
    // Bitswap: A no longer has the NAR's blocks, and B (whose DHT still names A as a provider
    // until the record lapses) cannot get them from A.
    let (served, _) = rpc(&a, "block/get", &report_cid);
    assert!(!served, "A still serves the withdrawn NAR's root block");
    let (fetched, body) = rpc(&b, "cat", &report_cid);
    assert!(
        !fetched && body != nar,
        "B still fetched the withdrawn NAR over Bitswap ({} bytes)",
        body.len()
    );
}
