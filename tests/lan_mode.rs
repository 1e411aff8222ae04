//! `--mode lan` and `both` in the LAN lab's namespaces, every node run with its defaults (no
//! `--offline`: mDNS and broadcasts stay inside the lab): Peerix nodes share closures found by
//! mDNS alone, without a broadcast; machines still running the old program (a script written
//! from the wire description) and Peerix serve each other over the old UDP protocol and
//! `/local/`, filters and trust rules holding both ways; spoofed answers never reach Nix and a
//! flood of requests is rate-limited; `--extra-hosts` works across a routed link without
//! broadcast; and in `both` a holder on the LAN and one known only through the tracker both
//! serve. Needs root.

mod common;
mod lan_lab;

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{assert_copied, eventually, hash_part, ChrootStore, Fixture, NixKey};
use lan_lab::old_peer::{old_peer_ask, old_peer_fetch, OldPeer, OLD_UDP_PORT};
use lan_lab::peerix::{curl_in, curl_with, narinfo_of, LanNode, PEERIX};
use lan_lab::{Host, LanLab};
use sha2::{Digest, Sha256};
use tempfile::TempDir;

/// How long nodes may take to meet by mDNS and exchange their holdings.
const MEET_LIMIT: Duration = Duration::from_secs(60);
/// The `/local/` routes' port of every node (the front's 12304 plus 2).
const LOCAL_PORT: u16 = 12306;
/// The HTTP port of the old peers.
const OLD_HTTP_PORT: u16 = 8080;

fn narinfo_route(path: &str) -> String {
    format!("/{}.narinfo", hash_part(path))
}

/// A path only an old peer has: its narinfo (signed by `key`) and NAR, in files the old peer
/// serves.
struct OldPath {
    store_path: String,
    narinfo: PathBuf,
    nar: PathBuf,
    bytes: Vec<u8>,
    _store: ChrootStore,
}

impl OldPath {
    fn new(dir: &Path, name: &str, key: &NixKey) -> Self {
        let store = ChrootStore::empty();
        let content = format!("only an old peer has {name}\n").repeat(4096);
        let store_path = store.add_file(dir, name, content.as_bytes());
        store.sign(&key.secret, &[&store_path]);
        let narinfo = narinfo_of(&store, &store_path, dir);
        let bytes = store.dump(&store_path);
        let nar = dir.join(format!("{name}.nar"));
        std::fs::write(&nar, &bytes).unwrap();
        Self {
            store_path,
            narinfo,
            nar,
            bytes,
            _store: store,
        }
    }

    fn files(&self) -> (&Path, &Path) {
        (&self.narinfo, &self.nar)
    }
}

#[test]
fn three_peerix_hosts_share_a_closure_without_a_broadcast() {
    let Some(lab) = LanLab::new(3) else {
        return;
    };
    let f = Fixture::get();
    let upstream = NixKey::generate("upstream-lan-1");
    let key = upstream.public.as_str();
    let a_store = ChrootStore::signed(&upstream, &[&f.top]);
    let (b_store, c_store) = (ChrootStore::empty(), ChrootStore::empty());
    let _a = LanNode::serve(&lab, 0, "lan", (&a_store, key), &[]);
    let b = LanNode::serve(&lab, 1, "lan", (&b_store, key), &[]);
    let _c = LanNode::serve(&lab, 2, "lan", (&c_store, key), &[]);

    eventually(MEET_LIMIT, "B never learned A's paths", || {
        b.get(&lab, &narinfo_route(&f.big)).0 == 200
    });
    let dest = ChrootStore::empty();
    assert_copied(&b.nix_copy(&lab, key, &dest, &[&f.top]));
    a_store.assert_same_nars(&dest, &[&f.top, &f.app, &f.lib, &f.big]);

    // Only Peerix nodes on the link: a miss is answered from memory, no query goes out (only
    // the background probes for an old peer, which Peerix nodes do not answer).
    let (status, _) = b.get(&lab, "/0123456789abcdfghijklmnpqrsvwxyz.narinfo");
    assert_eq!(status, 404);
    let lan = b.lan_status(&lab);
    assert!(lan["probes"].as_u64().unwrap() >= 1, "{lan}");
    assert_eq!(lan["queries"], 0, "{lan}");
    assert_eq!(lan["queries_answered"], 0, "{lan}");
    assert_eq!(lan["old_peers_heard"], serde_json::json!([]), "{lan}");
}

