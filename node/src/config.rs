//! What a node is started with.

use std::path::PathBuf;
use std::time::Duration;

use libp2p::{Multiaddr, StreamProtocol};

#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// Where the node keeps its database (`node.redb`): inner DAG nodes, the no-copy map,
    /// provided keys and the peer book.
    pub state_dir: PathBuf,
    /// Where the ed25519 identity lives (created with mode 0600 when missing).
    pub identity_file: PathBuf,
    pub listen_addrs: Vec<Multiaddr>,
    /// Peers dialled at start and added to both DHTs; each address ends in `/p2p/<peer id>`.
    pub bootstrap_peers: Vec<Multiaddr>,
    /// Nodes with different network ids share no private DHT.
    pub network_id: String,
    /// Discover peers on the local network by mDNS.
    pub mdns: bool,
    /// Take part in the public IPFS DHT (`/ipfs/kad/1.0.0`) besides the private one.
    pub public_dht: bool,
    /// Whether the node answers others' queries on the public DHT, or only asks.
    pub public_dht_role: DhtRole,
    /// QUIC (over UDP) beside TCP, to listen and to dial.
    pub quic: bool,
    /// Serve as a relay (v2) for peers that cannot be reached directly. Peers accept a relay's
    /// reservation only with the relay's addresses in it: the relay needs a confirmed external
    /// address (from [`NodeConfig::announce_addrs`] or AutoNAT) before it serves anyone.
    pub relay_server: bool,
    /// What the relay service grants, when [`NodeConfig::relay_server`] is on.
    pub relay_limits: RelayLimits,
    /// Relays to hold a reservation on while AutoNAT does not say this node is public (private
    /// or not known yet); each address ends in `/p2p/<peer id>`. They are dialled at start and
    /// the relayed addresses (`<relay>/p2p-circuit/p2p/<us>`) become external addresses. When
    /// empty, connected peers that offer the relay v2 hop protocol are used instead. At most
    /// two reservations are held at a time.
    pub relay_servers: Vec<Multiaddr>,
    /// Addresses this node is known to be reachable at (a port forward, a VPN), confirmed as
    /// external addresses at start.
    pub announce_addrs: Vec<Multiaddr>,
    /// Run Bitswap and the application protocols over relayed connections too. When off, their
    /// streams go over direct connections only, in both directions: relays are for meeting
    /// peers and hole punching, not for carrying data.
    pub allow_relayed_transfers: bool,
    /// Established connections at most, in and out together.
    pub max_connections: u32,
    /// Established connections peers opened, at most (`None`: only `max_connections`).
    pub max_inbound_connections: Option<u32>,
    /// Established connections this node opened, at most (`None`: only `max_connections`).
    pub max_outbound_connections: Option<u32>,
    /// Bytes per second at most in each direction, over all connections together.
    pub bandwidth_limit: Option<u64>,
    /// At start, dial the peers met in earlier runs (from the peer book).
    pub redial_known_peers: bool,
    /// DHT announcements started per second at most (`None`: eight at a time, unpaced).
    pub announce_rate: Option<f64>,
    /// Protocols the application runs on its own streams (see `NodeHandle::accept`).
    pub app_protocols: Vec<StreamProtocol>,
    /// Announce the keys provided in earlier runs as soon as the node starts. An application
    /// that must first withdraw what it no longer offers sets this to false and calls
    /// `NodeHandle::announce_provided` once it has.
    pub announce_provided_at_start: bool,
    /// Inbound streams of Bitswap and the application protocols a peer, and all peers, may
    /// hold open at once; a stream past a cap is reset.
    pub inbound_streams: InboundStreamLimits,
    /// How long an inbound Bitswap stream may stay silent, or take over one message.
    pub bitswap_deadlines: BitswapDeadlines,
}

/// The node's role in the public DHT.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DhtRole {
    /// A server while the node has a confirmed direct external address, a client otherwise: a
    /// node behind a NAT is of no use in others' routing tables.
    #[default]
    Auto,
    /// Always only a client: it asks and announces, and answers no one.
    Client,
    /// Always a server, reachable or not.
    Server,
}

