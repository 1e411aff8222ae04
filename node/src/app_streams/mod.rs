//! Streams of the protocols this node runs itself (Bitswap, and the application's), in both
//! directions, on connections this behaviour chooses.
//!
//! Inbound streams are handed over without loss up to their caps. kubo answers every Bitswap
//! message on a new stream, and a busy peer opens many request streams at once; a generic
//! acceptor that drops streams it cannot pass on at once (as libp2p-stream's does) loses them.
//! Each negotiated stream takes a slot ([`slots`]) and is forwarded with it on a channel per
//! protocol; the slots bound the channels, and a stream past a peer's or the global cap is
//! reset at once (the peer sees "busy"; it is no penalty).
//!
//! Outbound streams are opened through a [`StreamOpener`]. libp2p-stream's `Control` opens them
//! on a random connection to the peer, which may be relayed; here the most recently established
//! direct connection is used, a relayed one only when relayed transfers are allowed, and the
//! peer is dialled when not connected. Unless relayed transfers are allowed, relayed
//! connections neither accept nor open these protocols: a relay's circuits are small and
//! short-lived, meant for meeting peers and hole punching.

mod handler;
mod inbound;
mod slots;

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::io;
use std::sync::Arc;
use std::task::{Context, Poll};

use libp2p::core::transport::PortUse;
use libp2p::core::Endpoint;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{
    behaviour::ConnectionEstablished, ConnectionClosed, ConnectionDenied, ConnectionId,
    DialFailure, FromSwarm, NetworkBehaviour, NotifyHandler, THandler, THandlerInEvent,
    THandlerOutEvent, ToSwarm,
};
use libp2p::{Multiaddr, PeerId, Stream, StreamProtocol};
use thiserror::Error;
use tokio::sync::{mpsc, oneshot};

use crate::config::InboundStreamLimits;
use crate::connections::is_relayed;
use handler::{Handler, Open, Reply};
pub use inbound::InboundStream;
use inbound::LiveConnections;
use slots::Slots;

pub type InboundReceiver = mpsc::UnboundedReceiver<(PeerId, InboundStream)>;

/// Stream requests queued for the swarm task before openers wait.
const REQUESTS: usize = 64;

#[derive(Debug, Error)]
pub enum OpenError {
    #[error("{0} is connected through relays only, and relayed transfers are off")]
    OnlyRelayed(PeerId),
    #[error("the peer does not support {0}")]
    Unsupported(StreamProtocol),
    #[error("cannot connect: {0}")]
    Dial(String),
    #[error("stream: {0}")]
    Io(#[from] io::Error),
    #[error("the node has stopped")]
    Stopped,
}

/// Opens outbound streams through [`AppStreams`]; cheap to clone.
#[derive(Clone)]
pub struct StreamOpener(mpsc::Sender<Request>);

impl StreamOpener {
    /// A stream of `protocol` to `peer`, on a connection chosen as the module docs say.
    pub async fn open_stream(
        &self,
        peer: PeerId,
        protocol: StreamProtocol,
    ) -> Result<Stream, OpenError> {
        let (reply, answer) = oneshot::channel();
        let open = Open { protocol, reply };
        self.0
            .send(Request { peer, open })
            .await
            .map_err(|_| OpenError::Stopped)?;
        answer.await.unwrap_or_else(|_| {
            Err(OpenError::Io(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "the connection closed before the stream opened",
            )))
        })
    }
}

struct Request {
    peer: PeerId,
    open: Open,
}

/// Requests waiting for a connection to their peer.
struct Waiting {
    /// The dial this behaviour started for them.
    dial: ConnectionId,
    opens: Vec<Open>,
}

/// Where a stream to a peer can go.
enum Route {
    On(ConnectionId),
    OnlyRelayed,
    NotConnected,
}

pub struct AppStreams {
    protocols: Vec<StreamProtocol>,
    senders: HashMap<StreamProtocol, mpsc::UnboundedSender<(PeerId, InboundStream)>>,
    slots: Arc<Slots>,
    live: LiveConnections,
    allow_relayed: bool,
    requests: mpsc::Receiver<Request>,
    /// Each peer's connections, oldest first, and whether each is relayed.
    connections: HashMap<PeerId, Vec<(ConnectionId, bool)>>,
    waiting: HashMap<PeerId, Waiting>,
    queue: VecDeque<ToSwarm<Infallible, Open>>,
}

impl AppStreams {
    /// Runs `protocols` (relayed connections too if `allow_relayed`), with `limits` on live
    /// inbound streams; returns a receiver of inbound streams for each protocol and the opener
    /// of outbound ones.
    pub fn new(
        protocols: Vec<StreamProtocol>,
        allow_relayed: bool,
        limits: InboundStreamLimits,
    ) -> (Self, HashMap<StreamProtocol, InboundReceiver>, StreamOpener) {
        let mut senders = HashMap::new();
        let mut receivers = HashMap::new();
        for protocol in &protocols {
            let (sender, receiver) = mpsc::unbounded_channel();
            senders.insert(protocol.clone(), sender);
            receivers.insert(protocol.clone(), receiver);
        }
        let (opener, requests) = mpsc::channel(REQUESTS);
        let this = Self {
            protocols,
            senders,
            slots: Slots::new(limits),
            live: LiveConnections::default(),
            allow_relayed,
            requests,
            connections: HashMap::new(),
            waiting: HashMap::new(),
            queue: VecDeque::new(),
        };
        (this, receivers, StreamOpener(opener))
    }

