//! A provider lookup asks the public DHT as well as the private one: two nodes of different
//! network ids (so no private DHT in common), both clients of a public DHT of one server on
//! loopback, find each other's announcement there, and the finder can dial the provider, which
//! is in no routing table, at the address the lookup found.

use std::net::TcpListener;
use std::time::Duration;

use cid::Cid;
use libp2p::multiaddr::Protocol;
use libp2p::Multiaddr;
use peerix_node::block::{sha256_multihash, RAW};
use peerix_node::{start, NodeConfig, NodeHandle};
use tempfile::TempDir;

async fn node(dir: &TempDir, network_id: &str, config: impl FnOnce(&mut NodeConfig)) -> NodeHandle {
    let listen = vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()];
    let mut base = NodeConfig {
        network_id: network_id.to_owned(),
        public_dht: true,
        ..NodeConfig::offline(dir.path().join(network_id), listen)
    };
    config(&mut base);
    start(base).await.unwrap()
}

/// A loopback address with a port free a moment ago: the server must announce the address it
/// listens on, known before it starts.
fn free_loopback_addr() -> Multiaddr {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("/ip4/127.0.0.1/tcp/{port}").parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lookup_finds_providers_on_the_public_dht() {
    let dir = TempDir::new().unwrap();
    // With a direct external address, the server serves the public DHT; the others, without
    // one, stay its clients.
    let addr = free_loopback_addr();
    let server = node(&dir, "server", |c| {
        c.listen_addrs = vec![addr.clone()];
        c.announce_addrs = vec![addr.clone()];
    })
    .await;
    let server_addr = addr.with(Protocol::P2p(server.peer_id()));
    let bootstrap = |c: &mut NodeConfig| c.bootstrap_peers = vec![server_addr.clone()];
    let holder = node(&dir, "alpha", bootstrap).await;
    let finder = node(&dir, "beta", bootstrap).await;
    for _ in 0..100 {
        if server.status().await.unwrap().peers.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    let key = Cid::new_v1(RAW, sha256_multihash(b"a key only alpha announces"));
    holder.provide(&key).await.unwrap();
    let mut found = Default::default();
    for _ in 0..20 {
        found = finder.find_providers(&key).await.unwrap();
        if found.contains(&holder.peer_id()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(found.contains(&holder.peer_id()), "{found:?}");
    finder.dial_peer(holder.peer_id()).await.unwrap();
    let peers = finder.status().await.unwrap().peers;
    assert!(peers.iter().any(|p| p.peer_id == holder.peer_id()));
}
