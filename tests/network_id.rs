//! `--network-id` keeps networks apart: a node of another id, though connected, learns nothing
//! of what A holds and can ask it for nothing, while a node of A's id substitutes from it.

mod common;

use std::process::Command;
use std::time::Duration;

use common::bare_peer::BarePeer;
use common::{
    eventually, hash_part, nix_copy_from, nix_copy_ok, ChrootStore, Fixture, NixKey, Peerix,
};
use peerix::wire::NARINFO_PROTOCOL;

const LOOPBACK: &str = "/ip4/127.0.0.1/tcp/0";

/// A node of `network_id` on `store` that knows only `bootstrap` and trusts only `key`.
fn node(store: &ChrootStore, network_id: &str, bootstrap: Option<&str>, key: &str) -> Peerix {
    let mut args = vec![
        "--listen-addrs",
        LOOPBACK,
        "--trusted-public-key",
        key,
        "--network-id",
        network_id,
    ];
    if let Some(addr) = bootstrap {
        args.extend(["--bootstrap-peers", addr]);
    }
    Peerix::serve(store.root(), &args)
}

/// Whether `node`'s embedded node is connected to the peer at the end of `peer_addr`.
fn connected(node: &Peerix, peer_addr: &str) -> bool {
    let peer_id = peer_addr.rsplit("/p2p/").next().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_peerix"))
        .args(["ipfs", "--api", &node.url(), "peers"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).contains(peer_id)
}

fn paths_from_peers(node: &Peerix) -> u64 {
    node.status()["peers"]["paths"].as_u64().unwrap()
}

#[test]
fn nodes_of_another_network_id_exchange_and_serve_nothing() {
    let f = Fixture::get();
    let upstream = NixKey::generate("upstream-netid-1");
    let a_store = ChrootStore::signed(&upstream, &f.all());
    let a = node(&a_store, "alpha", None, &upstream.public);
    let a_addr = a.p2p_addr();
    let (b_store, c_store) = (ChrootStore::empty(), ChrootStore::empty());
    let stranger = node(&b_store, "beta", Some(&a_addr), &upstream.public);
    let same = node(&c_store, "alpha", Some(&a_addr), &upstream.public);

    // The node of A's id learns A's paths and substitutes them: the control.
    let narinfo = format!("/{}.narinfo", hash_part(&f.top));
    eventually(
        Duration::from_secs(20),
        "the node of A's network id never learnt A's paths",
        || same.get(&narinfo).0 == 200,
    );
    nix_copy_ok(
        &same.url(),
        &ChrootStore::empty(),
        &upstream.public,
        &[&f.top],
    );

    // The other one is connected to A all this while, and knows of nothing A holds.
    eventually(
        Duration::from_secs(10),
        "the node of another id never connected to A",
        || connected(&stranger, &a_addr),
    );
    assert!(paths_from_peers(&same) > 0);
    assert_eq!(paths_from_peers(&stranger), 0, "holdings crossed networks");
    assert_eq!(stranger.get(&narinfo).0, 404);
    let out = nix_copy_from(
        &stranger.url(),
        &ChrootStore::empty(),
        &upstream.public,
        &[&f.top],
    );
    assert!(!out.status.success(), "a path crossed networks");
}

/// A peer speaking the default network's narinfo protocol is refused by a node of another id,
/// and served by a node of the default one: nothing is answered across networks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_refuses_the_protocols_of_another_network() {
    let store = ChrootStore::empty();
    for (network_id, served) in [("alpha", false), ("default", true)] {
        let node = node(
            &store,
            network_id,
            None,
            &NixKey::generate("unused-1").public,
        );
        let addr = node.p2p_addr().parse().unwrap();
        let mut peer = BarePeer::connect(&addr).await;
        let opened = peer.try_open(NARINFO_PROTOCOL).await;
        assert_eq!(opened.is_ok(), served, "network {network_id}: {opened:?}");
    }
}
