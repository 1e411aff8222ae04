//! Reading a UnixFS file by CID from peers, or with a [`Swarm`]: the DAG is walked in file order
//! with many blocks in flight, and content is handed out in order as it arrives.

use std::collections::VecDeque;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use cid::Cid;
use futures_util::stream::FuturesOrdered;
use futures_util::StreamExt;
use libp2p::PeerId;
use tokio::sync::{mpsc, Semaphore};

use crate::bitswap::{Bitswap, Purpose};
use crate::block::{DAG_PB, RAW};
use crate::swarm::{rendezvous, Swarm};
use crate::unixfs::{decode_node, decode_unixfs};

/// Where a file's blocks come from.
pub(crate) enum Sources {
    /// These peers, in turn.
    Peers(Vec<PeerId>),
    /// The swarm's holders, and its members for the blocks they take from the holders.
    Swarm { own: PeerId, swarm: Swarm },
}

impl Sources {
    /// One block, verified.
    async fn block(&self, bitswap: &Arc<Bitswap>, cid: Cid, first: usize) -> Option<Vec<u8>> {
        let (own, swarm) = match self {
            Self::Peers(peers) => return bitswap.want_block(cid, peers, first, Purpose::Own).await,
            Self::Swarm { own, swarm } => (*own, swarm),
        };
        if let Some(block) = bitswap.kept_block(&cid) {
            return Some(block);
        }
        let members: Vec<PeerId> = swarm
            .members()
            .into_iter()
            .filter(|p| !bitswap.is_banned(p))
            .collect();
        let taker = rendezvous(&cid.to_bytes(), own, &members);
        if taker != own {
            let from_member = Purpose::Swarm { from_holder: false };
            if let Some(block) = bitswap.want_block(cid, &[taker], 0, from_member).await {
                return Some(block);
            }
            swarm.0.missed(taker);
        }
        let from_holder = Purpose::Swarm { from_holder: true };
        bitswap
            .want_block(cid, &swarm.0.holders, first, from_holder)
            .await
    }
}

/// Blocks asked for at once. An inner node's children (up to 174) are all queued as it
/// arrives, but each is asked for only when one of these is free: in a swarm, the member a
/// block is asked from is chosen when it is asked, among the members known by then.
const WINDOW: usize = 64;
/// Content chunks buffered for the reader.
const OUTPUT_CHUNKS: usize = 8;
/// Links one inner node may have: kubo's importer writes up to 174, Helia's up to 1024. The
/// DAG comes from peers, and every link queues a block.
const MAX_CHILDREN: usize = 4096;
/// Blocks a walk holds the CIDs of at once: those asked for or waiting their turn, and the
/// children of inner nodes that arrived ahead of their turn. A file's walk holds the children of
/// each inner node on its current path (a few thousand for the widest importer); a DAG that
/// keeps widening without content is refused before it fills memory.
const MAX_QUEUED: usize = 16_384;
/// Inner nodes in file order with no content between them: the DAG's depth at most. kubo's
/// balanced DAG of an exabyte is 6 deep; a chain of inner nodes without content is an attack.
const MAX_INNER_IN_A_ROW: usize = 64;

