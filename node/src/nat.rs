//! What this node knows about its NAT: reachability from AutoNAT (v2 per address, v1 overall)
//! and the kind of port mapping, from the addresses peers observe us at (identify).
//!
//! The mapping tells whether hole punching can work: an endpoint-independent mapping keeps one
//! external port for a local port whatever the destination, so the port peers observe is the
//! one a hole-punching peer must dial; a symmetric NAT picks a new port per destination.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::net::IpAddr;

use libp2p::multiaddr::Protocol;
use libp2p::{autonat, Multiaddr, PeerId};

use crate::connections::is_relayed;

/// Observations kept, newest last: enough for a few peers per local port and address.
const OBSERVATIONS: usize = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reachability {
    Public,
    Private,
    Unknown,
}

impl fmt::Display for Reachability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Public => "public",
            Self::Private => "private",
            Self::Unknown => "unknown",
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mapping {
    EndpointIndependent,
    Symmetric,
    Unknown,
}

impl fmt::Display for Mapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::EndpointIndependent => "endpoint-independent",
            Self::Symmetric => "symmetric",
            Self::Unknown => "unknown",
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    Tcp,
    Quic,
}

/// Which of our mappings an observation is about: transport, local port, and the external IP
/// seen (a LAN peer and an internet peer see different addresses, not a symmetric NAT).
type Group = (Transport, u16, IpAddr);

struct Observation {
    group: Group,
    observer: PeerId,
    port: u16,
}

pub struct NatState {
    v1: Reachability,
    /// The last AutoNAT v2 verdict on each tested address.
    v2: HashMap<Multiaddr, bool>,
    observations: VecDeque<Observation>,
    /// What was last logged, so that each change is logged once.
    reported: (Reachability, Mapping),
}

impl NatState {
    pub fn new() -> Self {
        Self {
            v1: Reachability::Unknown,
            v2: HashMap::new(),
            observations: VecDeque::new(),
            reported: (Reachability::Unknown, Mapping::Unknown),
        }
    }

    /// Public once either version saw a dial-back succeed: v2 dials each tested address from a
    /// fresh port, v1 asks several peers in turn. A failed v2 probe alone does not make a node
    /// private that v1 found public: v2 also tests candidates that are not ours (an address a
    /// peer saw a local connection come from, say).
    pub fn reachability(&self) -> Reachability {
        let v2_success = self.v2.values().any(|reachable| *reachable);
        if v2_success || self.v1 == Reachability::Public {
            Reachability::Public
        } else if !self.v2.is_empty() {
            Reachability::Private
        } else {
            self.v1
        }
    }

    pub fn on_v1(&mut self, status: &autonat::NatStatus) {
        self.v1 = match status {
            autonat::NatStatus::Public(addr) if routable(addr) => Reachability::Public,
            autonat::NatStatus::Public(_) => Reachability::Unknown,
            autonat::NatStatus::Private => Reachability::Private,
            autonat::NatStatus::Unknown => Reachability::Unknown,
        };
    }

    /// A v2 probe of `addr`; relayed addresses say nothing about our own NAT, nor do private
    /// ones (see [`routable`]).
    pub fn on_v2(&mut self, addr: Multiaddr, reachable: bool) {
        if routable(&addr) {
            self.v2.insert(addr, reachable);
        }
    }

    /// `observer` saw our connection from local port `local_port` come from `observed`.
    pub fn observe(&mut self, observer: PeerId, local_port: u16, observed: &Multiaddr) {
        let Some((transport, ip, port)) = split(observed) else {
            return;
        };
        let group = (transport, local_port, ip);
        self.observations
            .retain(|o| !(o.group == group && o.observer == observer));
        self.observations.push_back(Observation {
            group,
            observer,
            port,
        });
        if self.observations.len() > OBSERVATIONS {
            self.observations.pop_front();
        }
    }

    /// Symmetric when two peers saw one local port at different external ports; endpoint-
    /// independent when at least two saw it at the same one; unknown otherwise.
    pub fn mapping(&self) -> Mapping {
        let mut ports: HashMap<Group, Vec<u16>> = HashMap::new();
        for o in &self.observations {
            ports.entry(o.group).or_default().push(o.port);
        }
        let mut agreed = false;
        for seen in ports.values().filter(|seen| seen.len() >= 2) {
            if seen.iter().any(|port| *port != seen[0]) {
                return Mapping::Symmetric;
            }
            agreed = true;
        }
        if agreed {
            Mapping::EndpointIndependent
        } else {
            Mapping::Unknown
        }
    }

    /// Logs the NAT type when it changed since last logged.
    pub fn report(&mut self) {
        let now = (self.reachability(), self.mapping());
        if now == self.reported {
            return;
        }
        self.reported = now;
        let (reachability, mapping) = now;
        let meaning = match now {
            (Reachability::Public, _) => "directly reachable",
            (_, Mapping::Symmetric) => {
                "hole punching cannot work with a symmetric NAT on both sides"
            }
            (_, Mapping::EndpointIndependent) => "hole punching can work",
            (_, Mapping::Unknown) => {
                "not enough observations to tell whether hole punching can work"
            }
        };
        tracing::info!("NAT: {reachability}, mapping {mapping} ({meaning})");
    }
}

