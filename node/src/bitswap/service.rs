//! The Bitswap engine on libp2p streams: answers peers' wantlists from a [`BlockSource`] and
//! fetches blocks for this node, one peer at a time per block, moving on when a peer lacks it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cid::Cid;
use futures_util::StreamExt;
use libp2p::{PeerId, StreamProtocol};
use libp2p_stream::Control;
use tokio::sync::{mpsc, oneshot};

use super::wire::{read_message, write_message};
use super::{Message, Presence, WantEntry, WantType, PROTOCOL};
use crate::blocks::BlockSource;

/// Blocks packed into one reply at most; kubo and Helia cap whole messages at 4 MiB.
const REPLY_BYTES: usize = 1 << 20;
/// Messages queued for one peer before the sender waits.
const OUTBOX: usize = 64;
/// How long one peer gets to answer a want before the next is asked.
const WANT_TIMEOUT: Duration = Duration::from_secs(15);

enum Outcome {
    Block(Vec<u8>),
    DontHave,
}

struct Waiter {
    peer: PeerId,
    reply: oneshot::Sender<Outcome>,
}

pub struct Bitswap {
    control: Control,
    blocks: Arc<dyn BlockSource>,
    wants: Mutex<HashMap<Cid, Vec<Waiter>>>,
    outboxes: Mutex<HashMap<PeerId, mpsc::Sender<Message>>>,
}

impl Bitswap {
    /// Starts answering inbound Bitswap streams.
    pub fn start(mut control: Control, blocks: Arc<dyn BlockSource>) -> Arc<Self> {
        let incoming = control.accept(StreamProtocol::new(PROTOCOL));
        let this = Arc::new(Self {
            control,
            blocks,
            wants: Mutex::new(HashMap::new()),
            outboxes: Mutex::new(HashMap::new()),
        });
        match incoming {
            Ok(mut incoming) => {
                let engine = this.clone();
                tokio::spawn(async move {
                    while let Some((peer, stream)) = incoming.next().await {
                        tokio::spawn(engine.clone().serve(peer, stream));
                    }
                });
            }
            Err(e) => tracing::error!(error = %e, "bitswap protocol already registered"),
        }
        this
    }

    async fn serve(self: Arc<Self>, peer: PeerId, mut stream: libp2p::Stream) {
        loop {
            match read_message(&mut stream).await {
                Ok(Some(message)) => self.on_message(peer, message).await,
                Ok(None) => return,
                Err(e) => {
                    // A peer that sends what is not Bitswap loses the stream.
                    tracing::warn!(%peer, error = %e, "dropping bitswap stream");
                    return;
                }
            }
        }
    }

    async fn on_message(self: &Arc<Self>, peer: PeerId, message: Message) {
        for (cid, data) in message.blocks {
            // The decoder named each block by its own hash, so a match is a verified block.
            let waiters = self.wants.lock().ok().and_then(|mut w| w.remove(&cid));
            for waiter in waiters.into_iter().flatten() {
                let _ = waiter.reply.send(Outcome::Block(data.clone()));
            }
        }
        for (cid, presence) in message.presences {
            if presence == Presence::DontHave {
                self.peer_lacks(peer, &cid);
            }
        }
        let wanted: Vec<WantEntry> = message.wantlist.into_iter().filter(|e| !e.cancel).collect();
        if !wanted.is_empty() {
            self.answer(peer, wanted).await;
        }
    }

    fn peer_lacks(&self, peer: PeerId, cid: &Cid) {
        let Ok(mut wants) = self.wants.lock() else {
            return;
        };
        if let Some(waiters) = wants.get_mut(cid) {
            let (lacking, rest): (Vec<_>, Vec<_>) = waiters.drain(..).partition(|w| w.peer == peer);
            *waiters = rest;
            for waiter in lacking {
                let _ = waiter.reply.send(Outcome::DontHave);
            }
        }
    }

