//! Peers that serve DAGs made to exhaust the reader: every block they send is genuine (it hashes
//! to the CID asked for), but the file they describe never yields content, or widens without
//! end. Each read ends with an error within seconds instead of growing the reader's memory.

#[path = "common/stream_swarm.rs"]
mod stream_swarm;

use std::collections::HashMap;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cid::Cid;
use futures_util::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId, StreamProtocol};
use peerix_node::bitswap::{Message, PROTOCOL};
use peerix_node::block::{sha256_multihash, RAW};
use peerix_node::{start, NodeConfig, NodeHandle};
use tempfile::TempDir;

const DAG_PB: u64 = 0x70;

fn varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn bytes_field(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    varint(out, field << 3 | 2);
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// A dag-pb UnixFS file node over `links`, as any importer would write it.
fn inner_node(links: &[Cid]) -> Vec<u8> {
    let mut block = Vec::new();
    for link in links {
        let mut encoded = Vec::new();
        bytes_field(&mut encoded, 1, &link.to_bytes());
        bytes_field(&mut block, 2, &encoded);
    }
    bytes_field(&mut block, 1, &[0x08, 0x02]);
    block
}

/// A DAG's blocks by CID, and its root.
struct Dag {
    blocks: HashMap<Cid, Vec<u8>>,
    root: Cid,
}

impl Dag {
    fn new() -> Self {
        Self {
            blocks: HashMap::new(),
            root: Cid::default(),
        }
    }

    fn add(&mut self, codec: u64, block: Vec<u8>) -> Cid {
        let cid = Cid::new_v1(codec, sha256_multihash(&block));
        self.blocks.insert(cid, block);
        self.root = cid;
        cid
    }

    /// One node with more links than any importer writes, all to one small leaf.
    fn too_wide() -> Self {
        let mut dag = Self::new();
        let leaf = dag.add(RAW, b"x".to_vec());
        dag.add(DAG_PB, inner_node(&vec![leaf; 5000]));
        dag
    }

    /// A chain of inner nodes far deeper than any file's DAG, ending in a leaf never reached.
    fn endless_chain() -> Self {
        let mut dag = Self::new();
        let mut below = dag.add(RAW, b"x".to_vec());
        for _ in 0..200 {
            below = dag.add(DAG_PB, inner_node(&[below]));
        }
        dag
    }

    /// Nodes of 2,000 links each to the node below: every level queues 2,000 more blocks.
    fn widening() -> Self {
        let mut dag = Self::new();
        let mut below = dag.add(RAW, b"x".to_vec());
        for _ in 0..20 {
            below = dag.add(DAG_PB, inner_node(&vec![below; 2000]));
        }
        dag
    }
}

/// Reads one length-prefixed message; `None` at the stream's end.
async fn read_message(stream: &mut libp2p::Stream) -> Option<Message> {
    let mut len = 0u64;
    for i in 0..10 {
        let mut byte = [0u8];
        stream.read_exact(&mut byte).await.ok()?;
        len |= u64::from(byte[0] & 0x7f) << (7 * i);
        if byte[0] & 0x80 == 0 {
            break;
        }
    }
    let mut body = vec![0u8; usize::try_from(len).ok()?];
    stream.read_exact(&mut body).await.ok()?;
    Message::decode(&body).ok()
}

/// A bare libp2p peer that answers every want for a block of `dag` with that block.
async fn server(dag: Dag) -> Multiaddr {
    let (addr, control, mut incoming) =
        stream_swarm::listening(Duration::from_secs(60), StreamProtocol::new(PROTOCOL)).await;
    let blocks = Arc::new(dag.blocks);
    tokio::spawn(async move {
        while let Some((peer, mut inbound)) = incoming.next().await {
            let (mut control, blocks) = (control.clone(), blocks.clone());
            tokio::spawn(async move {
                let Ok(mut out) = control
                    .open_stream(peer, StreamProtocol::new(PROTOCOL))
                    .await
                else {
                    return;
                };
                while let Some(message) = read_message(&mut inbound).await {
                    let found: Vec<(Cid, Vec<u8>)> = message
                        .wantlist
                        .iter()
                        .filter(|want| !want.cancel)
                        .filter_map(|want| Some((want.cid, blocks.get(&want.cid)?.clone())))
                        .collect();
                    for block in found {
                        let reply = Message {
                            blocks: vec![block],
                            ..Message::default()
                        };
                        if out
                            .write_all(reply.encode_delimited().bytes())
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                    let _ = out.flush().await;
                }
            });
        }
    });
    addr
}

async fn reader(dir: &TempDir) -> NodeHandle {
    let listen = vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()];
    start(NodeConfig::offline(dir.path().join("reader"), listen))
        .await
        .unwrap()
}

/// Reads `dag`'s file from a peer serving it; the error it ends with, and when.
async fn read_from_server(dag: Dag) -> (io::Error, Duration) {
    let dir = TempDir::new().unwrap();
    let reader = reader(&dir).await;
    let root = dag.root;
    let addr = server(dag).await;
    let peer: PeerId = match addr.iter().last() {
        Some(Protocol::P2p(peer)) => peer,
        _ => unreachable!("the server's address ends in /p2p"),
    };
    reader.dial(addr).await.unwrap();
    let started = Instant::now();
    let mut chunks = reader.cat_from(root, vec![peer]);
    loop {
        let chunk = tokio::time::timeout(Duration::from_secs(60), chunks.recv())
            .await
            .expect("the read ends within a minute");
        match chunk {
            Some(Ok(_)) => {}
            Some(Err(e)) => return (e, started.elapsed()),
            None => panic!("the hostile DAG was read as a whole file"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dags_made_to_exhaust_the_reader_are_refused() {
    // (what it is, the DAG, what the error says)
    type Case = (&'static str, fn() -> Dag, &'static str);
    let cases: [Case; 3] = [
        ("too wide", Dag::too_wide, "links"),
        ("endless chain", Dag::endless_chain, "in a row"),
        ("widening", Dag::widening, "queue"),
    ];
    for (name, dag, said) in cases {
        let (error, after) = read_from_server(dag()).await;
        assert_eq!(error.kind(), io::ErrorKind::InvalidData, "{name}: {error}");
        assert!(error.to_string().contains(said), "{name}: {error}");
        assert!(after < Duration::from_secs(20), "{name}: took {after:?}");
    }
}