/// What one block of a file DAG turned out to be.
enum Node {
    Content(Vec<u8>),
    Children(Vec<Cid>),
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

fn parse(cid: &Cid, block: Vec<u8>) -> io::Result<Node> {
    match cid.codec() {
        RAW => Ok(Node::Content(block)),
        DAG_PB => {
            let node = decode_node(&block).map_err(|e| invalid(format!("{cid}: {e}")))?;
            if node.links.len() > MAX_CHILDREN {
                return Err(invalid(format!(
                    "{cid}: {} links, more than the {MAX_CHILDREN} a file's node may have",
                    node.links.len()
                )));
            }
            if node.links.is_empty() {
                let data = node.data.unwrap_or_default();
                let unixfs = decode_unixfs(data).map_err(|e| invalid(format!("{cid}: {e}")))?;
                Ok(Node::Content(unixfs.data.to_vec()))
            } else {
                Ok(Node::Children(
                    node.links.into_iter().map(|l| l.cid).collect(),
                ))
            }
        }
        other => Err(invalid(format!(
            "{cid}: codec {other:#x} is not a UnixFS file"
        ))),
    }
}

/// Streams the content of the file `root`, fetching its blocks from `sources`, on `runtime`
/// (the node's: the blocks arrive there).
pub(crate) fn cat(
    runtime: &tokio::runtime::Handle,
    bitswap: Arc<Bitswap>,
    root: Cid,
    sources: Sources,
) -> mpsc::Receiver<io::Result<Vec<u8>>> {
    let (output, reader) = mpsc::channel(OUTPUT_CHUNKS);
    runtime.spawn(async move {
        if let Sources::Swarm { swarm, .. } = &sources {
            bitswap.join(swarm);
        }
        if let Err(e) = walk(bitswap, root, sources, &output).await {
            let _ = output.send(Err(e)).await;
        }
    });
    reader
}

async fn walk(
    bitswap: Arc<Bitswap>,
    root: Cid,
    sources: Sources,
    output: &mpsc::Sender<io::Result<Vec<u8>>>,
) -> io::Result<()> {
    let sources = Arc::new(sources);
    // Content this node published itself is read locally; asking for every block of a remote
    // file locally first would only cost a lookup each.
    let local = bitswap.local_block(root).await.is_some();
    // Spreads blocks over the peers in turn, so every holder serves a share.
    let turn = Arc::new(AtomicUsize::new(0));
    let asking = Arc::new(Semaphore::new(WINDOW));
    // The root, at first.
    let queued = Arc::new(AtomicUsize::new(1));
    let fetch = |cid: Cid| {
        let (bitswap, sources, turn) = (bitswap.clone(), sources.clone(), turn.clone());
        let (asking, queued) = (asking.clone(), queued.clone());
        async move {
            let mut block = None;
            if local {
                block = bitswap.local_block(cid).await;
            }
            if block.is_none() {
                let _asking = asking.acquire().await.map_err(io::Error::other)?;
                let first = turn.fetch_add(1, Ordering::Relaxed);
                block = sources.block(&bitswap, cid, first).await;
            }
            let block = block.ok_or_else(|| {
                io::Error::new(io::ErrorKind::NotFound, format!("no peer has {cid}"))
            })?;
            let node = parse(&cid, block)?;
            if let Node::Children(children) = &node {
                // Counted as they arrive, however far ahead of their turn.
                let held = queued.fetch_add(children.len(), Ordering::Relaxed) + children.len();
                if held > MAX_QUEUED {
                    return Err(invalid(format!(
                        "the DAG would queue more than {MAX_QUEUED} blocks at once"
                    )));
                }
            }
            queued.fetch_sub(1, Ordering::Relaxed);
            Ok(node)
        }
    };
    let mut pending: VecDeque<Cid> = VecDeque::from([root]);
    let mut in_flight = FuturesOrdered::new();
    let mut inner_in_a_row = 0;
    loop {
        while in_flight.len() < WINDOW {
            let Some(cid) = pending.pop_front() else {
                break;
            };
            in_flight.push_back(fetch(cid));
        }
        // A reader who left ends the walk at once, not at the next content: a DAG of inner
        // nodes alone would otherwise keep it fetching.
        let next = tokio::select! {
            next = in_flight.next() => next,
            () = output.closed() => return Ok(()),
        };
        let Some(next) = next else {
            return Ok(());
        };
        match next? {
            Node::Content(data) => {
                if !data.is_empty() {
                    inner_in_a_row = 0;
                }
                if output.send(Ok(data)).await.is_err() {
                    return Ok(());
                }
            }
            // Children come before everything requested so far: they go to the front.
            Node::Children(children) => {
                inner_in_a_row += 1;
                if inner_in_a_row > MAX_INNER_IN_A_ROW {
                    return Err(invalid(format!(
                        "more than {MAX_INNER_IN_A_ROW} inner nodes in a row without content"
                    )));
                }
                for child in children.into_iter().rev() {
                    in_flight.push_front(fetch(child));
                }
            }
        }
    }
}