/// Live inbound streams of the node's own protocols, counted from negotiation until the service
/// that took one drops it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InboundStreamLimits {
    pub per_peer: usize,
    /// All peers together: peer ids cost nothing, so a per-peer cap alone bounds nothing.
    pub total: usize,
}

/// Far above an honest peer's need: Nix asks 25 narinfos at once per holder, and kubo opens a
/// Bitswap stream per message; yet a few hundred idle tasks and buffers per peer at most.
const INBOUND_STREAMS_PER_PEER: usize = 256;
/// Some sixteen peers each at their cap, or all 256 connections' peers busy at once.
const INBOUND_STREAMS: usize = 4096;

impl Default for InboundStreamLimits {
    fn default() -> Self {
        Self {
            per_peer: INBOUND_STREAMS_PER_PEER,
            total: INBOUND_STREAMS,
        }
    }
}

/// Deadlines of inbound Bitswap streams.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BitswapDeadlines {
    /// A stream silent this long is closed (a peer opens a new one to say more).
    pub idle: Duration,
    /// A message once begun (4 MiB at most) must have arrived within this.
    pub message: Duration,
}

impl Default for BitswapDeadlines {
    fn default() -> Self {
        Self {
            idle: Duration::from_secs(300),
            message: Duration::from_secs(60),
        }
    }
}

/// What a relay service grants to the peers using it; the defaults are rust-libp2p's, small
/// enough for a relay to cost little bandwidth: 16 circuits of at most 128 KiB and 2 minutes
/// each, and 128 reservations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RelayLimits {
    /// Circuits relayed at once, for all peers together.
    pub max_circuits: usize,
    /// Bytes relayed per circuit (both directions together) before it is closed.
    pub max_circuit_bytes: u64,
    /// How long a circuit lasts at most.
    pub max_circuit_duration: Duration,
    /// Peers holding a reservation at once.
    pub max_reservations: usize,
}

impl Default for RelayLimits {
    fn default() -> Self {
        Self {
            max_circuits: 16,
            max_circuit_bytes: 128 * 1024,
            max_circuit_duration: Duration::from_secs(2 * 60),
            max_reservations: 128,
        }
    }
}

/// The public IPFS bootstrap peers, as kubo ships them.
pub const PUBLIC_BOOTSTRAP_PEERS: &[&str] = &[
    "/dnsaddr/bootstrap.libp2p.io/p2p/QmNnooDu7bfjPFoTZYxMNLWUQJyrVwtbZg5gBMjTezGAJN",
    "/dnsaddr/bootstrap.libp2p.io/p2p/QmQCU2EcMqAqQPR2i9bChDtGNJchTbq5TbXJJ16u19uLTa",
    "/dnsaddr/bootstrap.libp2p.io/p2p/QmbLHAnMoJPWSCR5Zhtx6BHJX9KiKNN6tpvbUcqanj75Nb",
    "/dnsaddr/bootstrap.libp2p.io/p2p/QmcZf59bWwK5XFi76CZX8cbJ4BhTzzA3gU1ZjYZcYW3dwt",
];

impl NodeConfig {
    /// A node keeping its state in `state_dir` that contacts nothing by itself: no mDNS, no
    /// public DHT, no relay service or relays, no peers from earlier runs; no relayed transfers.
    pub fn offline(state_dir: PathBuf, listen_addrs: Vec<Multiaddr>) -> Self {
        Self {
            identity_file: state_dir.join("identity.key"),
            state_dir,
            listen_addrs,
            bootstrap_peers: Vec::new(),
            network_id: "default".to_owned(),
            mdns: false,
            public_dht: false,
            public_dht_role: DhtRole::Auto,
            quic: true,
            relay_server: false,
            relay_limits: RelayLimits::default(),
            relay_servers: Vec::new(),
            announce_addrs: Vec::new(),
            allow_relayed_transfers: false,
            max_connections: 256,
            max_inbound_connections: None,
            max_outbound_connections: None,
            bandwidth_limit: None,
            redial_known_peers: false,
            announce_rate: None,
            app_protocols: Vec::new(),
            announce_provided_at_start: true,
            inbound_streams: InboundStreamLimits::default(),
            bitswap_deadlines: BitswapDeadlines::default(),
        }
    }
}
