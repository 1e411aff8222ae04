//! Inbound streams of the protocols this node runs itself (Bitswap, and the application's), handed
//! over without loss. kubo answers every Bitswap message on a new stream, and a busy peer opens
//! many request streams at once; a generic acceptor that drops streams it cannot pass on at once
//! (as libp2p-stream's does) loses them. This behaviour queues each negotiated stream and
//! forwards it on an unbounded channel per protocol (receivers hand streams to tasks as soon as
//! they arrive, so the queues stay short).

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::future::{ready, Ready};
use std::task::{Context, Poll};

use libp2p::core::transport::PortUse;
use libp2p::core::upgrade::{DeniedUpgrade, InboundUpgrade, UpgradeInfo};
use libp2p::core::Endpoint;
use libp2p::swarm::handler::{ConnectionEvent, FullyNegotiatedInbound};
use libp2p::swarm::{
    ConnectionDenied, ConnectionHandler, ConnectionHandlerEvent, ConnectionId, FromSwarm,
    NetworkBehaviour, SubstreamProtocol, THandler, THandlerInEvent, THandlerOutEvent, ToSwarm,
};
use libp2p::{Multiaddr, PeerId, Stream, StreamProtocol};
use tokio::sync::mpsc;

pub type InboundReceiver = mpsc::UnboundedReceiver<(PeerId, Stream)>;

pub struct InboundStreams {
    protocols: Vec<StreamProtocol>,
    senders: HashMap<StreamProtocol, mpsc::UnboundedSender<(PeerId, Stream)>>,
}

impl InboundStreams {
    /// Accepts `protocols`; returns a receiver of streams for each.
    pub fn new(protocols: Vec<StreamProtocol>) -> (Self, HashMap<StreamProtocol, InboundReceiver>) {
        let mut senders = HashMap::new();
        let mut receivers = HashMap::new();
        for protocol in &protocols {
            let (sender, receiver) = mpsc::unbounded_channel();
            senders.insert(protocol.clone(), sender);
            receivers.insert(protocol.clone(), receiver);
        }
        (Self { protocols, senders }, receivers)
    }

    fn handler(&self) -> InboundHandler {
        InboundHandler {
            protocols: AnyOf(self.protocols.clone()),
            negotiated: VecDeque::new(),
        }
    }
}

/// Any one of a list of protocols, as negotiated on an inbound stream.
#[derive(Clone)]
pub struct AnyOf(Vec<StreamProtocol>);

impl UpgradeInfo for AnyOf {
    type Info = StreamProtocol;
    type InfoIter = std::vec::IntoIter<StreamProtocol>;

    fn protocol_info(&self) -> Self::InfoIter {
        self.0.clone().into_iter()
    }
}

impl InboundUpgrade<Stream> for AnyOf {
    type Output = (StreamProtocol, Stream);
    type Error = Infallible;
    type Future = Ready<Result<Self::Output, Infallible>>;

    fn upgrade_inbound(self, stream: Stream, protocol: StreamProtocol) -> Self::Future {
        ready(Ok((protocol, stream)))
    }
}

impl NetworkBehaviour for InboundStreams {
    type ConnectionHandler = InboundHandler;
    type ToSwarm = Infallible;

    fn handle_established_inbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        _: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(self.handler())
    }

    fn handle_established_outbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        _: Endpoint,
        _: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(self.handler())
    }

    fn on_swarm_event(&mut self, _: FromSwarm) {}

    fn on_connection_handler_event(
        &mut self,
        peer: PeerId,
        _: ConnectionId,
        (protocol, stream): THandlerOutEvent<Self>,
    ) {
        // A receiver is gone only when its service stopped: the stream is then dropped.
        if let Some(sender) = self.senders.get(&protocol) {
            let _ = sender.send((peer, stream));
        }
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        Poll::Pending
    }
}

pub struct InboundHandler {
    protocols: AnyOf,
    negotiated: VecDeque<(StreamProtocol, Stream)>,
}

impl ConnectionHandler for InboundHandler {
    type FromBehaviour = Infallible;
    type ToBehaviour = (StreamProtocol, Stream);
    type InboundProtocol = AnyOf;
    type OutboundProtocol = DeniedUpgrade;
    type InboundOpenInfo = ();
    type OutboundOpenInfo = ();

    fn listen_protocol(&self) -> SubstreamProtocol<Self::InboundProtocol> {
        SubstreamProtocol::new(self.protocols.clone(), ())
    }

    fn poll(
        &mut self,
        _: &mut Context<'_>,
    ) -> Poll<ConnectionHandlerEvent<Self::OutboundProtocol, (), Self::ToBehaviour>> {
        match self.negotiated.pop_front() {
            Some(stream) => Poll::Ready(ConnectionHandlerEvent::NotifyBehaviour(stream)),
            None => Poll::Pending,
        }
    }

    fn on_behaviour_event(&mut self, event: Infallible) {
        match event {}
    }

    fn on_connection_event(
        &mut self,
        event: ConnectionEvent<Self::InboundProtocol, Self::OutboundProtocol>,
    ) {
        if let ConnectionEvent::FullyNegotiatedInbound(FullyNegotiatedInbound {
            protocol: negotiated,
            ..
        }) = event
        {
            self.negotiated.push_back(negotiated);
        }
    }
}
