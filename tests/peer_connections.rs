//! The embedded node's connection settings: `--quic off` listens on no QUIC address and refuses
//! to be given one; `--max-inbound-peer-connections` turns away the peer past the cap while
//! this node's own dials still go out, and `--max-outbound-peer-connections` caps those.

mod common;

use std::process::Command;
use std::time::Duration;

use common::control::{connect, peer_count};
use common::{eventually, ChrootStore, Peerix};

#[test]
fn quic_off_means_no_quic_address() {
    let store = ChrootStore::empty();
    let on = Peerix::serve(store.root(), &[]);
    let listening = on.status()["node"]["listen_addrs"].to_string();
    assert!(listening.contains("quic-v1"), "{listening}");
    let off = Peerix::serve(store.root(), &["--quic", "off"]);
    let listening = off.status()["node"]["listen_addrs"].to_string();
    assert!(!listening.contains("quic"), "{listening}");
    assert!(listening.contains("/tcp/"), "{listening}");

    let refused = Command::new(env!("CARGO_BIN_EXE_peerix"))
        .args(["serve", "--offline", "--port", "0", "--quic", "off"])
        .args(["--listen-addrs", "/ip4/127.0.0.1/udp/0/quic-v1"])
        .arg("--store-root")
        .arg(store.root())
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let error = String::from_utf8_lossy(&refused.stderr);
    assert!(
        error.contains("a QUIC address, but --quic is off"),
        "{error}"
    );
}

#[test]
fn the_connection_caps_hold_per_direction() {
    let store = ChrootStore::empty();
    let loopback = ["--listen-addrs", "/ip4/127.0.0.1/tcp/0"];
    let capped = Peerix::serve(
        store.root(),
        &[
            loopback[0],
            loopback[1],
            "--max-inbound-peer-connections",
            "1",
            "--max-outbound-peer-connections",
            "1",
        ],
    );
    let b = Peerix::serve(store.root(), &loopback);
    let c = Peerix::serve(store.root(), &loopback);
    let d = Peerix::serve(store.root(), &loopback);
    let capped_addr = capped.p2p_addr();

    assert!(
        connect(&b, &capped_addr),
        "the first inbound peer was refused"
    );
    // The dialler may see its connection come up before the capped node closes it.
    connect(&c, &capped_addr);
    eventually(
        Duration::from_secs(10),
        "C kept a refused connection",
        || peer_count(&c) == 0,
    );
    assert_eq!(peer_count(&capped), 1, "a second inbound peer got in");
    // Its own dial is outbound, which has a cap of its own: one goes, the next does not.
    assert!(
        connect(&capped, &c.p2p_addr()),
        "the first outbound dial failed"
    );
    assert!(
        !connect(&capped, &d.p2p_addr()),
        "a second outbound dial went out"
    );
    eventually(
        Duration::from_secs(10),
        "D kept a refused connection",
        || peer_count(&d) == 0,
    );
    assert_eq!(peer_count(&capped), 2);
}
