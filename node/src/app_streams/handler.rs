//! The connection side of [`AppStreams`](super::AppStreams): accepts inbound streams of the
//! node's own protocols and opens the outbound ones the behaviour asks for.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::{ready, Ready};
use std::io;
use std::task::{Context, Poll};

use libp2p::core::upgrade::{InboundUpgrade, OutboundUpgrade, UpgradeInfo};
use libp2p::swarm::handler::{
    ConnectionEvent, DialUpgradeError, FullyNegotiatedInbound, FullyNegotiatedOutbound,
};
use libp2p::swarm::{
    ConnectionHandler, ConnectionHandlerEvent, StreamUpgradeError, SubstreamProtocol,
};
use libp2p::{Stream, StreamProtocol};
use tokio::sync::oneshot;

use super::OpenError;

pub type Reply = oneshot::Sender<Result<Stream, OpenError>>;

/// A stream of `protocol` to open on this connection, answered on `reply`.
#[derive(Debug)]
pub struct Open {
    pub protocol: StreamProtocol,
    pub reply: Reply,
}

/// Any one of a list of protocols; an empty list accepts nothing.
#[derive(Clone)]
pub struct AnyOf(pub Vec<StreamProtocol>);

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

impl OutboundUpgrade<Stream> for AnyOf {
    type Output = (StreamProtocol, Stream);
    type Error = Infallible;
    type Future = Ready<Result<Self::Output, Infallible>>;

    fn upgrade_outbound(self, stream: Stream, protocol: StreamProtocol) -> Self::Future {
        ready(Ok((protocol, stream)))
    }
}

pub struct Handler {
    /// What this connection accepts: nothing on a relayed connection unless relayed transfers
    /// are allowed (the behaviour then never asks it to open anything either).
    accepted: AnyOf,
    opens: VecDeque<Open>,
    negotiated: VecDeque<(StreamProtocol, Stream)>,
}

impl Handler {
    pub fn new(accepted: Vec<StreamProtocol>) -> Self {
        Self {
            accepted: AnyOf(accepted),
            opens: VecDeque::new(),
            negotiated: VecDeque::new(),
        }
    }
}

impl ConnectionHandler for Handler {
    type FromBehaviour = Open;
    type ToBehaviour = (StreamProtocol, Stream);
    type InboundProtocol = AnyOf;
    type OutboundProtocol = AnyOf;
    type InboundOpenInfo = ();
    type OutboundOpenInfo = Open;

    fn listen_protocol(&self) -> SubstreamProtocol<Self::InboundProtocol> {
        SubstreamProtocol::new(self.accepted.clone(), ())
    }

    fn poll(
        &mut self,
        _: &mut Context<'_>,
    ) -> Poll<ConnectionHandlerEvent<Self::OutboundProtocol, Open, Self::ToBehaviour>> {
        if let Some(open) = self.opens.pop_front() {
            let upgrade = AnyOf(vec![open.protocol.clone()]);
            return Poll::Ready(ConnectionHandlerEvent::OutboundSubstreamRequest {
                protocol: SubstreamProtocol::new(upgrade, open),
            });
        }
        match self.negotiated.pop_front() {
            Some(stream) => Poll::Ready(ConnectionHandlerEvent::NotifyBehaviour(stream)),
            None => Poll::Pending,
        }
    }

    fn on_behaviour_event(&mut self, open: Open) {
        self.opens.push_back(open);
    }

    fn on_connection_event(
        &mut self,
        event: ConnectionEvent<Self::InboundProtocol, Self::OutboundProtocol, (), Open>,
    ) {
        match event {
            ConnectionEvent::FullyNegotiatedInbound(FullyNegotiatedInbound {
                protocol: negotiated,
                ..
            }) => self.negotiated.push_back(negotiated),
            ConnectionEvent::FullyNegotiatedOutbound(FullyNegotiatedOutbound {
                protocol: (_, stream),
                info: open,
            }) => {
                let _ = open.reply.send(Ok(stream));
            }
            ConnectionEvent::DialUpgradeError(DialUpgradeError { info: open, error }) => {
                let error = match error {
                    StreamUpgradeError::NegotiationFailed => OpenError::Unsupported(open.protocol),
                    StreamUpgradeError::Timeout => OpenError::Io(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "negotiation timed out",
                    )),
                    StreamUpgradeError::Io(e) => OpenError::Io(e),
                    StreamUpgradeError::Apply(never) => match never {},
                };
                let _ = open.reply.send(Err(error));
            }
            _ => {}
        }
    }
}
