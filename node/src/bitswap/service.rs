//! The Bitswap engine on libp2p streams: answers peers' wantlists from a [`BlockSource`] and
//! fetches blocks for this node, one peer at a time per block, moving on when a peer lacks it.
//! Blocks fetched with a swarm are kept a while and passed on to its members (`swarming`).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use cid::Cid;
use futures_util::io::BufReader;
use futures_util::AsyncBufReadExt;
use hashlink::LruCache;
use libp2p::{PeerId, StreamProtocol};
use tokio::sync::{mpsc, oneshot};

use super::wire::{read_body, write_message};
use super::{Message, Presence, WantEntry, WantType, PROTOCOL};
use crate::app_streams::{InboundReceiver, InboundStream, StreamOpener};
use crate::blocks::BlockSource;
use crate::config::BitswapDeadlines;
use crate::swarm::SwarmInner;
use budget::{BlockBudget, SendBudget};
use kept::{KeptBlocks, KEPT_BYTES};
use swarming::Owed;
pub use swarming::SwarmStatus;

/// Blocks packed into one reply at most; kubo and Helia cap whole messages at 4 MiB.
const REPLY_BYTES: usize = 1 << 20;
/// Messages queued for one peer before the sender waits.
const OUTBOX: usize = 16;
/// How long one peer gets to answer a want before the next is asked.
const WANT_TIMEOUT: Duration = Duration::from_secs(15);
/// A peer that takes longer to accept one message is dropped, freeing its share of the budget.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Peers remembered per map, the least recently used forgotten first: peer ids cost nothing,
/// so a flood of them must not grow the maps. Each is well above the connections a node keeps
/// (256 by default). A banned peer forgotten may be asked again, and is banned again if it lies.
const BANNED_PEERS: usize = 4096;
const OUTBOXES: usize = 1024;
const DELIVERING_PEERS: usize = 1024;
/// Wants sent together in one message at most.
const WANTS_PER_MESSAGE: usize = 256;
/// Blocks remembered as settled (received, or given up on), so that one arriving without a
/// waiter is not taken for a wrong block.
const SETTLED_BLOCKS: usize = 1024;
/// The longest a want waits on a peer that keeps delivering other blocks.
const MAX_WANT_WAIT: Duration = Duration::from_secs(600);

enum Outcome {
    Block(Vec<u8>),
    DontHave,
}

/// Why this node wants a block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// For itself alone.
    Own,
    /// For a swarm, from one of the file's holders or from the member that takes it from them.
    Swarm { from_holder: bool },
}

struct Waiter {
    peer: PeerId,
    reply: oneshot::Sender<Outcome>,
    purpose: Purpose,
}

pub struct Bitswap {
    streams: StreamOpener,
    blocks: Arc<dyn BlockSource>,
    wants: Mutex<HashMap<Cid, Vec<Waiter>>>,
    /// Each peer's outbound stream; one dropped from here ends once its queue is written.
    outboxes: Mutex<LruCache<PeerId, mpsc::Sender<Outgoing>>>,
    banned: Mutex<LruCache<PeerId, ()>>,
    send_budget: SendBudget,
    /// When each peer last delivered a wanted block.
    last_delivery: Mutex<LruCache<PeerId, Instant>>,
    /// The blocks received or given up on last, oldest first.
    settled: Mutex<VecDeque<Cid>>,
    deadlines: BitswapDeadlines,
    /// Blocks received for swarms, to pass on.
    kept: KeptBlocks,
    /// Members' wants for blocks on their way to this node.
    owed: Mutex<Owed>,
    /// The swarms this node fetches with now.
    swarms: Mutex<Vec<Weak<SwarmInner>>>,
    /// Blocks sent to peers from those kept for swarms.
    passed_on: AtomicU64,
    /// The engine itself, for the tasks it starts from where it is only borrowed.
    this: Weak<Bitswap>,
}

/// A message for a peer, holding its share of the send budget until it is written.
struct Outgoing {
    message: Message,
    _budget: Vec<BlockBudget>,
}

/// Adds the wants queued behind `message` to it (peers like Helia cap the messages they queue
/// per peer, not their size); returns the first queued message that carries blocks, if one
/// stopped the merging.
fn coalesce_wants(message: &mut Message, queue: &mut mpsc::Receiver<Outgoing>) -> Option<Outgoing> {
    if !message.blocks.is_empty() {
        return None;
    }
    while message.wantlist.len() < WANTS_PER_MESSAGE {
        match queue.try_recv() {
            Ok(next) if next.message.blocks.is_empty() => {
                message.wantlist.extend(next.message.wantlist);
                message.presences.extend(next.message.presences);
            }
            Ok(next) => return Some(next),
            Err(_) => return None,
        }
    }
    None
}

