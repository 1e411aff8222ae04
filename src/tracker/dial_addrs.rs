//! The addresses `/find` and `/peers` hand out for a peer: what it announced, plus each of its
//! tcp/udp addresses with the IP its announce came from, so a peer behind a port-preserving NAT
//! is reachable at its public address. Every one ends in `/p2p/<peer id>`.

use std::net::IpAddr;

use peerix_node::{Multiaddr, PeerId, Protocol};

/// Addresses handed out per peer.
pub const MAX_DIAL_ADDRS: usize = 32;

pub(super) fn dial_addrs(peer: PeerId, seen_from: IpAddr, announced: &[Multiaddr]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut push = |addr: Multiaddr| {
        let text = addr.to_string();
        if out.len() < MAX_DIAL_ADDRS && !out.contains(&text) {
            out.push(text);
        }
    };
    for addr in announced {
        let Some(addr) = with_peer_id(addr, peer) else {
            continue;
        };
        if let Some(public) = with_ip(&addr, seen_from) {
            push(addr);
            push(public);
        } else {
            push(addr);
        }
    }
    out
}

/// `addr` ending in `/p2p/<peer>`; `None` when it names another peer.
fn with_peer_id(addr: &Multiaddr, peer: PeerId) -> Option<Multiaddr> {
    match addr.iter().last() {
        Some(Protocol::P2p(id)) if id == peer => Some(addr.clone()),
        Some(Protocol::P2p(_)) => None,
        _ => Some(addr.clone().with(Protocol::P2p(peer))),
    }
}

/// A direct `/ip*/X/tcp|udp/N/...` address with `ip` for X; relayed addresses are left alone
/// (their IP is the relay's).
fn with_ip(addr: &Multiaddr, ip: IpAddr) -> Option<Multiaddr> {
    let mut parts = addr.iter();
    if !matches!(parts.next(), Some(Protocol::Ip4(_) | Protocol::Ip6(_))) {
        return None;
    }
    if !matches!(parts.next(), Some(Protocol::Tcp(_) | Protocol::Udp(_))) {
        return None;
    }
    if addr.iter().any(|p| matches!(p, Protocol::P2pCircuit)) {
        return None;
    }
    let first = match ip {
        IpAddr::V4(ip) => Protocol::Ip4(ip),
        IpAddr::V6(ip) => Protocol::Ip6(ip),
    };
    Some(std::iter::once(first).chain(addr.iter().skip(1)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announced_addresses_gain_the_seen_ip_and_the_peer_id() {
        let peer = PeerId::random();
        let other = PeerId::random();
        let announced: Vec<Multiaddr> = [
            "/ip4/192.168.1.5/tcp/4001".to_owned(),
            "/ip4/192.168.1.5/udp/4001/quic-v1".to_owned(),
            format!("/ip4/198.51.100.9/tcp/4001/p2p/{other}/p2p-circuit"),
            format!("/ip4/198.51.100.7/tcp/4001/p2p/{other}"),
            format!("/ip4/203.0.113.2/tcp/4001/p2p/{peer}"),
        ]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
        let seen: IpAddr = "203.0.113.2".parse().unwrap();
        assert_eq!(
            dial_addrs(peer, seen, &announced),
            vec![
                format!("/ip4/192.168.1.5/tcp/4001/p2p/{peer}"),
                format!("/ip4/203.0.113.2/tcp/4001/p2p/{peer}"),
                format!("/ip4/192.168.1.5/udp/4001/quic-v1/p2p/{peer}"),
                format!("/ip4/203.0.113.2/udp/4001/quic-v1/p2p/{peer}"),
                format!("/ip4/198.51.100.9/tcp/4001/p2p/{other}/p2p-circuit/p2p/{peer}"),
            ]
        );
    }
}
