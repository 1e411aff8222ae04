//! A bare libp2p peer (TCP, noise, yamux, raw streams) that speaks to a node only what a test
//! writes by hand: a hostile peer flooding a protocol, or one that opens streams and never reads.
//! Included by `tests/common` and `benches/nar_flood`.

#[path = "../../node/tests/common/stream_swarm.rs"]
mod stream_swarm;

use stream_swarm::stream_swarm_as;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, Stream};

/// How long the peer waits for its connection to the node.
const DIAL_TIMEOUT: Duration = Duration::from_secs(10);
/// Longer than any test: the node, not the peer, decides when the connection ends.
const IDLE_CONNECTION_TIMEOUT: Duration = Duration::from_secs(300);

/// A bare libp2p peer of its own new identity, connected to one node; dropping it closes the
/// connection.
pub struct BarePeer {
    control: libp2p_stream::Control,
    node: PeerId,
    /// Its own identity.
    pub id: PeerId,
    connected: Arc<AtomicBool>,
    swarm: tokio::task::AbortHandle,
}

impl Drop for BarePeer {
    fn drop(&mut self) {
        self.swarm.abort();
    }
}

impl BarePeer {
    /// Dials `addr` (which must end in `/p2p/<node>`) and drives the swarm from a task of the
    /// current runtime.
    pub async fn connect(addr: &Multiaddr) -> Self {
        Self::connect_as(addr, libp2p::identity::Keypair::generate_ed25519()).await
    }

    /// [`BarePeer::connect`] with the identity `keypair`.
    pub async fn connect_as(addr: &Multiaddr, keypair: libp2p::identity::Keypair) -> Self {
        let Some(Protocol::P2p(node)) = addr.iter().last() else {
            panic!("{addr} names no peer");
        };
        let mut swarm = stream_swarm_as(keypair, IDLE_CONNECTION_TIMEOUT);
        let id = *swarm.local_peer_id();
        swarm.dial(addr.clone()).unwrap();
        let deadline = tokio::time::sleep(DIAL_TIMEOUT);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                event = swarm.select_next_some() => match event {
                    SwarmEvent::ConnectionEstablished { .. } => break,
                    SwarmEvent::OutgoingConnectionError { error, .. } => panic!("dial: {error}"),
                    _ => {}
                },
                () = &mut deadline => panic!("no connection to {addr}"),
            }
        }
        let connected = Arc::new(AtomicBool::new(true));
        let control = swarm.behaviour().new_control();
        let flag = connected.clone();
        let swarm = tokio::spawn(async move {
            loop {
                if let SwarmEvent::ConnectionClosed {
                    num_established: 0, ..
                } = swarm.select_next_some().await
                {
                    flag.store(false, Ordering::SeqCst);
                }
            }
        });
        Self {
            control,
            node,
            id,
            connected,
            swarm: swarm.abort_handle(),
        }
    }

    /// Opens a stream of the Peerix protocol `protocol` (a name like `index/1.0.0`) of the
    /// default network to the node; panics if the node refuses it.
    pub async fn open(&mut self, protocol: &'static str) -> Stream {
        self.try_open(protocol)
            .await
            .unwrap_or_else(|e| panic!("open {protocol}: {e}"))
    }

    /// Opens a stream like [`BarePeer::open`], or says why it could not.
    pub async fn try_open(
        &mut self,
        protocol: &'static str,
    ) -> Result<Stream, libp2p_stream::OpenStreamError> {
        let protocol = peerix_node::network_protocol("default", protocol);
        self.control.open_stream(self.node, protocol).await
    }

    /// Opens a stream of a protocol that is not the network's own (Bitswap, say).
    pub async fn open_protocol(&mut self, protocol: libp2p::StreamProtocol) -> Stream {
        self.control
            .open_stream(self.node, protocol.clone())
            .await
            .unwrap_or_else(|e| panic!("open {protocol}: {e}"))
    }

    /// The streams the node opens of a protocol that is not the network's own.
    pub fn accept_protocol(
        &mut self,
        protocol: libp2p::StreamProtocol,
    ) -> libp2p_stream::IncomingStreams {
        self.control
            .accept(protocol)
            .expect("first to accept the protocol")
    }

    /// The streams the node opens of the Peerix protocol `protocol` of the default network.
    pub fn accept(&mut self, protocol: &'static str) -> libp2p_stream::IncomingStreams {
        let protocol = peerix_node::network_protocol("default", protocol);
        self.control
            .accept(protocol)
            .expect("first to accept the protocol")
    }

    /// Whether the connection to the node is still open (false once the node cut it).
    pub fn connected(&self) -> bool {
        self.connected.load(Ordering::SeqCst)
    }

    /// The flag behind [`BarePeer::connected`], to watch after the peer moved elsewhere.
    pub fn connection_flag(&self) -> Arc<AtomicBool> {
        self.connected.clone()
    }
}