impl Bitswap {
    /// Starts answering the inbound Bitswap streams that arrive on `incoming`, within
    /// `deadlines`.
    pub(crate) fn start(
        streams: StreamOpener,
        blocks: Arc<dyn BlockSource>,
        mut incoming: InboundReceiver,
        deadlines: BitswapDeadlines,
    ) -> Arc<Self> {
        let this = Arc::new_cyclic(|this| Self {
            streams,
            blocks,
            wants: Mutex::new(HashMap::new()),
            outboxes: Mutex::new(LruCache::new(OUTBOXES)),
            banned: Mutex::new(LruCache::new(BANNED_PEERS)),
            send_budget: SendBudget::new(),
            last_delivery: Mutex::new(LruCache::new(DELIVERING_PEERS)),
            settled: Mutex::new(VecDeque::with_capacity(SETTLED_BLOCKS)),
            deadlines,
            kept: KeptBlocks::new(KEPT_BYTES),
            owed: Mutex::default(),
            swarms: Mutex::default(),
            passed_on: AtomicU64::new(0),
            this: this.clone(),
        });
        let engine = this.clone();
        tokio::spawn(async move {
            while let Some((peer, stream)) = incoming.recv().await {
                if engine.is_banned(&peer) {
                    continue;
                }
                tokio::spawn(engine.clone().serve(peer, stream));
            }
        });
        this
    }