    async fn answer(self: &Arc<Self>, peer: PeerId, wanted: Vec<WantEntry>) {
        let blocks = self.blocks.clone();
        let found = tokio::task::spawn_blocking(move || {
            wanted
                .into_iter()
                .map(|entry| {
                    let block = match entry.want_type {
                        WantType::Block => blocks.block(&entry.cid).ok().flatten(),
                        WantType::Have => {
                            blocks.block(&entry.cid).ok().flatten().map(|_| Vec::new())
                        }
                    };
                    (entry, block)
                })
                .collect::<Vec<_>>()
        })
        .await
        .unwrap_or_default();
        let mut reply = Message::default();
        let mut reply_bytes = 0;
        for (entry, block) in found {
            match (block, entry.want_type) {
                (Some(data), WantType::Block) => {
                    reply_bytes += data.len();
                    reply.blocks.push((entry.cid, data));
                }
                (Some(_), WantType::Have) => reply.presences.push((entry.cid, Presence::Have)),
                (None, _) if entry.send_dont_have => {
                    reply.presences.push((entry.cid, Presence::DontHave));
                }
                (None, _) => {}
            }
            if reply_bytes >= REPLY_BYTES {
                self.send(peer, std::mem::take(&mut reply)).await;
                reply_bytes = 0;
            }
        }
        if reply != Message::default() {
            self.send(peer, reply).await;
        }
    }

    /// Queues `message` for `peer` on its one outbound stream, opening it when needed.
    async fn send(self: &Arc<Self>, peer: PeerId, message: Message) {
        let outbox = self.outboxes.lock().ok().map(|mut outboxes| {
            outboxes
                .entry(peer)
                .or_insert_with(|| self.open_outbox(peer))
                .clone()
        });
        if let Some(outbox) = outbox {
            if outbox.send(message).await.is_err() {
                if let Ok(mut outboxes) = self.outboxes.lock() {
                    outboxes.remove(&peer);
                }
            }
        }
    }

    fn open_outbox(&self, peer: PeerId) -> mpsc::Sender<Message> {
        let (sender, mut queue) = mpsc::channel::<Message>(OUTBOX);
        let mut control = self.control.clone();
        tokio::spawn(async move {
            let mut stream = match control
                .open_stream(peer, StreamProtocol::new(PROTOCOL))
                .await
            {
                Ok(stream) => stream,
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "cannot open bitswap stream");
                    return;
                }
            };
            while let Some(message) = queue.recv().await {
                if let Err(e) = write_message(&mut stream, &message).await {
                    tracing::debug!(%peer, error = %e, "bitswap stream closed");
                    return;
                }
            }
        });
        sender
    }

    /// Fetches one block, asking `peers` in turn starting with the `first`-th.
    pub async fn want_block(
        self: &Arc<Self>,
        cid: Cid,
        peers: &[PeerId],
        first: usize,
    ) -> Option<Vec<u8>> {
        for i in 0..peers.len() {
            let peer = peers[(first + i) % peers.len()];
            let (reply, outcome) = oneshot::channel();
            if let Ok(mut wants) = self.wants.lock() {
                wants.entry(cid).or_default().push(Waiter { peer, reply });
            }
            let want = WantEntry {
                cid,
                priority: 1,
                cancel: false,
                want_type: WantType::Block,
                send_dont_have: true,
            };
            self.send(
                peer,
                Message {
                    wantlist: vec![want.clone()],
                    ..Message::default()
                },
            )
            .await;
            match tokio::time::timeout(WANT_TIMEOUT, outcome).await {
                Ok(Ok(Outcome::Block(data))) => return Some(data),
                Ok(Ok(Outcome::DontHave)) | Ok(Err(_)) => continue,
                Err(_) => {
                    let cancel = WantEntry {
                        cancel: true,
                        ..want
                    };
                    self.send(
                        peer,
                        Message {
                            wantlist: vec![cancel],
                            ..Message::default()
                        },
                    )
                    .await;
                    self.peer_lacks(peer, &cid);
                }
            }
        }
        None
    }
}