/// Whether reaching us at `addr` says anything about reachability from the internet: a LAN
/// neighbour dialling back our private address proves nothing about the NAT in front of us, and
/// counting it would make a node behind NAT drop its relay reservations. Loopback counts (a
/// node on one machine is reachable there); shared, link-local and unique-local ones do not.
pub fn routable(addr: &Multiaddr) -> bool {
    match split(addr) {
        Some((_, IpAddr::V4(ip), _)) => {
            let [a, b, ..] = ip.octets();
            let shared = a == 100 && (b & 0xc0) == 64;
            !(ip.is_private() || ip.is_link_local() || ip.is_unspecified() || shared)
        }
        Some((_, IpAddr::V6(ip), _)) => {
            let first = ip.segments()[0];
            let unique_local = (first & 0xfe00) == 0xfc00;
            let link_local = (first & 0xffc0) == 0xfe80;
            !(unique_local || link_local || ip.is_unspecified())
        }
        None => false,
    }
}

/// The transport, IP and port of a direct TCP or QUIC address (a relayed address starts with
/// the relay's).
pub fn split(addr: &Multiaddr) -> Option<(Transport, IpAddr, u16)> {
    if is_relayed(addr) {
        return None;
    }
    let mut parts = addr.iter();
    let ip = match parts.next()? {
        Protocol::Ip4(ip) => IpAddr::V4(ip),
        Protocol::Ip6(ip) => IpAddr::V6(ip),
        _ => return None,
    };
    match (parts.next()?, parts.next()) {
        (Protocol::Tcp(port), _) => Some((Transport::Tcp, ip, port)),
        (Protocol::Udp(port), Some(Protocol::QuicV1)) => Some((Transport::Quic, ip, port)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> Multiaddr {
        s.parse().unwrap()
    }

    #[test]
    fn mapping_from_observations() {
        let (a, b, c) = (PeerId::random(), PeerId::random(), PeerId::random());
        let mut nat = NatState::new();
        nat.observe(a, 4001, &addr("/ip4/1.2.3.4/tcp/4001"));
        assert_eq!(nat.mapping(), Mapping::Unknown);
        // The same peer again is still one observer.
        nat.observe(a, 4001, &addr("/ip4/1.2.3.4/tcp/4001"));
        assert_eq!(nat.mapping(), Mapping::Unknown);
        // Another local port, another external IP, or another transport is another mapping.
        nat.observe(b, 4002, &addr("/ip4/1.2.3.4/tcp/5000"));
        nat.observe(b, 4001, &addr("/ip4/192.168.1.2/tcp/4001"));
        nat.observe(b, 4001, &addr("/ip4/1.2.3.4/udp/6000/quic-v1"));
        assert_eq!(nat.mapping(), Mapping::Unknown);
        nat.observe(b, 4001, &addr("/ip4/1.2.3.4/tcp/4001"));
        assert_eq!(nat.mapping(), Mapping::EndpointIndependent);
        nat.observe(c, 4001, &addr("/ip4/1.2.3.4/tcp/61000"));
        assert_eq!(nat.mapping(), Mapping::Symmetric);
        // Relayed or DNS addresses are not observations of a mapping.
        assert!(split(&addr("/dns4/example.org/tcp/1")).is_none());
        let relayed = "/ip4/1.2.3.4/tcp/1/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN";
        assert!(split(&addr(&format!("{relayed}/p2p-circuit"))).is_none());
    }

    #[test]
    fn any_successful_dial_back_makes_a_node_public() {
        let mut nat = NatState::new();
        assert_eq!(nat.reachability(), Reachability::Unknown);
        nat.on_v1(&autonat::NatStatus::Private);
        assert_eq!(nat.reachability(), Reachability::Private);
        nat.on_v2(addr("/ip4/1.2.3.4/tcp/4001"), true);
        nat.on_v2(addr("/ip4/1.2.3.4/udp/4001/quic-v1"), false);
        assert_eq!(nat.reachability(), Reachability::Public);
        nat.on_v2(addr("/ip4/1.2.3.4/tcp/4001"), false);
        assert_eq!(nat.reachability(), Reachability::Private);
        // A LAN neighbour reaching our private address proves nothing.
        let mut lan = NatState::new();
        lan.on_v2(addr("/ip4/192.168.1.7/tcp/4001"), true);
        lan.on_v2(addr("/ip4/10.0.0.7/udp/4001/quic-v1"), true);
        lan.on_v1(&autonat::NatStatus::Public(addr(
            "/ip4/100.64.1.2/tcp/4001",
        )));
        assert_eq!(lan.reachability(), Reachability::Unknown);
        // v1 found a way in: a failed v2 probe of some candidate does not undo that.
        let public =
            "/ip4/1.2.3.4/tcp/4001/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN";
        nat.on_v1(&autonat::NatStatus::Public(addr(public)));
        assert_eq!(nat.reachability(), Reachability::Public);
    }
}
