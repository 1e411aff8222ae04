//! The node's open connections as the event loop sees them: which peer, direct or relayed, and
//! from which local port (for NAT mapping observations).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use libp2p::core::transport::PortUse;
use libp2p::core::ConnectedPoint;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::ConnectionId;
use libp2p::{Multiaddr, PeerId};

use crate::nat::{self, Transport};
use crate::tcp_dials::DialedFrom;
use crate::traffic::Traffic;
use crate::PeerInfo;

/// Whether `addr` goes through a relay (`/p2p-circuit`).
pub fn is_relayed(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| p == Protocol::P2pCircuit)
}

/// One open connection: the peer, how it was made, and whether it replaced a relayed one (hole
/// punching: both sides dialled at once).
struct Open {
    peer: PeerId,
    endpoint: ConnectedPoint,
    upgraded: bool,
    /// The shortest round trip ping measured on it: the path's own. A later ping can wait
    /// behind bulk data queued on the connection (a capped uplink full of blocks adds tens of
    /// ms), which says how busy the link is, not how far the peer is.
    rtt: Option<Duration>,
    /// The local port a TCP dial really connected from.
    tcp_local_port: Option<u16>,
}

pub struct Connections {
    open: HashMap<ConnectionId, Open>,
    dialed_from: DialedFrom,
}

impl Connections {
    pub fn new(dialed_from: DialedFrom) -> Self {
        Self {
            open: HashMap::new(),
            dialed_from,
        }
    }

    /// Records a connection; true when it is the peer's first direct one while relayed ones
    /// are open (a relayed connection was upgraded).
    pub fn on_established(
        &mut self,
        id: ConnectionId,
        peer: PeerId,
        endpoint: ConnectedPoint,
    ) -> bool {
        let upgraded = !endpoint.is_relayed() && self.relayed_only(&peer);
        let tcp_local_port = match &endpoint {
            ConnectedPoint::Dialer { address, .. } => match nat::split(address) {
                Some((Transport::Tcp, ip, port)) => {
                    self.dialed_from.take(&SocketAddr::new(ip, port))
                }
                _ => None,
            },
            ConnectedPoint::Listener { .. } => None,
        };
        let open = Open {
            peer,
            endpoint,
            upgraded,
            rtt: None,
            tcp_local_port,
        };
        self.open.insert(id, open);
        upgraded
    }

    pub fn on_closed(&mut self, id: &ConnectionId) {
        self.open.remove(id);
    }

    pub fn on_rtt(&mut self, id: &ConnectionId, rtt: Duration) {
        if let Some(open) = self.open.get_mut(id) {
            open.rtt = Some(open.rtt.map_or(rtt, |shortest| shortest.min(rtt)));
        }
    }

    fn of<'a>(&'a self, peer: &'a PeerId) -> impl Iterator<Item = &'a ConnectedPoint> + 'a {
        self.open
            .values()
            .filter(move |open| open.peer == *peer)
            .map(|open| &open.endpoint)
    }

    pub fn is_relayed(&self, id: &ConnectionId) -> bool {
        self.open
            .get(id)
            .is_some_and(|open| open.endpoint.is_relayed())
    }

    pub fn has_direct(&self, peer: &PeerId) -> bool {
        self.of(peer).any(|e| !e.is_relayed())
    }

    fn relayed_only(&self, peer: &PeerId) -> bool {
        self.of(peer).next().is_some() && !self.has_direct(peer)
    }

    /// The peer as the status reports it; the address is a direct connection's if there is one.
    pub fn peer_info(&self, peer: PeerId, traffic: &Traffic) -> PeerInfo {
        let (bytes_in, bytes_out) = traffic.totals(&peer).unwrap_or_default();
        let endpoints: Vec<&ConnectedPoint> = self.of(&peer).collect();
        let rtt = self
            .open
            .values()
            .filter(|open| open.peer == peer && !open.endpoint.is_relayed())
            .filter_map(|open| open.rtt)
            .min();
        let addr = endpoints
            .iter()
            .find(|e| !e.is_relayed())
            .or(endpoints.first())
            .map(|e| e.get_remote_address().clone());
        PeerInfo {
            peer_id: peer,
            addr,
            direct: endpoints.iter().any(|e| !e.is_relayed()),
            relayed: endpoints.iter().any(|e| e.is_relayed()),
            rtt,
            bytes_in,
            bytes_out,
        }
    }

    /// The peers connected to by dialling them, each at the address dialled (where it listens).
    pub fn dialed_addrs(&self) -> impl Iterator<Item = (&PeerId, &Multiaddr)> {
        self.open.values().filter_map(|open| match &open.endpoint {
            ConnectedPoint::Dialer { address, .. } if !is_relayed(address) => {
                Some((&open.peer, address))
            }
            _ => None,
        })
    }

    /// The listening port an outbound connection really left from: for TCP only when its
    /// socket had it (libp2p-tcp falls back to a fresh one unannounced; see [`DialedFrom`]),
    /// for QUIC always (it sends from its listening socket). Inbound
    /// connections have none here: the remote then reports the address it dialled, which says
    /// nothing about how our NAT maps. Nor do hole-punched connections: the other side's early
    /// packets may have made the NAT pick another port for that one destination.
    pub fn reused_port<'a>(
        &self,
        id: &ConnectionId,
        mut listeners: impl Iterator<Item = &'a Multiaddr>,
    ) -> Option<u16> {
        let open = self.open.get(id).filter(|open| !open.upgraded)?;
        let ConnectedPoint::Dialer {
            address,
            port_use: PortUse::Reuse,
            ..
        } = &open.endpoint
        else {
            return None;
        };
        let (transport, remote, _) = nat::split(address)?;
        let listening = listeners.find_map(|listener| {
            let (t, ip, port) = nat::split(listener)?;
            let matches = t == transport
                && ip.is_ipv4() == remote.is_ipv4()
                && ip.is_loopback() == remote.is_loopback();
            matches.then_some(port)
        })?;
        // A TCP dial that fell back to a fresh port tells nothing: no other connection leaves
        // from that port for its mapping to be compared with.
        let really = transport != Transport::Tcp || open.tcp_local_port == Some(listening);
        really.then_some(listening)
    }
}

#[cfg(test)]
mod tests {
    use libp2p::core::Endpoint;

    use super::*;

    #[test]
    fn a_peer_is_as_far_as_its_shortest_ping() {
        let mut connections = Connections::new(DialedFrom::default());
        let (id, peer) = (ConnectionId::new_unchecked(1), PeerId::random());
        let endpoint = ConnectedPoint::Dialer {
            address: "/ip4/10.0.0.2/tcp/13304".parse().expect("an address"),
            role_override: Endpoint::Dialer,
            port_use: PortUse::Reuse,
        };
        connections.on_established(id, peer, endpoint);
        let traffic = Traffic::new(None);
        assert_eq!(connections.peer_info(peer, &traffic).rtt, None);
        for ms in [3, 120, 2, 90] {
            connections.on_rtt(&id, Duration::from_millis(ms));
        }
        let rtt = connections.peer_info(peer, &traffic).rtt;
        assert_eq!(
            rtt,
            Some(Duration::from_millis(2)),
            "pings behind queued blocks"
        );
    }
}
