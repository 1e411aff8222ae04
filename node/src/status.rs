//! What the node reports about itself and its peers.

use std::time::Duration;

use libp2p::{Multiaddr, PeerId, StreamProtocol};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerInfo {
    pub peer_id: PeerId,
    /// The remote address of one of the connections to the peer, a direct one if any.
    pub addr: Option<Multiaddr>,
    /// Some connection to the peer is direct (not through a relay).
    pub direct: bool,
    /// Some connection to the peer goes through a relay.
    pub relayed: bool,
    /// The round trip to the peer over its fastest direct connection: the shortest ping has
    /// measured on it (later pings may wait behind queued data).
    pub rtt: Option<Duration>,
    /// Bytes received from and sent to the peer since this node started.
    pub bytes_in: u64,
    pub bytes_out: u64,
}

#[derive(Clone, Debug)]
pub struct NodeStatus {
    pub peer_id: PeerId,
    /// Where the node listens, relayed addresses (`.../p2p-circuit`) included.
    pub listen_addrs: Vec<Multiaddr>,
    /// Confirmed external addresses: announced ones, those AutoNAT confirmed, and the relayed
    /// addresses of live reservations. Identify advertises them.
    pub external_addrs: Vec<Multiaddr>,
    /// Our `/p2p-circuit` addresses with a live relay reservation (among `external_addrs`).
    pub relayed_addrs: Vec<Multiaddr>,
    pub peers: Vec<PeerInfo>,
    /// `public`, `private` or `unknown`, as AutoNAT last concluded (v2 verdicts first).
    pub nat_status: String,
    /// `endpoint-independent`, `symmetric` or `unknown`, from the ports peers observe us at:
    /// hole punching cannot work between two symmetric NATs.
    pub nat_mapping: String,
    /// Bytes received and sent over direct connections since start.
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// The cap on each direction, in bytes per second, if one is set.
    pub bandwidth_limit: Option<u64>,
    /// How substreams waited for the cap since start.
    pub bandwidth_waits: BandwidthWaits,
    /// TCP connections secured since start, by protocol and cipher.
    pub secured: SecuredConnections,
    /// Keys this node provides (announces in the DHT), one per published item.
    pub provided_keys: u64,
    pub announcements: AnnouncementStatus,
    /// Whether the operator stopped all peer-to-peer traffic.
    pub traffic_stopped: bool,
}

/// Connections secured since start: TLS with AES-GCM (two Peerix nodes, kubo), TLS with
/// ChaCha20-Poly1305 (a CPU without AES instructions at one end), Noise (Helia, js-libp2p).
/// Relayed connections and QUIC are not counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SecuredConnections {
    pub tls_aes_gcm: u64,
    pub tls_chacha20: u64,
    pub noise: u64,
}

/// The waits the bandwidth cap imposed, in each direction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BandwidthWaits {
    pub inbound: CapWaits,
    pub outbound: CapWaits,
}

/// How many times a substream found the cap's bucket empty and waited for it to refill, and the
/// time all those waits took together.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CapWaits {
    pub waits: u64,
    pub waited: Duration,
}

/// The DHT announcements: waiting, under way, done since start, and whether they are paused.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AnnouncementStatus {
    pub queued: usize,
    pub running: usize,
    pub done: u64,
    pub paused: bool,
}

impl NodeStatus {
    /// Where others may reach this node, each once: confirmed external addresses first, then
    /// the listen addresses.
    pub fn advertised_addrs(&self) -> Vec<Multiaddr> {
        let mut addrs: Vec<Multiaddr> = Vec::new();
        for addr in self.external_addrs.iter().chain(&self.listen_addrs) {
            if !addrs.contains(addr) {
                addrs.push(addr.clone());
            }
        }
        addrs
    }
}

/// What happens to connected peers, for protocols the application runs itself.
#[derive(Clone, Debug)]
pub enum PeerEvent {
    /// A connected peer said which protocols it speaks, on one of its connections: again on
    /// each new connection (so when a relayed peer gets its first direct connection, as after
    /// hole punching) and after each change. Unless relayed transfers are allowed, a relayed
    /// connection offers neither Bitswap nor the application protocols, so they are listed
    /// only once a direct connection is identified.
    Identified {
        peer_id: PeerId,
        protocols: Vec<StreamProtocol>,
    },
    /// The last connection to the peer closed.
    Disconnected(PeerId),
    /// A peer reached through a relay could not be connected to directly (DCUtR gave up).
    HolePunchFailed { peer_id: PeerId, error: String },
}
