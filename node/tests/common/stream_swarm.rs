//! A bare libp2p swarm of a new identity (TCP, noise, yamux, raw streams), for tests that speak
//! to a node only what they write by hand. Included by the node's tests and the workspace's.

use std::time::Duration;

use libp2p::{noise, tcp, yamux, Swarm};

/// The swarm; its connections close after `idle` without streams.
pub fn stream_swarm(idle: Duration) -> Swarm<libp2p_stream::Behaviour> {
    stream_swarm_as(libp2p::identity::Keypair::generate_ed25519(), idle)
}

/// [`stream_swarm`] of the identity `keypair`.
pub fn stream_swarm_as(
    keypair: libp2p::identity::Keypair,
    idle: Duration,
) -> Swarm<libp2p_stream::Behaviour> {
    libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )
        .expect("a TCP transport")
        .with_behaviour(|_| libp2p_stream::Behaviour::new())
        .expect("a stream behaviour")
        .with_swarm_config(|c| c.with_idle_connection_timeout(idle))
        .build()
}

/// A [`stream_swarm`] listening on loopback and driven on a task of its own: its address (ending
/// in its peer id), its control, and the streams peers open to it for `protocol`.
#[allow(dead_code)] // Not every test that includes this file listens.
pub async fn listening(
    idle: Duration,
    protocol: libp2p::StreamProtocol,
) -> (
    libp2p::Multiaddr,
    libp2p_stream::Control,
    libp2p_stream::IncomingStreams,
) {
    use libp2p::futures::StreamExt;
    use libp2p::multiaddr::Protocol;

    let mut swarm = stream_swarm(idle);
    swarm
        .listen_on("/ip4/127.0.0.1/tcp/0".parse().expect("a loopback address"))
        .expect("listening on loopback");
    let addr = loop {
        if let libp2p::swarm::SwarmEvent::NewListenAddr { address, .. } =
            swarm.select_next_some().await
        {
            break address.with(Protocol::P2p(*swarm.local_peer_id()));
        }
    };
    let mut control = swarm.behaviour().new_control();
    let incoming = control.accept(protocol).expect("one acceptor per protocol");
    tokio::spawn(async move {
        loop {
            swarm.select_next_some().await;
        }
    });
    (addr, control, incoming)
}
