//! `peerix status` against a running node: the table names what `/status` says, `--json` is
//! that document, and an unreachable node is an error that says what to check.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{ChrootStore, Fixture, Peerix};

fn status(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_peerix"))
        .arg("status")
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn status_prints_the_node_s_state_as_a_table_and_as_json() {
    let f = Fixture::get();
    let store = ChrootStore::with_paths(&[&f.app]);
    let node = Peerix::serve(store.root(), &[]);
    node.wait_for_narinfo(&f.app, Duration::from_secs(20));
    common::eventually(Duration::from_secs(20), "the scan never finished", || {
        node.status()["scan"]["running"] == false && node.status()["indexed_paths"] == 2
    });

    let out = status(&["--api", &node.url()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8(out.stdout).unwrap();
    let peer_id = node.status()["node"]["peer_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let header = format!(
        "peerix       {}, mode ipfs, version {}",
        node.url(),
        env!("CARGO_PKG_VERSION")
    );
    for expected in [
        header.as_str(),
        "scan         idle, 2/2 paths, 0 failed",
        "published    2 paths",
        "served Nix   0 B not from upstream (local 0 B, peer 0 B, swarm 0 B, nar_cache 0 B, old_peer 0 B)",
        "announcing   ",
        &peer_id,
    ] {
        assert!(table.contains(expected), "{expected:?} missing:\n{table}");
    }

    let out = status(&["--api", &node.url(), "--json"]);
    assert!(out.status.success());
    let document: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(document["indexed_paths"], 2);
    assert_eq!(document["mode"], "ipfs");
    assert_eq!(document["node"]["peer_id"], peer_id.as_str());

    // Nothing listens here: the error says so and what to check.
    drop(node);
    let out = status(&["--api", "http://127.0.0.1:9"]);
    assert_eq!(out.status.code(), Some(1));
    let error = String::from_utf8_lossy(&out.stderr);
    assert!(
        error.contains("no Peerix answers at http://127.0.0.1:9/status"),
        "{error}"
    );
    assert!(error.contains("--api"), "{error}");
}
