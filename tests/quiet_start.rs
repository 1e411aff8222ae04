//! Quiet by default: a node starting in an expected state (offline, no peer yet, a store to
//! serve) writes no warning, so that a warning in the log always deserves a look.

mod common;

use std::time::Duration;

use common::{ChrootStore, Fixture, Peerix};

#[test]
fn an_offline_start_with_no_peer_logs_no_warning() {
    if std::env::var_os("RUST_LOG").is_some() {
        eprintln!("skipped: RUST_LOG sets its own log levels");
        return;
    }
    let f = Fixture::get();
    let store = ChrootStore::with_paths(&[&f.lib]);
    let node = Peerix::serve(store.root(), &[]);
    // The scan, the first DHT bootstrap attempt and the store watcher's first rounds.
    node.wait_for_narinfo(&f.lib, Duration::from_secs(20));
    std::thread::sleep(Duration::from_secs(3));
    let noisy: Vec<String> = node
        .log()
        .into_iter()
        .filter(|line| line.contains("WARN") || line.contains("ERROR"))
        .collect();
    assert!(noisy.is_empty(), "warnings at an expected start: {noisy:?}");
}

#[test]
fn a_store_root_without_a_nix_database_is_said_once() {
    if std::env::var_os("RUST_LOG").is_some() {
        eprintln!("skipped: RUST_LOG sets its own log levels");
        return;
    }
    let empty = tempfile::TempDir::new().unwrap();
    let node = Peerix::serve(empty.path(), &[]);
    // A few rounds of the store watcher, which finds no database each time.
    std::thread::sleep(Duration::from_secs(5));
    let warnings: Vec<String> = node
        .log()
        .into_iter()
        .filter(|line| line.contains("WARN") || line.contains("ERROR"))
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("no Nix database at"), "{warnings:?}");
    assert!(warnings[0].contains("--store-root"), "{warnings:?}");
}
