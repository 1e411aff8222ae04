//! Everything the swarm speaks, in one `NetworkBehaviour`.

use std::time::Duration;

use libp2p::identity::Keypair;
use libp2p::kad::store::{MemoryStore, MemoryStoreConfig};
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::NetworkBehaviour;
use libp2p::{
    autonat, connection_limits, dcutr, identify, kad, mdns, ping, relay, PeerId, StreamProtocol,
};

use crate::app_streams::AppStreams;
use crate::direct_only::DirectOnly;
use crate::network::network_protocol;
use crate::traffic_stop::TrafficStop;
use crate::{DhtRole, NodeConfig, RelayLimits};

/// What kubo announces, so that IPFS peers treat this node as one of theirs.
const IPFS_PROTOCOL_VERSION: &str = "ipfs/0.1.0";
pub const PUBLIC_KAD: StreamProtocol = StreamProtocol::new("/ipfs/kad/1.0.0");
/// Provider records are ours to keep (one per published item); the default cap of 1024 is far
/// too small for a store.
const MAX_PROVIDED_KEYS: usize = 1 << 20;

#[derive(NetworkBehaviour)]
pub struct Behaviour {
    /// The emergency stop, asked first about every connection.
    pub stop: TrafficStop,
    pub limits: connection_limits::Behaviour,
    pub identify: identify::Behaviour,
    pub ping: ping::Behaviour,
    /// The DHT of this network id only.
    pub private_kad: kad::Behaviour<MemoryStore>,
    /// The public IPFS DHT, off for offline nodes.
    pub public_kad: Toggle<kad::Behaviour<MemoryStore>>,
    pub mdns: Toggle<mdns::tokio::Behaviour>,
    pub relay_client: relay::client::Behaviour,
    pub relay_server: Toggle<relay::Behaviour>,
    pub dcutr: dcutr::Behaviour,
    /// AutoNAT v1, which kubo and Helia speak: asks connected peers whether we are reachable,
    /// and answers them.
    pub autonat: autonat::Behaviour,
    /// AutoNAT v2: tests each candidate address with a dial-back from a fresh port, and does
    /// the same for peers. Both sides stay off relayed connections (see direct_only.rs).
    pub autonat_client: DirectOnly<autonat::v2::client::Behaviour>,
    pub autonat_server: DirectOnly<autonat::v2::server::Behaviour>,
    /// Streams of the protocols this node runs itself (Bitswap and the application's).
    pub app_streams: AppStreams,
}

/// `/peerix/<network tag>/kad/1.0.0` (see network.rs).
pub fn private_kad_protocol(network_id: &str) -> StreamProtocol {
    network_protocol(network_id, "kad/1.0.0")
}

/// AutoNAT v1 as kubo runs it, except that it also answers (and trusts) peers on private or
/// documentation addresses: a LAN or a lab is a network too. A server only ever dials back the IP
/// the asking peer connected from, so this lets no one aim it elsewhere.
fn autonat_v1_config() -> autonat::Config {
    autonat::Config {
        only_global_ips: false,
        boot_delay: Duration::from_secs(5),
        ..autonat::Config::default()
    }
}

fn relay_config(limits: &RelayLimits) -> relay::Config {
    relay::Config {
        max_circuits: limits.max_circuits,
        max_circuit_bytes: limits.max_circuit_bytes,
        // The relay panics on durations past u32::MAX seconds (they go on the wire as u32).
        max_circuit_duration: limits
            .max_circuit_duration
            .min(Duration::from_secs(u32::MAX.into())),
        max_reservations: limits.max_reservations,
        ..relay::Config::default()
    }
}

