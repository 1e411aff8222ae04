//! Publishing the store: every shared path's NAR gets a CID in the embedded node without being
//! copied, a kill -9 mid-scan leaves a consistent index that the next start completes, and
//! another node reads a NAR by CID over Bitswap, byte for byte what `nix-store --dump` gives.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{ChrootStore, Fixture, Peerix};
use serde_json::Value;

fn status(node: &Peerix) -> Value {
    let (code, body) = node.get("/status");
    assert_eq!(code, 200);
    serde_json::from_slice(&body).unwrap()
}

fn peerix(args: &[&str]) -> Vec<u8> {
    let out = Command::new(env!("CARGO_BIN_EXE_peerix"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "peerix {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn the_store_is_published_by_cid_and_a_killed_scan_resumes() {
    let f = Fixture::get();
    let store = ChrootStore::with_paths(&f.all());
    let dir = tempfile::TempDir::new().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    let loopback = ["--listen-addrs", "/ip4/127.0.0.1/tcp/0"];

    // Killed as soon as the scan has published something (or finished).
    let a = Peerix::serve_in(store.root(), &state, &loopback);
    let started = Instant::now();
    loop {
        let scan = &status(&a)["scan"];
        if scan["paths_done"].as_u64() >= Some(1)
            || scan["running"] == false && scan["paths_total"].as_u64() > Some(0)
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the scan never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(a);

    // The shared paths: the fixture's four, the sensitive one filtered out.
    let a = Peerix::serve_in(store.root(), &state, &loopback);
    let started = Instant::now();
    let report = loop {
        let report = status(&a);
        if report["indexed_paths"] == 4 && report["scan"]["running"] == false {
            break report;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "index incomplete: {report}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(report["scan"]["paths_failed"], 0, "{report}");

    // B reads the big NAR by the CID kubo would give it.
    let nar = dir.path().join("big.nar");
    std::fs::write(&nar, store.dump(&f.big)).unwrap();
    let cid = String::from_utf8(peerix(&[
        "cid",
        "--cid-version",
        "1",
        nar.to_str().unwrap(),
    ]))
    .unwrap();
    let b_store = ChrootStore::empty();
    let b = Peerix::serve(b_store.root(), &loopback);
    let addr = a.p2p_addr();
    peerix(&["ipfs", "--api", &b.url(), "connect", &addr]);
    let fetched = peerix(&["ipfs", "--api", &b.url(), "cat", cid.trim()]);
    assert!(
        fetched == std::fs::read(&nar).unwrap(),
        "the NAR by CID differs"
    );

    // Nothing was copied: the node's database holds inner nodes only (a few KiB for 100 MiB).
    let stored = std::fs::metadata(state.join("node.redb")).unwrap().len();
    assert!(stored < 8 << 20, "node.redb is {stored} bytes");
}