    fn handler(&self, relayed: bool) -> Handler {
        if relayed && !self.allow_relayed {
            Handler::new(Vec::new())
        } else {
            Handler::new(self.protocols.clone())
        }
    }

    fn route(&self, peer: &PeerId) -> Route {
        let Some(connections) = self.connections.get(peer).filter(|c| !c.is_empty()) else {
            return Route::NotConnected;
        };
        let direct = connections.iter().rev().find(|(_, relayed)| !relayed);
        match (direct, connections.last()) {
            (Some((id, _)), _) => Route::On(*id),
            (None, Some((id, _))) if self.allow_relayed => Route::On(*id),
            _ => Route::OnlyRelayed,
        }
    }

    fn on_request(&mut self, Request { peer, open }: Request) {
        match self.route(&peer) {
            Route::On(connection) => self.open_on(peer, connection, open),
            Route::OnlyRelayed => reply(open.reply, Err(OpenError::OnlyRelayed(peer))),
            Route::NotConnected => match self.waiting.get_mut(&peer) {
                Some(waiting) => waiting.opens.push(open),
                None => {
                    let opts = DialOpts::peer_id(peer)
                        .condition(PeerCondition::Disconnected)
                        .build();
                    let dial = opts.connection_id();
                    self.waiting.insert(
                        peer,
                        Waiting {
                            dial,
                            opens: vec![open],
                        },
                    );
                    self.queue.push_back(ToSwarm::Dial { opts });
                }
            },
        }
    }

    fn open_on(&mut self, peer: PeerId, connection: ConnectionId, open: Open) {
        self.queue.push_back(ToSwarm::NotifyHandler {
            peer_id: peer,
            handler: NotifyHandler::One(connection),
            event: open,
        });
    }

    /// Answers the requests waiting for `peer` with what its connections allow now; `failure`
    /// is why the dial failed, if it did.
    fn settle(&mut self, peer: PeerId, failure: Option<String>) {
        let Some(waiting) = self.waiting.remove(&peer) else {
            return;
        };
        for open in waiting.opens {
            match self.route(&peer) {
                Route::On(connection) => self.open_on(peer, connection, open),
                Route::OnlyRelayed => reply(open.reply, Err(OpenError::OnlyRelayed(peer))),
                Route::NotConnected => {
                    let why = failure
                        .clone()
                        .unwrap_or_else(|| "not connected".to_owned());
                    reply(open.reply, Err(OpenError::Dial(why)));
                }
            }
        }
    }

    fn on_connection_established(&mut self, peer: PeerId, id: ConnectionId, relayed: bool) {
        self.connections
            .entry(peer)
            .or_default()
            .push((id, relayed));
        let Some(waiting) = self.waiting.get(&peer) else {
            return;
        };
        // A relayed connection not made by our own dial leaves that dial a chance to go direct.
        if !relayed || self.allow_relayed || waiting.dial == id {
            self.settle(peer, None);
        }
    }
}

fn reply(reply: Reply, result: Result<Stream, OpenError>) {
    let _ = reply.send(result);
}

impl NetworkBehaviour for AppStreams {
    type ConnectionHandler = Handler;
    type ToSwarm = Infallible;

    fn handle_established_inbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        local_addr: &Multiaddr,
        _: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(self.handler(is_relayed(local_addr)))
    }

    fn handle_established_outbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        addr: &Multiaddr,
        _: Endpoint,
        _: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(self.handler(is_relayed(addr)))
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        match event {
            FromSwarm::ConnectionEstablished(ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                ..
            }) => self.on_connection_established(peer_id, connection_id, endpoint.is_relayed()),
            FromSwarm::ConnectionClosed(ConnectionClosed {
                peer_id,
                connection_id,
                ..
            }) => {
                self.live.closed(connection_id);
                if let Some(connections) = self.connections.get_mut(&peer_id) {
                    connections.retain(|(id, _)| *id != connection_id);
                    if connections.is_empty() {
                        self.connections.remove(&peer_id);
                    }
                }
            }
            FromSwarm::DialFailure(DialFailure {
                peer_id: Some(peer),
                connection_id,
                error,
            }) if self
                .waiting
                .get(&peer)
                .is_some_and(|w| w.dial == connection_id) =>
            {
                self.settle(peer, Some(error.to_string()));
            }
            _ => {}
        }
    }

    fn on_connection_handler_event(
        &mut self,
        peer: PeerId,
        connection: ConnectionId,
        (protocol, stream): THandlerOutEvent<Self>,
    ) {
        // Dropping a stream resets it: past a cap at once, and when its service stopped.
        let Some(slot) = self.slots.take(peer) else {
            tracing::debug!(%peer, %protocol, "too many inbound streams: resetting one");
            return;
        };
        if let Some(sender) = self.senders.get(&protocol) {
            let stream = self.live.hand_out(connection, stream, slot);
            let _ = sender.send((peer, stream));
        }
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        loop {
            if let Some(action) = self.queue.pop_front() {
                return Poll::Ready(action);
            }
            match self.requests.poll_recv(cx) {
                Poll::Ready(Some(request)) => self.on_request(request),
                // Every opener is gone, or none asked: nothing to do until one does.
                Poll::Ready(None) | Poll::Pending => return Poll::Pending,
            }
        }
    }
}