#[test]
fn old_peers_and_peerix_serve_each_other_under_the_same_rules() {
    let Some(lab) = LanLab::new(4) else {
        return;
    };
    let f = Fixture::get();
    let dir = TempDir::new().unwrap();
    let upstream = NixKey::generate("upstream-lan-1");
    let stranger = NixKey::generate("stranger-1");
    let key = upstream.public.as_str();
    // A: Peerix holding a closure and a sensitive path; B: Peerix, empty; host 2: an old peer
    // serving a path of its own and one signed by a key nobody trusts; host 3: an old peer that
    // only asks.
    let a_store = ChrootStore::signed(&upstream, &[&f.lib, &f.secrets]);
    let b_store = ChrootStore::empty();
    let a = LanNode::serve(&lab, 0, "lan", (&a_store, key), &[]);
    let b = LanNode::serve(&lab, 1, "lan", (&b_store, key), &[]);
    let own = OldPath::new(dir.path(), "old-only", &upstream);
    let untrusted = OldPath::new(dir.path(), "old-untrusted", &stranger);
    let old = OldPeer::serve(
        &lab,
        2,
        OLD_UDP_PORT,
        OLD_HTTP_PORT,
        &[own.files(), untrusted.files()],
    );

    // The old requester asks by broadcast; Peerix A answers and serves narinfo and NAR.
    let out = dir.path().join("fetched");
    std::fs::create_dir_all(&out).unwrap();
    let lib_hash = hash_part(&f.lib);
    let report = old_peer_fetch(&lab, 3, OLD_UDP_PORT, lib_hash, &out, None, 2_000);
    assert!(report.found, "{report:?}");
    let from = report.from.unwrap();
    assert_eq!(*from.ip(), lab.host_addr(0), "{report:?}");
    assert_eq!(report.port, Some(u32::from(LOCAL_PORT)));
    let nar = std::fs::read(out.join(format!("{lib_hash}.nar"))).unwrap();
    assert_eq!(
        nar,
        a_store.dump(&f.lib),
        "the NAR an old peer got from Peerix"
    );

    // A filtered path gets no answer, and /local/ has nothing for it.
    let secrets = hash_part(&f.secrets);
    let ask = old_peer_ask(&lab, 3, OLD_UDP_PORT, secrets, None, 500);
    assert!(!ask.answered, "{ask:?}");
    let local = format!("http://{}:{LOCAL_PORT}/local", lab.host_addr(0));
    let (status, _) = curl_in(&lab, 3, &format!("{local}/{secrets}.narinfo"));
    assert_eq!(status, 404);
    let secrets_nar = peerix_http::NarHash(Sha256::digest(a_store.dump(&f.secrets)).into());
    let nar_url = format!("{local}/nar/{}.nar", secrets_nar.to_base32());
    assert_eq!(curl_in(&lab, 3, &nar_url).0, 404);
    // Nor does it serve anything but narinfos and NARs, nor anything to a web page: one that
    // comes from a page, or names the server as a DNS-rebinding page would.
    assert_eq!(curl_in(&lab, 3, &format!("{local}/metrics")).0, 404);
    let lib_narinfo = format!("{local}/{lib_hash}.narinfo");
    assert_eq!(curl_in(&lab, 3, &lib_narinfo).0, 200);
    for header in ["Origin: http://evil.example", "Host: rebound.example:12306"] {
        let (status, _) = curl_with(&lab, 3, &lib_narinfo, &["-H", header]);
        assert_eq!(status, 403, "{header}");
    }

    // B heard the old requester, so it asks by broadcast for a path no Peerix node holds: the
    // old peer's path reaches Nix, signed as required, bytes intact.
    eventually(
        Duration::from_secs(10),
        "B never heard the old peer",
        || {
            b.lan_status(&lab)["old_peers_heard"]
                .as_array()
                .is_some_and(|heard| !heard.is_empty())
        },
    );
    let dest = ChrootStore::empty();
    assert_copied(&b.nix_copy(&lab, key, &dest, &[&own.store_path]));
    assert_eq!(dest.dump(&own.store_path), own.bytes);
    let fetched: Vec<String> = old.http_log().into_iter().map(|h| h.path).collect();
    assert!(
        fetched.iter().any(|p| p.starts_with("/local/nar/")),
        "B fetched the NAR from the old peer: {fetched:?}"
    );

    // A path signed by no trusted key is refused: Nix never sees it.
    let (status, _) = b.get(&lab, &narinfo_route(&untrusted.store_path));
    assert_eq!(status, 404);
    assert!(
        b.log()
            .iter()
            .any(|l| l.contains("untrusted narinfo from the LAN refused")),
        "B says why"
    );
    // A asked nobody for its own paths and served the old peer.
    assert!(a.lan_status(&lab)["requests_answered"].as_u64().unwrap() >= 1);
}

