//! Blocks between real libp2p nodes over Bitswap: a file published without copying on one node is
//! read back, verified, on another.

use std::time::Duration;

use libp2p::multiaddr::Protocol;
use peerix_node::unixfs::{file_cid, CidVersion};
use peerix_node::{start, NodeConfig, NodeHandle};
use sha2::{Digest, Sha256};
use tempfile::TempDir;

async fn node(dir: &TempDir, name: &str) -> NodeHandle {
    let listen = vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()];
    start(NodeConfig::offline(dir.path().join(name), listen))
        .await
        .unwrap()
}

async fn connect(from: &NodeHandle, to: &NodeHandle) {
    let addr = to.status().await.unwrap().listen_addrs[0]
        .clone()
        .with(Protocol::P2p(to.peer_id()));
    let peer = from.dial(addr).await.map_err(|e| format!("{e:?}")).unwrap();
    assert_eq!(peer, to.peer_id());
}

fn content(len: usize) -> Vec<u8> {
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

async fn cat_all(node: &NodeHandle, cid: cid::Cid) -> std::io::Result<Vec<u8>> {
    let mut reader = node.cat(cid).await.unwrap();
    let mut out = Vec::new();
    while let Some(chunk) = tokio::time::timeout(Duration::from_secs(60), reader.recv())
        .await
        .unwrap()
    {
        out.extend_from_slice(&chunk?);
    }
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_added_on_one_node_is_read_on_another() {
    let dir = TempDir::new().unwrap();
    let (a, b) = (node(&dir, "a").await, node(&dir, "b").await);
    connect(&b, &a).await;
    for len in [0, 1, 262_144, 262_145, 64 << 20] {
        let file = dir.path().join(format!("file-{len}"));
        let bytes = content(len);
        std::fs::write(&file, &bytes).unwrap();
        let cid = a.add_file(&file).await.unwrap();
        assert_eq!(cid, file_cid(CidVersion::V1, &bytes[..]).unwrap());
        let fetched = cat_all(&b, cid).await.unwrap();
        assert_eq!(fetched.len(), len);
        assert!(
            Sha256::digest(&fetched) == Sha256::digest(&bytes),
            "{len} bytes differ"
        );
    }
}

#[tokio::test]
async fn a_file_changed_after_import_is_not_served() {
    let dir = TempDir::new().unwrap();
    let (a, b) = (node(&dir, "a").await, node(&dir, "b").await);
    let file = dir.path().join("file");
    let mut bytes = content(300_000);
    std::fs::write(&file, &bytes).unwrap();
    let cid = a.add_file(&file).await.unwrap();
    bytes[10] ^= 1;
    std::fs::write(&file, &bytes).unwrap();
    connect(&b, &a).await;
    let result = cat_all(&b, cid).await;
    assert!(
        result.is_err(),
        "a changed source must not be served as the old CID"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bandwidth_cap_holds_and_traffic_is_counted_per_peer() {
    const CAP: u64 = 2_000_000;
    const LEN: usize = 8 << 20;
    let dir = TempDir::new().unwrap();
    let listen = vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()];
    let capped = NodeConfig {
        bandwidth_limit: Some(CAP),
        ..NodeConfig::offline(dir.path().join("capped"), listen)
    };
    let a = start(capped).await.unwrap();
    let b = node(&dir, "b").await;
    connect(&b, &a).await;
    let file = dir.path().join("file");
    let bytes = content(LEN);
    std::fs::write(&file, &bytes).unwrap();
    let cid = a.add_file(&file).await.unwrap();

    let started = std::time::Instant::now();
    let fetched = cat_all(&b, cid).await.unwrap();
    let took = started.elapsed();
    assert!(fetched == bytes);
    // The bucket starts full (a quarter second of the cap), the rest flows at the cap.
    let floor = Duration::from_secs_f64((LEN as f64 - CAP as f64 / 4.0) / CAP as f64);
    assert!(
        took >= floor,
        "{LEN} bytes in {took:?} beat the cap (at least {floor:?})"
    );

    let sender = a.status().await.unwrap();
    assert_eq!(sender.bandwidth_limit, Some(CAP));
    let to_b = sender
        .peers
        .iter()
        .find(|p| p.peer_id == b.peer_id())
        .unwrap();
    assert!(
        to_b.bytes_out >= LEN as u64,
        "sent {} bytes",
        to_b.bytes_out
    );
    let receiver = b.status().await.unwrap();
    let from_a = receiver
        .peers
        .iter()
        .find(|p| p.peer_id == a.peer_id())
        .unwrap();
    assert!(
        from_a.bytes_in >= LEN as u64,
        "received {} bytes",
        from_a.bytes_in
    );
    assert!(receiver.bytes_in >= from_a.bytes_in);
}
