//! Real libp2p nodes on loopback: they listen, dial each other over TCP and QUIC, and keep their
//! identities across restarts.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};
use peerix_node::{start, NodeConfig, NodeHandle};
use tempfile::TempDir;

async fn node(dir: &TempDir, name: &str, listen: &str) -> NodeHandle {
    let config = NodeConfig::offline(dir.path().join(name), vec![listen.parse().unwrap()]);
    start(config).await.expect("node starts")
}

async fn address_of(node: &NodeHandle, transport: &str) -> Multiaddr {
    let status = node.status().await.unwrap();
    let addr = status
        .listen_addrs
        .into_iter()
        .find(|a| a.to_string().contains(transport))
        .expect("a listen address of that transport");
    addr.with(Protocol::P2p(node.peer_id()))
}

/// Polls until `node` lists `peer` as connected (bounded).
async fn wait_connected(node: &NodeHandle, peer: PeerId) {
    for _ in 0..100 {
        let status = node.status().await.unwrap();
        if status.peers.iter().any(|p| p.peer_id == peer) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{peer} never showed as connected");
}

#[tokio::test]
async fn nodes_connect_over_tcp_and_quic() {
    let dir = TempDir::new().unwrap();
    for (transport, listen) in [
        ("tcp", "/ip4/127.0.0.1/tcp/0"),
        ("quic", "/ip4/127.0.0.1/udp/0/quic-v1"),
    ] {
        let a = node(&dir, &format!("a-{transport}"), listen).await;
        let b = node(&dir, &format!("b-{transport}"), listen).await;
        let found = b.dial(address_of(&a, transport).await).await.unwrap();
        assert_eq!(found, a.peer_id(), "{transport}");
        wait_connected(&a, b.peer_id()).await;
        wait_connected(&b, a.peer_id()).await;
    }
}

#[tokio::test]
async fn dialing_nobody_fails_cleanly() {
    let dir = TempDir::new().unwrap();
    let a = node(&dir, "a", "/ip4/127.0.0.1/tcp/0").await;
    // A port nothing listens on: bind one, then let it go.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr: Multiaddr = format!("/ip4/127.0.0.1/tcp/{closed}").parse().unwrap();
    assert!(a.dial(addr).await.is_err());
}

#[tokio::test]
async fn identity_persists_and_stays_private() {
    let dir = TempDir::new().unwrap();
    let identity_file = dir.path().join("identity.key");
    let config = |state: &str| NodeConfig {
        identity_file: identity_file.clone(),
        ..NodeConfig::offline(dir.path().join(state), vec![])
    };
    let first = start(config("one")).await.unwrap().peer_id();
    let again = start(config("two")).await.unwrap().peer_id();
    assert_eq!(first, again);
    let mode = std::fs::metadata(&identity_file)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    std::fs::write(&identity_file, b"not a key").unwrap();
    assert!(start(config("three")).await.is_err());
}

#[tokio::test]
async fn dialing_a_connected_peer_again_succeeds() {
    let dir = TempDir::new().unwrap();
    let a = node(&dir, "a", "/ip4/127.0.0.1/tcp/0").await;
    let b = node(&dir, "b", "/ip4/127.0.0.1/tcp/0").await;
    let addr = address_of(&a, "tcp").await;
    for _ in 0..6 {
        let found = b
            .dial(addr.clone())
            .await
            .map_err(|e| format!("{e:?}"))
            .unwrap();
        assert_eq!(found, a.peer_id());
    }
}