/// Answers every request it gets on UDP 12304 falsely: a wrong id, the wrong hash, and the right
/// id from another port. For the hash given as `HONEST` it answers truly as well. Every answer
/// names the old peer's HTTP server, which holds the path: one taken would reach Nix.
const SPOOFER: &str = r#"
import socket, struct, sys
honest, http_port = sys.argv[1], int(sys.argv[2])
main = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
main.bind(("0.0.0.0", 12304))
other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
other.bind(("0.0.0.0", 12398))
print("ready", flush=True)
while True:
    data, source = main.recvfrom(600)
    if len(data) < 37 or data[0] != 0:
        continue
    rid = struct.unpack(">I", data[1:5])[0]
    asked = data[5:].decode()
    def answer(i, h, sock):
        sock.sendto(b"\x01" + struct.pack(">II", i, http_port) + b"local/" + h.encode() + b".narinfo", source)
    answer((rid + 1) % 2**32, asked, main)
    answer(rid, "0" * 32, main)
    answer(rid, asked, other)
    if asked == honest:
        answer(rid, asked, main)
"#;

#[test]
fn spoofed_answers_never_reach_nix_and_floods_are_rate_limited() {
    let Some(lab) = LanLab::new(3) else {
        return;
    };
    let f = Fixture::get();
    let dir = TempDir::new().unwrap();
    let upstream = NixKey::generate("upstream-lan-1");
    let key = upstream.public.as_str();
    let spoofed = OldPath::new(dir.path(), "spoofed", &upstream);
    let honest = OldPath::new(dir.path(), "honest", &upstream);
    // The old peer's HTTP server on host 1 (its UDP on another port: the spoofer has 12304).
    let _server = OldPeer::serve(
        &lab,
        1,
        12399,
        OLD_HTTP_PORT,
        &[spoofed.files(), honest.files()],
    );
    let mut spoofer = Killed(
        lab.command(1, "python3")
            .args(["-c", SPOOFER, hash_part(&honest.store_path)])
            .arg(OLD_HTTP_PORT.to_string())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    wait_for_line(&mut spoofer.0, "ready");
    // B asks host 1 by unicast only.
    let b_store = ChrootStore::signed(&upstream, &[&f.lib]);
    let extra = lab.host_addr(1).to_string();
    let b = LanNode::serve(
        &lab,
        0,
        "lan",
        (&b_store, key),
        &["--extra-hosts", &extra, "--disable-broadcast"],
    );

    let (status, _) = b.get(&lab, &narinfo_route(&spoofed.store_path));
    assert_eq!(status, 404, "a spoofed answer was taken");
    // The control: the same server's true answer is taken, so the 404 above was the spoofs'.
    let dest = ChrootStore::empty();
    assert_copied(&b.nix_copy(&lab, key, &dest, &[&honest.store_path]));
    assert_eq!(dest.dump(&honest.store_path), honest.bytes);
    let lan = b.lan_status(&lab);
    assert!(lan["answers_refused"].as_u64().unwrap() >= 6, "{lan}");

    // A flood of requests for a shared path from host 2: B answers within its limits and its
    // front stays responsive meanwhile.
    let flood = lab
        .command(2, "python3")
        .args([
            "-c",
            FLOOD,
            &lab.host_addr(0).to_string(),
            hash_part(&f.lib),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let mut slowest = Duration::ZERO;
    while started.elapsed() < Duration::from_secs(2) {
        let asked = Instant::now();
        assert_eq!(b.get(&lab, "/nix-cache-info").0, 200);
        slowest = slowest.max(asked.elapsed());
    }
    let out = flood.wait_with_output().unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    let (sent, answered) = report.trim().split_once(' ').unwrap();
    let (sent, answered): (u64, u64) = (sent.parse().unwrap(), answered.parse().unwrap());
    let lan = b.lan_status(&lab);
    eprintln!(
        "flood: {sent} requests, {answered} answers; slowest front request {slowest:?}; {lan}"
    );
    assert!(sent >= 5_000, "the flood was a flood: {sent}");
    // 200 at once and 50 a second (the per-source limit), over the flood's few seconds.
    assert!(
        answered <= 200 + 50 * 10,
        "{answered} answers to {sent} requests"
    );
    assert!(lan["requests_rate_limited"].as_u64().unwrap() > 0, "{lan}");
}

/// Sends 20,000 requests for `argv[2]` to `argv[1]`:12304 as fast as it can, then counts the
/// answers for a second; prints "sent answered".
const FLOOD: &str = r#"
import socket, struct, sys, time
target, asked = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 12304))
s.setblocking(False)
sent = answered = 0
for i in range(20000):
    try:
        s.sendto(b"\x00" + struct.pack(">I", i) + asked.encode(), (target, 12304))
        sent += 1
    except BlockingIOError:
        time.sleep(0.001)
    try:
        while True:
            s.recv(600); answered += 1
    except BlockingIOError:
        pass
s.setblocking(True)
s.settimeout(1.0)
try:
    while True:
        s.recv(600); answered += 1
except socket.timeout:
    pass
print(sent, answered, flush=True)
"#;

#[test]
fn extra_hosts_work_across_a_routed_link_without_broadcast() {
    let Some(lab) = LanLab::with_routed_host(1) else {
        return;
    };
    let f = Fixture::get();
    let dir = TempDir::new().unwrap();
    let upstream = NixKey::generate("upstream-lan-1");
    let key = upstream.public.as_str();
    let far = lab.far_addr().to_string();
    // First a Peerix node on the far host: B dials it over libp2p.
    let far_store = ChrootStore::signed(&upstream, &[&f.lib]);
    let far_node = LanNode::serve(&lab, Host::Far, "lan", (&far_store, key), &[]);
    let b_store = ChrootStore::empty();
    let b = LanNode::serve(
        &lab,
        0,
        "lan",
        (&b_store, key),
        &["--extra-hosts", &far, "--disable-broadcast"],
    );
    eventually(MEET_LIMIT, "B never learned the far node's paths", || {
        b.get(&lab, &narinfo_route(&f.lib)).0 == 200
    });
    let dest = ChrootStore::empty();
    assert_copied(&b.nix_copy(&lab, key, &dest, &[&f.lib]));
    far_store.assert_same_nars(&dest, &[&f.lib]);
    // Dialled over libp2p at the extra host's address (no mDNS crosses the router).
    let status = b.json(&lab, "/status").unwrap();
    let peers = status["node"]["peers"].as_array().unwrap();
    assert!(
        peers
            .iter()
            .any(|p| p["addr"].as_str().is_some_and(|a| a.contains(&far))),
        "{peers:?}"
    );

    // Then an old peer there instead: asked by unicast, across the router.
    drop(far_node);
    let own = OldPath::new(dir.path(), "far-old", &upstream);
    let _old = OldPeer::serve(&lab, Host::Far, OLD_UDP_PORT, OLD_HTTP_PORT, &[own.files()]);
    eventually(
        Duration::from_secs(45),
        "B never got the far old peer's path",
        || b.get(&lab, &narinfo_route(&own.store_path)).0 == 200,
    );
    let dest = ChrootStore::empty();
    assert_copied(&b.nix_copy(&lab, key, &dest, &[&own.store_path]));
    assert_eq!(dest.dump(&own.store_path), own.bytes);
}

#[test]
fn in_both_mode_a_lan_holder_and_a_tracker_holder_serve_one_node() {
    let Some(lab) = LanLab::with_routed_host(2) else {
        return;
    };
    let f = Fixture::get();
    let upstream = NixKey::generate("upstream-lan-1");
    let key = upstream.public.as_str();
    let tracker_db = TempDir::new().unwrap();
    let far = lab.far_addr().to_string();
    let mut tracker = Killed(
        lab.command(Host::Far, PEERIX)
            .args(["tracker", "--host", &far, "--port", "12305", "--db-path"])
            .arg(tracker_db.path().join("tracker.redb"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let tracker_url = format!("http://{far}:12305");
    eventually(
        Duration::from_secs(20),
        "the tracker never answered",
        || curl_in(&lab, Host::Far, &format!("{tracker_url}/status")).0 == 200,
    );
    let _ = tracker.0.stderr.take();
    // C, beyond the router, is known through the tracker alone; A only on the LAN.
    let c_store = ChrootStore::signed(&upstream, &[&f.big]);
    let _c = LanNode::serve(
        &lab,
        Host::Far,
        "wan",
        (&c_store, key),
        &["--tracker-url", &tracker_url],
    );
    let a_store = ChrootStore::signed(&upstream, &[&f.lib]);
    let _a = LanNode::serve(&lab, 1, "lan", (&a_store, key), &[]);
    let b_store = ChrootStore::empty();
    let b = LanNode::serve(
        &lab,
        0,
        "both",
        (&b_store, key),
        &["--tracker-url", &tracker_url],
    );
    eventually(MEET_LIMIT, "B never found both holders", || {
        b.get(&lab, &narinfo_route(&f.lib)).0 == 200 && b.get(&lab, &narinfo_route(&f.big)).0 == 200
    });
    let dest = ChrootStore::empty();
    assert_copied(&b.nix_copy(&lab, key, &dest, &[&f.lib, &f.big]));
    a_store.assert_same_nars(&dest, &[&f.lib]);
    c_store.assert_same_nars(&dest, &[&f.big]);
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for_line(child: &mut Child, line: &str) {
    use std::io::{BufRead, BufReader};
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let first = lines.next().and_then(Result::ok);
    assert_eq!(first.as_deref(), Some(line));
}
