//! Peers behind NATs substitute from each other: two homes, each behind its own NAT router, and a
//! relay/bootstrap node on the emulated internet (tests/nat_lab). Every node runs as a user would
//! run it (no `--offline`, `--mode libp2p`), inside the lab's namespaces only. Needs root.

mod common;
mod nat_lab;

use std::time::{Duration, Instant};

use common::{hash_part, ChrootStore, Fixture};
use nat_lab::peerix::{
    connection_to, eventually, get, nix_copy_in_home2, node_status, peer_id, world, Node,
};
use nat_lab::NatKind;

#[test]
fn peers_behind_cone_nats_meet_through_the_relay_and_transfer_directly() {
    let Some(w) = world(
        (NatKind::PortRestrictedCone, NatKind::PortRestrictedCone),
        &[],
        &[],
    ) else {
        return;
    };
    let f = Fixture::get();
    let a_id = peer_id(&w.lab, &w.a);

    // B learns of A through the relay's DHT, reaches it through the relay, and hole punching
    // makes the connection direct; only then do they exchange what they hold.
    let narinfo = format!("/{}.narinfo", hash_part(&f.big));
    eventually(
        Duration::from_secs(90),
        "A's paths never became available through B",
        || get(&w.lab, &w.b, &narinfo).is_some_and(|(status, _, _)| status == 200),
    );
    let status = node_status(&w.lab, &w.b);
    let to_a = connection_to(&status, &a_id).expect("B is connected to A");
    assert_eq!(to_a["direct"], true, "{to_a}");

    let dest = ChrootStore::empty();
    let out = nix_copy_in_home2(&w, &dest, &[&f.top, &f.big]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    w.a_store
        .assert_same_nars(&dest, &[&f.top, &f.app, &f.lib, &f.big]);
    // The NAR came over the direct connection: it carried more than the big path's size.
    let status = node_status(&w.lab, &w.b);
    let to_a = connection_to(&status, &a_id).expect("B is still connected to A");
    assert!(to_a["bytes_in"].as_u64().unwrap() > 100 << 20, "{to_a}");
    assert_eq!(to_a["direct"], true, "{to_a}");

    // AutoNAT: the relay is reachable from the internet, the homes are not.
    let reachability = |node: &Node| node_status(&w.lab, node)["nat"]["reachability"].clone();
    let started = Instant::now();
    loop {
        let seen = [&w.relay, &w.a, &w.b].map(reachability);
        if seen == ["public", "private", "private"] {
            break;
        }
        let waited = started.elapsed();
        assert!(
            waited < Duration::from_secs(60),
            "AutoNAT (relay, A, B): {seen:?}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn behind_two_symmetric_nats_the_failure_is_named_and_nix_is_answered_at_once() {
    let Some(w) = world((NatKind::Symmetric, NatKind::Symmetric), &[], &[]) else {
        return;
    };
    let f = Fixture::get();
    let (a_id, b_id) = (peer_id(&w.lab, &w.a), peer_id(&w.lab, &w.b));
    // B reaches A through the relay; hole punching (which A starts) fails, and both say why:
    // A names B among its failures, B shows A as reachable through the relay only, and each
    // names its NAT's mapping.
    let failed_with = |node: &Node, peer: &str| {
        node_status(&w.lab, node)["hole_punch_failures"]
            .as_array()
            .is_some_and(|f| f.iter().any(|e| e["peer_id"] == peer))
    };
    eventually(
        Duration::from_secs(90),
        "the failed hole punch between A and B was never reported",
        || failed_with(&w.a, &b_id) || failed_with(&w.b, &a_id),
    );
    for node in [&w.a, &w.b] {
        let nat = &node_status(&w.lab, node)["nat"];
        assert_eq!(nat["mapping"], "symmetric", "{nat}");
        assert!(
            nat["hole_punching"].as_str().unwrap().contains("symmetric"),
            "{nat}"
        );
    }
    let to_a = connection_to(&node_status(&w.lab, &w.b), &a_id).expect("B knows A");
    assert_eq!(
        (&to_a["direct"], &to_a["relayed"]),
        (&false.into(), &true.into())
    );
    // Nothing crosses the relay but the handshake: Nix gets a 404 at once, not a hang.
    let narinfo = format!("/{}.narinfo", hash_part(&f.lib));
    for _ in 0..10 {
        let (status, _, seconds) = get(&w.lab, &w.b, &narinfo).expect("B answers");
        assert_eq!(status, 404);
        assert!(seconds < 0.05, "answered after {seconds} s");
    }
}

#[test]
fn the_relay_refuses_a_transfer_beyond_its_circuit_limit() {
    // Both NATs symmetric, so the relay is the only way between the homes; the homes allow
    // transfers over it, and the relay allows 1 MiB per circuit.
    let Some(w) = world(
        (NatKind::Symmetric, NatKind::Symmetric),
        &["--relay-max-circuit-bytes", "1MiB"],
        &["--allow-relayed-transfers"],
    ) else {
        return;
    };
    let f = Fixture::get();
    // Small paths pass through the relay (the index and narinfos are small)...
    let narinfo = format!("/{}.narinfo", hash_part(&f.lib));
    eventually(
        Duration::from_secs(90),
        "A's paths never became available through the relay",
        || get(&w.lab, &w.b, &narinfo).is_some_and(|(status, _, _)| status == 200),
    );
    let dest = ChrootStore::empty();
    let out = nix_copy_in_home2(&w, &dest, &[&f.lib]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // ...but the 100 MiB NAR would exceed the circuit's limit: it never arrives whole.
    let out = nix_copy_in_home2(&w, &dest, &[&f.big]);
    assert!(
        !out.status.success(),
        "the big NAR crossed the limited relay"
    );
    let valid = common::nix("nix", dest.root())
        .args(["path-info", "--store", &dest.url(), &f.big])
        .output()
        .unwrap();
    assert!(
        !valid.status.success(),
        "the big path is valid in the store"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(hash_part(&f.big)),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
