//! Five nodes on loopback that only know a bootstrap node: a file added on one is found through
//! DHT provider records and read on another that was never given the holder's address.

use std::time::Duration;

use libp2p::multiaddr::Protocol;
use peerix_node::{start, NodeConfig, NodeHandle, Persist};
use tempfile::TempDir;

async fn node(dir: &TempDir, name: &str, bootstrap: Vec<libp2p::Multiaddr>) -> NodeHandle {
    let listen = vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()];
    let config = NodeConfig {
        bootstrap_peers: bootstrap,
        ..NodeConfig::offline(dir.path().join(name), listen)
    };
    start(config).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn providers_are_found_through_the_dht() {
    let dir = TempDir::new().unwrap();
    let hub = node(&dir, "hub", vec![]).await;
    let hub_addr = hub.status().await.unwrap().listen_addrs[0]
        .clone()
        .with(Protocol::P2p(hub.peer_id()));
    let mut nodes = Vec::new();
    for i in 0..4 {
        nodes.push(node(&dir, &format!("node-{i}"), vec![hub_addr.clone()]).await);
    }
    // Bounded wait until the hub has met everyone (identify fills the DHT routing tables).
    for _ in 0..100 {
        if hub.status().await.unwrap().peers.len() == nodes.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    let file = dir.path().join("content");
    let bytes: Vec<u8> = (0..1_000_000u32).map(|i| (i * 7 + i / 3) as u8).collect();
    std::fs::write(&file, &bytes).unwrap();
    let (holder, reader) = (&nodes[1], &nodes[3]);
    let cid = holder.add_file(&file).await.unwrap();

    let providers = reader.find_providers(&cid).await.unwrap();
    assert!(providers.contains(&holder.peer_id()), "{providers:?}");
    let mut chunks = reader.cat(cid).await.unwrap();
    let mut fetched = Vec::new();
    while let Some(chunk) = tokio::time::timeout(Duration::from_secs(30), chunks.recv())
        .await
        .unwrap()
    {
        fetched.extend_from_slice(&chunk.unwrap());
    }
    assert!(fetched == bytes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn announcements_are_paced_and_can_be_paused() {
    let dir = TempDir::new().unwrap();
    let hub = node(&dir, "hub", vec![]).await;
    let hub_addr = hub.status().await.unwrap().listen_addrs[0]
        .clone()
        .with(Protocol::P2p(hub.peer_id()));
    let listen = vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()];
    let publisher = start(NodeConfig {
        bootstrap_peers: vec![hub_addr],
        announce_rate: Some(4.0),
        ..NodeConfig::offline(dir.path().join("publisher"), listen)
    })
    .await
    .unwrap();
    for _ in 0..100 {
        if hub.status().await.unwrap().peers.len() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    publisher.pause_announcements(true).await.unwrap();
    let mut cids = Vec::new();
    for i in 0..8u8 {
        let content = vec![i; 1000];
        cids.push(
            publisher
                .add_content(
                    format!("item-{i}"),
                    std::io::Cursor::new(content),
                    Persist::Now,
                )
                .await
                .unwrap(),
        );
    }
    // Adding a file waits for its announcement, except while they are paused.
    let file = dir.path().join("added-while-paused");
    std::fs::write(&file, vec![9u8; 1000]).unwrap();
    let added = tokio::time::timeout(Duration::from_secs(5), publisher.add_file(&file)).await;
    cids.push(added.expect("add waits for paused announcements").unwrap());
    tokio::time::sleep(Duration::from_millis(600)).await;
    for cid in &cids {
        let found = hub.find_providers(cid).await.unwrap();
        assert!(found.is_empty(), "announced while paused");
    }
    // Announcing every provided key again while they wait queues none of them twice.
    for _ in 0..2 {
        publisher.announce_provided().await.unwrap();
    }
    let queued = publisher.status().await.unwrap().announcements.queued;
    assert_eq!(queued, cids.len(), "provided keys queued more than once");

    // At 4 per second, nine announcements take about two seconds once resumed.
    publisher.pause_announcements(false).await.unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    let early = count_found(&hub, &cids, publisher.peer_id()).await;
    assert!(
        early < cids.len(),
        "all {early} announced at once: not paced"
    );
    let mut found = early;
    for _ in 0..100 {
        found = count_found(&hub, &cids, publisher.peer_id()).await;
        if found == cids.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(found, cids.len(), "not every item was announced");
}

async fn count_found(hub: &NodeHandle, cids: &[cid::Cid], holder: libp2p::PeerId) -> usize {
    let mut found = 0;
    for cid in cids {
        if hub.find_providers(cid).await.unwrap().contains(&holder) {
            found += 1;
        }
    }
    found
}
