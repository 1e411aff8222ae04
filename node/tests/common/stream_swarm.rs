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
