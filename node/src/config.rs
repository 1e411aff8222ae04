//! What a node is started with.

use std::path::PathBuf;

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
    /// Serve as a relay (v2) for peers that cannot be reached directly.
    pub relay_server: bool,
    /// Established connections at most, in and out together.
    pub max_connections: u32,
    /// Bytes per second at most in each direction, over all connections together.
    pub bandwidth_limit: Option<u64>,
    /// At start, dial the peers met in earlier runs (from the peer book).
    pub redial_known_peers: bool,
    /// DHT announcements started per second at most (`None`: eight at a time, unpaced).
    pub announce_rate: Option<f64>,
    /// Protocols the application runs on its own streams (see `NodeHandle::accept`).
    pub app_protocols: Vec<StreamProtocol>,
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
    /// public DHT, no relay service, no peers from earlier runs.
    pub fn offline(state_dir: PathBuf, listen_addrs: Vec<Multiaddr>) -> Self {
        Self {
            identity_file: state_dir.join("identity.key"),
            state_dir,
            listen_addrs,
            bootstrap_peers: Vec::new(),
            network_id: "default".to_owned(),
            mdns: false,
            public_dht: false,
            relay_server: false,
            max_connections: 256,
            bandwidth_limit: None,
            redial_known_peers: false,
            announce_rate: None,
            app_protocols: Vec::new(),
        }
    }
}