    async fn serve(self: Arc<Self>, peer: PeerId, stream: InboundStream) {
        let BitswapDeadlines {
            idle: idle_deadline,
            message: message_deadline,
        } = self.deadlines;
        // Decoding a message hashes its blocks (over half a millisecond for 1 MiB); on a task of
        // its own it overlaps with reading the next message. One message waits between the two:
        // a stream holds at most three messages' bytes (one read, one waiting, one decoded).
        let (bodies, queue) = mpsc::channel(1);
        tokio::spawn(self.clone().process(peer, queue));
        let mut stream = BufReader::new(stream);
        loop {
            // Waiting for a message to begin may take long; the message itself may not.
            match tokio::time::timeout(idle_deadline, stream.fill_buf()).await {
                Ok(Ok([])) => return,
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "bitswap stream ended");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "bitswap stream idle: closing it");
                    return;
                }
            }
            let Ok(read) = tokio::time::timeout(message_deadline, read_body(&mut stream)).await
            else {
                tracing::debug!(%peer, "bitswap message too slow: closing the stream");
                return;
            };
            match read {
                Ok(Some(body)) => {
                    // Closed: the peer sent garbage and lost the stream.
                    if bodies.send(body).await.is_err() {
                        return;
                    }
                }
                Ok(None) => return,
                // A peer that sends what is not Bitswap loses the stream and our trust.
                Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                    self.penalise(peer, &e.to_string());
                    return;
                }
                // A connection that merely ended says nothing about the peer.
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "bitswap stream ended");
                    return;
                }
            }
        }
    }

    /// Decodes and acts on the messages `serve` read from `peer`, in order.
    async fn process(self: Arc<Self>, peer: PeerId, mut queue: mpsc::Receiver<Vec<u8>>) {
        while let Some(body) = queue.recv().await {
            match Message::decode(&body) {
                Ok(message) => self.on_message(peer, message).await,
                Err(e) => {
                    self.penalise(peer, &e.to_string());
                    return;
                }
            }
        }
    }

    async fn on_message(self: &Arc<Self>, peer: PeerId, message: Message) {
        for (cid, data) in message.blocks {
            // The decoder named each block by its own hash, so a match is a verified block.
            let waiters = self.wants.lock().ok().and_then(|mut w| w.remove(&cid));
            match waiters {
                Some(waiters) => {
                    if let Ok(mut delivered) = self.last_delivery.lock() {
                        delivered.insert(peer, Instant::now());
                    }
                    self.settle(cid);
                    if waiters.iter().any(|w| w.purpose != Purpose::Own) {
                        self.kept.insert(cid, data.clone());
                        self.pass_on(cid, &data);
                    }
                    // Usually one waiter: the last gets the block itself, not a copy.
                    let mut waiters = waiters;
                    if let Some(last) = waiters.pop() {
                        for waiter in waiters {
                            let _ = waiter.reply.send(Outcome::Block(data.clone()));
                        }
                        let _ = last.reply.send(Outcome::Block(data));
                    }
                }
                // A second copy of a block just received (wanted twice, or sent twice), or one
                // given up on a moment before it came, is waste, not harm.
                None if self.settled.lock().is_ok_and(|r| r.contains(&cid)) => {}
                // Wanted from this peer, yet it answers with other bytes: a wrong block.
                None if self.has_wants_from(peer) => {
                    self.penalise(peer, "sent a block that was not asked for");
                    return;
                }
                None => {}
            }
        }
        for (cid, presence) in message.presences {
            if presence == Presence::DontHave {
                self.peer_lacks(peer, &cid);
            }
        }
        let (cancelled, wanted): (Vec<WantEntry>, Vec<WantEntry>) =
            message.wantlist.into_iter().partition(|e| e.cancel);
        for entry in cancelled {
            self.cancel_owed(peer, &entry.cid);
        }
        if !wanted.is_empty() {
            self.answer(peer, wanted).await;
        }
    }

    /// Remembers that `cid` needs no more answers: one that still comes is waste, not a lie.
    fn settle(&self, cid: Cid) {
        if let Ok(mut settled) = self.settled.lock() {
            if settled.len() == SETTLED_BLOCKS {
                settled.pop_front();
            }
            settled.push_back(cid);
        }
    }

    fn has_wants_from(&self, peer: PeerId) -> bool {
        self.wants
            .lock()
            .map(|wants| wants.values().flatten().any(|w| w.peer == peer))
            .unwrap_or(false)
    }

    fn peer_lacks(&self, peer: PeerId, cid: &Cid) {
        self.fail_waiters(peer, Some(cid));
    }

    /// Tells whoever waits on `peer` (for `cid`, or for anything) that no block will come from it.
    fn fail_waiters(&self, peer: PeerId, cid: Option<&Cid>) {
        self.drop_waiters(cid, |w| w.peer == peer);
    }

    /// Removes the waiters (for `cid`, or for anything) that `which` picks, telling them no block
    /// will come; whether there were any.
    fn drop_waiters(&self, cid: Option<&Cid>, which: impl Fn(&Waiter) -> bool) -> bool {
        let Ok(mut wants) = self.wants.lock() else {
            return false;
        };
        let mut dropped = false;
        for (_, waiters) in wants
            .iter_mut()
            .filter(|(c, _)| cid.is_none_or(|cid| *c == cid))
        {
            let (picked, rest): (Vec<_>, Vec<_>) = waiters.drain(..).partition(&which);
            *waiters = rest;
            dropped |= !picked.is_empty();
            for waiter in picked {
                let _ = waiter.reply.send(Outcome::DontHave);
            }
        }
        let unfound: Vec<Cid> = wants
            .iter()
            .filter(|(_, waiters)| waiters.is_empty())
            .map(|(cid, _)| *cid)
            .collect();
        wants.retain(|_, waiters| !waiters.is_empty());
        drop(wants);
        // Whoever counted on this node for those blocks asks elsewhere.
        for cid in unfound {
            self.owed_unfound(cid);
        }
        dropped
    }

    /// Answers a wantlist one entry at a time, so that memory holds at most one reply's worth of
    /// blocks however long the wantlist is.
    async fn answer(self: &Arc<Self>, peer: PeerId, wanted: Vec<WantEntry>) {
        let mut reply = Message::default();
        let mut reply_bytes = 0;
        let mut reply_budget = Vec::new();
        for entry in wanted {
            let (blocks, cid) = (self.blocks.clone(), entry.cid);
            let mut budget = None;
            let found = match entry.want_type {
                WantType::Have => (self.kept.has(&cid) || blocks.has(&cid)).then(Vec::new),
                WantType::Block => {
                    budget = self.send_budget.for_block(peer).await;
                    match self.kept.get(&cid) {
                        Some(kept) => {
                            self.passed_on.fetch_add(1, Ordering::Relaxed);
                            Some(kept)
                        }
                        None => tokio::task::spawn_blocking(move || blocks.block(&cid))
                            .await
                            .ok()
                            .and_then(Result::ok)
                            .flatten(),
                    }
                }
            };
            match (found, entry.want_type) {
                (Some(data), WantType::Block) => {
                    reply_bytes += data.len();
                    reply.blocks.push((cid, data));
                    reply_budget.extend(budget);
                }
                (Some(_), WantType::Have) => reply.presences.push((cid, Presence::Have)),
                // A member of a swarm of ours: answered when the block comes.
                (None, WantType::Block) if self.owe(peer, cid, entry.send_dont_have) => {}
                (None, _) if entry.send_dont_have => {
                    reply.presences.push((cid, Presence::DontHave));
                }
                (None, _) => {}
            }
            if reply_bytes >= REPLY_BYTES {
                let budget = std::mem::take(&mut reply_budget);
                self.send_with_budget(peer, std::mem::take(&mut reply), budget)
                    .await;
                reply_bytes = 0;
            }
        }
        if reply != Message::default() {
            self.send_with_budget(peer, reply, reply_budget).await;
        }
    }

    /// Queues `message` for `peer` on its one outbound stream, opening it when needed.
    async fn send(self: &Arc<Self>, peer: PeerId, message: Message) {
        self.send_with_budget(peer, message, Vec::new()).await;
    }

    async fn send_with_budget(
        self: &Arc<Self>,
        peer: PeerId,
        message: Message,
        budget: Vec<BlockBudget>,
    ) {
        let outbox = self.outboxes.lock().ok().map(|mut outboxes| {
            if let Some(outbox) = outboxes.get(&peer) {
                return outbox.clone();
            }
            let outbox = self.open_outbox(peer);
            outboxes.insert(peer, outbox.clone());
            outbox
        });
        if let Some(outbox) = outbox {
            let outgoing = Outgoing {
                message,
                _budget: budget,
            };
            if outbox.send(outgoing).await.is_err() {
                if let Ok(mut outboxes) = self.outboxes.lock() {
                    outboxes.remove(&peer);
                }
            }
        }
    }

    fn open_outbox(self: &Arc<Self>, peer: PeerId) -> mpsc::Sender<Outgoing> {
        let (sender, mut queue) = mpsc::channel::<Outgoing>(OUTBOX);
        let streams = self.streams.clone();
        let engine = Arc::downgrade(self);
        tokio::spawn(async move {
            let opened = streams
                .open_stream(peer, StreamProtocol::new(PROTOCOL))
                .await;
            let mut carried = None;
            let failure = match opened {
                Ok(mut stream) => loop {
                    let next = match carried.take() {
                        Some(outgoing) => Some(outgoing),
                        None => queue.recv().await,
                    };
                    let Some(mut outgoing) = next else {
                        return;
                    };
                    carried = coalesce_wants(&mut outgoing.message, &mut queue);
                    let written = tokio::time::timeout(
                        WRITE_TIMEOUT,
                        write_message(&mut stream, &outgoing.message),
                    )
                    .await;
                    match written {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => break e.to_string(),
                        Err(_) => break "the peer stopped reading".to_owned(),
                    }
                },
                Err(e) => e.to_string(),
            };
            tracing::debug!(%peer, error = %failure, "bitswap stream failed");
            // Whatever was asked of this peer will not be answered: let the askers move on now.
            if let Some(engine) = engine.upgrade() {
                engine.forget_peer(peer);
            }
        });
        sender
    }

    /// Drops the outbound stream to `peer` and fails every want waiting on it.
    fn forget_peer(&self, peer: PeerId) {
        if let Ok(mut outboxes) = self.outboxes.lock() {
            outboxes.remove(&peer);
        }
        if let Ok(mut delivered) = self.last_delivery.lock() {
            delivered.remove(&peer);
        }
        self.fail_waiters(peer, None);
    }

    /// A peer that sent garbage or blocks nobody asked for is not asked again, and what it was
    /// asked goes to others at once.
    fn penalise(&self, peer: PeerId, reason: &str) {
        tracing::warn!(%peer, reason, "peer misbehaved: no longer asked for blocks");
        if let Ok(mut banned) = self.banned.lock() {
            banned.insert(peer, ());
        }
        self.forget_peer(peer);
    }

    pub(crate) fn is_banned(&self, peer: &PeerId) -> bool {
        self.banned
            .lock()
            .map(|b| b.contains_key(peer))
            .unwrap_or(false)
    }
}

mod budget;
mod kept;
mod swarming;
mod wants;

#[cfg(test)]
mod tests;
