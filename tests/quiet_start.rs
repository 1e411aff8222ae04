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

#[test]
fn a_tracker_that_never_answers_is_said_once_not_at_every_retry() {
    if std::env::var_os("RUST_LOG").is_some() {
        eprintln!("skipped: RUST_LOG sets its own log levels");
        return;
    }
    // A loopback port nothing listens on: every request is refused at once.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let tracker = format!("http://{closed}");
    let store = ChrootStore::empty();
    let node = Peerix::serve(store.root(), &["--tracker-url", &tracker]);
    // The membership, heartbeat and peer sampling tasks each retry after 1, 2 and 4 s.
    std::thread::sleep(Duration::from_secs(8));
    let said: Vec<String> = node
        .log()
        .into_iter()
        .filter(|line| line.contains("tracker unreachable"))
        .collect();
    assert_eq!(said.len(), 1, "{said:?}");
    assert!(said[0].contains("WARN"), "{said:?}");
    assert!(said[0].contains("--tracker-url"), "{said:?}");
}
