//! `peerix doctor` against a real node and real Nix: a healthy setup passes, Nix settings that
//! do not name Peerix fail the check that says so (with the setting to change), and a node
//! that is down is named as the problem; a connected peer and a refused answer from it are
//! reported as such.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use common::{eventually, hash_part, ChrootStore, Fixture, NixKey, Peerix};
use tempfile::TempDir;

const LOOPBACK: &str = "/ip4/127.0.0.1/tcp/0";
const KEY: &str = "cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=";

/// `peerix doctor --api API` with `nix_config` as the only Nix settings besides the system's
/// file (no user file: `config_home` is empty).
fn doctor(api: &str, nix_config: &str, config_home: &Path) -> (Output, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_peerix"))
        .args(["doctor", "--api", api])
        .env("NIX_CONFIG", nix_config)
        .env("XDG_CONFIG_HOME", config_home)
        .env("XDG_CONFIG_DIRS", config_home)
        .env_remove("PEERIX_NIX")
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!("{report}{}", String::from_utf8_lossy(&out.stderr));
    (out, report)
}

fn line<'a>(report: &'a str, label: &str) -> &'a str {
    report
        .lines()
        .find(|l| l.get(6..).is_some_and(|rest| rest.starts_with(label)))
        .unwrap_or_else(|| panic!("no {label:?} line in:\n{report}"))
}

#[test]
fn doctor_passes_a_healthy_setup_and_names_a_broken_one() {
    let f = Fixture::get();
    let store = ChrootStore::with_paths(&[&f.app]);
    let node = Peerix::serve(store.root(), &[]);
    eventually(Duration::from_secs(30), "the scan never finished", || {
        !node.status()["scan"]["finished_seconds_ago"].is_null()
    });
    let config_home = TempDir::new().unwrap();
    let url = node.url();

    // Nix uses this Peerix (with a trailing slash, as people write it) and trusts a key.
    let (out, report) = doctor(
        &url,
        &format!("extra-substituters = {url}/\ntrusted-public-keys = {KEY}"),
        config_home.path(),
    );
    assert_eq!(out.status.code(), Some(0), "{report}");
    let peer_id = node.status()["node"]["peer_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(line(&report, "reachable").starts_with("ok "), "{report}");
    assert!(line(&report, "reachable").contains(&peer_id), "{report}");
    assert!(line(&report, "store").starts_with("ok "), "{report}");
    let nix = line(&report, "nix config");
    assert!(
        nix.starts_with("ok ") && nix.contains("trusts 1 keys"),
        "{report}"
    );
    assert!(line(&report, "ports").starts_with("ok "), "{report}");
    // Alone and offline: no peer is worth a warning, not a failure.
    assert!(line(&report, "peers").starts_with("warn"), "{report}");
    assert!(line(&report, "bandwidth").contains("no cap"), "{report}");
    assert!(line(&report, "last scan").contains("finished"), "{report}");
    assert!(
        line(&report, "refusals").contains("nothing from peers was refused"),
        "{report}"
    );
    assert_eq!(report.lines().count(), 10, "{report}");

    // Nix's substituters do not name Peerix: that check fails and says which setting to change.
    let (out, report) = doctor(
        &url,
        &format!("substituters = https://cache.nixos.org/\ntrusted-public-keys = {KEY}"),
        config_home.path(),
    );
    assert_eq!(out.status.code(), Some(1), "{report}");
    let nix = line(&report, "nix config");
    assert!(nix.starts_with("fail"), "{report}");
    assert!(nix.contains(&format!("do not list {url}")), "{report}");
    assert!(
        nix.contains("hint:") && nix.contains("substituters"),
        "{report}"
    );
    assert!(line(&report, "reachable").starts_with("ok "), "{report}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("1 of 10 checks failed"));

    // Peerix is down: said first, and everything that needs it is skipped as failed.
    drop(node);
    let (out, report) = doctor(
        &url,
        &format!("extra-substituters = {url}\ntrusted-public-keys = {KEY}"),
        config_home.path(),
    );
    assert_eq!(out.status.code(), Some(1), "{report}");
    let reachable = line(&report, "reachable");
    assert!(reachable.starts_with("fail"), "{report}");
    assert!(
        reachable.contains(&format!("no Peerix answers at {url}/status")),
        "{report}"
    );
    assert!(
        line(&report, "peers").contains("skipped: Peerix does not answer"),
        "{report}"
    );
    assert!(line(&report, "nix config").starts_with("ok "), "{report}");
}

#[test]
fn doctor_counts_peers_and_warns_of_refused_answers() {
    let stranger = NixKey::generate("stranger-1");
    let scratch = TempDir::new().unwrap();
    let a_store = ChrootStore::empty();
    let a_path = a_store.add_file(scratch.path(), "doctor-stranger-file", b"untrusted\n");
    a_store.sign(&stranger.secret, &[&a_path]);
    let a = Peerix::serve(a_store.root(), &["--listen-addrs", LOOPBACK]);
    let b_store = ChrootStore::empty();
    let b = Peerix::serve(
        b_store.root(),
        &[
            "--listen-addrs",
            LOOPBACK,
            "--bootstrap-peers",
            &a.p2p_addr(),
        ],
    );
    eventually(Duration::from_secs(20), "A's index never reached B", || {
        b.status()["peers"]["paths"] == 1
    });
    // Nix asks B for A's path: no key B trusts signed it, so B refuses it.
    assert_eq!(b.get(&format!("/{}.narinfo", hash_part(&a_path))).0, 404);

    let config_home = TempDir::new().unwrap();
    let url = b.url();
    let (out, report) = doctor(
        &url,
        &format!("extra-substituters = {url}\ntrusted-public-keys = {KEY}"),
        config_home.path(),
    );
    // Warnings alone: exit 0.
    assert_eq!(out.status.code(), Some(0), "{report}");
    let peers = line(&report, "peers");
    assert!(
        peers.starts_with("ok ") && peers.contains("1 direct, 0 relayed"),
        "{report}"
    );
    // B's store is empty: nothing to share is worth a warning.
    assert!(line(&report, "store").starts_with("warn"), "{report}");
    let refusals = line(&report, "refusals");
    assert!(refusals.starts_with("warn"), "{report}");
    assert!(
        refusals.contains(hash_part(&a_path))
            && refusals.contains("no trusted signature: signed by stranger-1 only")
            && refusals.contains("peerix why"),
        "{report}"
    );
}
