//! Peers that lie: one answers wants with wrong blocks, one with garbage, one with an oversized
//! message. Each is cut off and the file still arrives, whole and verified, from an honest peer.

#[path = "common/stream_swarm.rs"]
mod stream_swarm;

use std::time::{Duration, Instant};

use futures_util::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, StreamProtocol};
use peerix_node::bitswap::{Message, PROTOCOL};
use peerix_node::{start, NodeConfig, NodeHandle};
use tempfile::TempDir;

#[derive(Clone, Copy, Debug)]
enum Lie {
    WrongBlock,
    Garbage,
    Oversized,
}

/// A bare libp2p peer that speaks just enough Bitswap to lie; returns its address.
async fn liar(lie: Lie) -> Multiaddr {
    let (addr, control, mut incoming) =
        stream_swarm::listening(Duration::from_secs(60), StreamProtocol::new(PROTOCOL)).await;
    tokio::spawn(async move {
        while let Some((peer, mut inbound)) = incoming.next().await {
            let mut control = control.clone();
            tokio::spawn(async move {
                // Whatever was asked, answer with the lie on a stream of our own.
                let mut first = [0u8; 1];
                let _ = inbound.read(&mut first).await;
                let mut out = control
                    .open_stream(peer, StreamProtocol::new(PROTOCOL))
                    .await
                    .unwrap();
                let frame = match lie {
                    Lie::WrongBlock => {
                        let cid = peerix_node::unixfs::file_cid(
                            peerix_node::unixfs::CidVersion::V1,
                            &b"lie"[..],
                        )
                        .unwrap();
                        let body = Message {
                            blocks: vec![(cid, b"lie".to_vec())],
                            ..Message::default()
                        }
                        .encode();
                        [vec![body.len() as u8], body].concat()
                    }
                    Lie::Garbage => vec![0x05, 0xff, 0xff, 0xff, 0xff, 0xff],
                    Lie::Oversized => vec![0x80, 0x80, 0x80, 0x04],
                };
                let _ = out.write_all(&frame).await;
                let _ = out.flush().await;
                tokio::time::sleep(Duration::from_secs(30)).await;
            });
        }
    });
    addr
}

async fn node(dir: &TempDir, name: &str) -> NodeHandle {
    let listen = vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()];
    start(NodeConfig::offline(dir.path().join(name), listen))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn liars_are_cut_off_and_the_file_comes_from_an_honest_peer() {
    for lie in [Lie::WrongBlock, Lie::Garbage, Lie::Oversized] {
        let dir = TempDir::new().unwrap();
        let (honest, reader) = (node(&dir, "honest").await, node(&dir, "reader").await);
        let file = dir.path().join("content");
        let bytes: Vec<u8> = (0..2_000_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&file, &bytes).unwrap();
        let cid = honest.add_file(&file).await.unwrap();

        let liar_addr = liar(lie).await;
        let liar_id = match liar_addr.iter().last() {
            Some(Protocol::P2p(peer)) => peer,
            _ => unreachable!("liar addresses end in /p2p"),
        };
        reader.dial(liar_addr).await.unwrap();
        let honest_addr = honest.status().await.unwrap().listen_addrs[0]
            .clone()
            .with(Protocol::P2p(honest.peer_id()));
        reader.dial(honest_addr).await.unwrap();

        // The liar is asked first, for the root block.
        let started = Instant::now();
        let mut chunks = reader.cat_from(cid, vec![liar_id, honest.peer_id()]);
        let mut fetched = Vec::new();
        while let Some(chunk) = tokio::time::timeout(Duration::from_secs(60), chunks.recv())
            .await
            .unwrap()
        {
            fetched.extend_from_slice(&chunk.unwrap());
        }
        assert!(fetched == bytes, "{lie:?}: wrong content");
        // Cut off at once, not after the per-peer want timeout.
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{lie:?}: took {:?}",
            started.elapsed()
        );
    }
}