fn kad_behaviour(peer_id: PeerId, protocol: StreamProtocol) -> kad::Behaviour<MemoryStore> {
    let mut config = kad::Config::new(protocol);
    config.set_query_timeout(Duration::from_secs(60));
    // The event loop re-announces provided keys itself, paced, instead of all at once.
    config.set_provider_publication_interval(None);
    let store_config = MemoryStoreConfig {
        max_provided_keys: MAX_PROVIDED_KEYS,
        max_providers_per_key: 64,
        ..MemoryStoreConfig::default()
    };
    let mut behaviour = kad::Behaviour::with_config(
        peer_id,
        MemoryStore::with_config(peer_id, store_config),
        config,
    );
    // Peers on a LAN or loopback can always reach each other: answer DHT queries from the start
    // instead of waiting for an external address to be confirmed.
    behaviour.set_mode(Some(kad::Mode::Server));
    behaviour
}

/// A client of the public DHT (it asks and announces, answers no one) until the node has a
/// direct external address (see the event loop's reachability), unless `role` says otherwise: a
/// node behind a NAT or reached through relays only is of no use in others' routing tables, and
/// staying out of them keeps its peers from dialling it except for what it announced.
fn public_kad_behaviour(peer_id: PeerId, role: DhtRole) -> kad::Behaviour<MemoryStore> {
    let mut behaviour = kad_behaviour(peer_id, PUBLIC_KAD);
    behaviour.set_mode(Some(public_dht_mode(role, false)));
    behaviour
}

/// The public DHT mode for `role`, with or without a confirmed direct external address.
pub(crate) fn public_dht_mode(role: DhtRole, direct_address: bool) -> kad::Mode {
    match (role, direct_address) {
        (DhtRole::Server, _) | (DhtRole::Auto, true) => kad::Mode::Server,
        (DhtRole::Client, _) | (DhtRole::Auto, false) => kad::Mode::Client,
    }
}

impl Behaviour {
    pub fn new(
        key: &Keypair,
        relay_client: relay::client::Behaviour,
        config: &NodeConfig,
        app_streams: AppStreams,
    ) -> Result<Self, std::io::Error> {
        let peer_id = key.public().to_peer_id();
        let mdns = if config.mdns {
            // Ask again every 20 s rather than every 5 min: a query sent while the other node
            // was still starting would otherwise leave two LAN neighbours strangers for minutes.
            let config = mdns::Config {
                query_interval: Duration::from_secs(20),
                ..mdns::Config::default()
            };
            Some(mdns::tokio::Behaviour::new(config, peer_id)?)
        } else {
            None
        };
        let limits = connection_limits::ConnectionLimits::default()
            .with_max_established(Some(config.max_connections))
            .with_max_established_incoming(config.max_inbound_connections)
            .with_max_established_outgoing(config.max_outbound_connections)
            .with_max_established_per_peer(Some(4));
        let identify = identify::Config::new(IPFS_PROTOCOL_VERSION.to_owned(), key.public())
            .with_agent_version(format!("peerix/{}", env!("CARGO_PKG_VERSION")));
        Ok(Self {
            stop: TrafficStop::default(),
            limits: connection_limits::Behaviour::new(limits),
            identify: identify::Behaviour::new(identify),
            ping: ping::Behaviour::default(),
            private_kad: kad_behaviour(peer_id, private_kad_protocol(&config.network_id)),
            public_kad: config
                .public_dht
                .then(|| public_kad_behaviour(peer_id, config.public_dht_role))
                .into(),
            mdns: mdns.into(),
            relay_client,
            relay_server: config
                .relay_server
                .then(|| relay::Behaviour::new(peer_id, relay_config(&config.relay_limits)))
                .into(),
            dcutr: dcutr::Behaviour::new(peer_id),
            autonat: autonat::Behaviour::new(peer_id, autonat_v1_config()),
            autonat_client: DirectOnly(autonat::v2::client::Behaviour::default()),
            autonat_server: DirectOnly(autonat::v2::server::Behaviour::default()),
            app_streams,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_public_dht_role_decides_the_mode_unless_it_is_auto() {
        assert_eq!(public_dht_mode(DhtRole::Auto, false), kad::Mode::Client);
        assert_eq!(public_dht_mode(DhtRole::Auto, true), kad::Mode::Server);
        assert_eq!(public_dht_mode(DhtRole::Client, true), kad::Mode::Client);
        assert_eq!(public_dht_mode(DhtRole::Server, false), kad::Mode::Server);
    }
}
