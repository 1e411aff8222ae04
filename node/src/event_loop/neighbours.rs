//! Neighbours found by mDNS, dialled until a connection to them stands.
//!
//! Two nodes on one LAN hear each other's mDNS answers in the same moment and both dial. Each
//! dials from its listening port (reused, for hole punching), so the two SYNs can meet as one
//! TCP connection on which both ends act as the dialer (a simultaneous open); its security
//! handshake then fails on both ends. mDNS reports an address once, so without a second try
//! the two would stay strangers until the record expires. Hence: the end with the larger peer
//! ID gives the other a moment to dial first, and a neighbour that stays unconnected is dialled
//! again after a growing pause with some randomness in it, which takes two retrying ends apart.

use std::collections::hash_map::{Entry, HashMap, RandomState};
use std::hash::BuildHasher;
use std::time::{Duration, Instant};

use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::{Multiaddr, PeerId};

use super::EventLoop;

/// Neighbours remembered at once: a LAN can announce any number of peer IDs.
const MAX_NEIGHBOURS: usize = 256;
/// Addresses kept per neighbour.
const MAX_ADDRS: usize = 8;
/// How long the end with the larger peer ID waits for the other's dial before its own.
const YIELD: Duration = Duration::from_millis(1500);
/// The pause after the first failure; it doubles with each further one, up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_secs(1);
const MAX_PAUSE: Duration = Duration::from_secs(60);

struct Neighbour {
    addrs: Vec<Multiaddr>,
    /// When to dial next; `None` while connected or while a dial's outcome is awaited.
    due: Option<Instant>,
    failures: u32,
}

#[derive(Default)]
pub(super) struct Neighbours {
    known: HashMap<PeerId, Neighbour>,
    jitter: RandomState,
}

impl Neighbours {
    /// mDNS found `peer` at `addr`: dialled now, or after [`YIELD`] when the peer is the one
    /// expected to dial.
    pub(super) fn on_discovered(&mut self, local: &PeerId, peer: PeerId, addr: Multiaddr) {
        let len = self.known.len();
        let neighbour = match self.known.entry(peer) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(_) if len >= MAX_NEIGHBOURS => {
                tracing::debug!(%peer, "too many neighbours on the local network: one ignored");
                return;
            }
            Entry::Vacant(e) => {
                let wait = if *local < peer { Duration::ZERO } else { YIELD };
                e.insert(Neighbour {
                    addrs: Vec::new(),
                    due: Some(Instant::now() + wait),
                    failures: 0,
                })
            }
        };
        if !neighbour.addrs.contains(&addr) && neighbour.addrs.len() < MAX_ADDRS {
            neighbour.addrs.push(addr);
        }
    }

    pub(super) fn on_expired(&mut self, peer: &PeerId, addr: &Multiaddr) {
        if let Some(neighbour) = self.known.get_mut(peer) {
            neighbour.addrs.retain(|a| a != addr);
            if neighbour.addrs.is_empty() {
                self.known.remove(peer);
            }
        }
    }

    pub(super) fn on_connected(&mut self, peer: &PeerId) {
        if let Some(neighbour) = self.known.get_mut(peer) {
            neighbour.due = None;
            neighbour.failures = 0;
        }
    }

    /// The last connection closed or a dial failed: the neighbour, if mDNS still sees it, is
    /// dialled again after a pause.
    pub(super) fn on_unconnected(&mut self, peer: &PeerId) {
        let Some(neighbour) = self.known.get_mut(peer) else {
            return;
        };
        let doubling = FIRST_PAUSE.saturating_mul(1 << neighbour.failures.min(16));
        let pause = doubling.min(MAX_PAUSE);
        neighbour.failures = neighbour.failures.saturating_add(1);
        // Up to half the pause again, so that two ends that failed together try apart.
        let spread = pause.as_millis() as u64 / 2;
        let extra = self.jitter.hash_one((peer, neighbour.failures)) % spread.max(1);
        neighbour.due = Some(Instant::now() + pause + Duration::from_millis(extra));
    }

    /// Neighbours whose dial is due, with their addresses; each waits for its dial's outcome.
    fn take_due(&mut self, now: Instant) -> Vec<(PeerId, Vec<Multiaddr>)> {
        self.known
            .iter_mut()
            .filter(|(_, n)| n.due.is_some_and(|due| due <= now))
            .map(|(peer, n)| {
                n.due = None;
                (*peer, n.addrs.clone())
            })
            .collect()
    }
}

impl EventLoop {
    /// Dials each unconnected neighbour whose time has come.
    pub(super) fn dial_neighbours(&mut self) {
        for (peer, addrs) in self.neighbours.take_due(Instant::now()) {
            if self.swarm.is_connected(&peer) {
                self.neighbours.on_connected(&peer);
                continue;
            }
            tracing::debug!(%peer, "dialling a neighbour on the local network");
            let opts = DialOpts::peer_id(peer)
                .condition(PeerCondition::DisconnectedAndNotDialing)
                .addresses(addrs)
                .build();
            // A dial under way already ends in an event of its own, which sets the next try.
            if let Err(e) = self.swarm.dial(opts) {
                tracing::debug!(%peer, error = %e, "not dialling the neighbour now");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> Multiaddr {
        format!("/ip4/10.0.0.1/tcp/{port}").parse().unwrap()
    }

    #[test]
    fn the_smaller_peer_id_dials_at_once_and_the_larger_one_waits() {
        let (a, b) = (PeerId::random(), PeerId::random());
        let (small, large) = if a < b { (a, b) } else { (b, a) };
        let mut at_small = Neighbours::default();
        at_small.on_discovered(&small, large, addr(1));
        assert_eq!(at_small.take_due(Instant::now()).len(), 1);
        let mut at_large = Neighbours::default();
        at_large.on_discovered(&large, small, addr(1));
        assert!(at_large.take_due(Instant::now()).is_empty());
        assert_eq!(at_large.take_due(Instant::now() + YIELD).len(), 1);
    }

    #[test]
    fn failures_space_the_dials_out_and_a_connection_stops_them() {
        let local = PeerId::random();
        let peer = PeerId::random();
        let mut neighbours = Neighbours::default();
        neighbours.on_discovered(&local, peer, addr(1));
        let start = Instant::now();
        let mut pauses = Vec::new();
        for _ in 0..8 {
            neighbours.take_due(start + YIELD);
            neighbours.on_unconnected(&peer);
            pauses.push(neighbours.known[&peer].due.unwrap() - Instant::now());
        }
        assert!(pauses[0] < FIRST_PAUSE * 2, "{pauses:?}");
        assert!(pauses[3] >= FIRST_PAUSE * 7, "{pauses:?}");
        assert!(pauses.iter().all(|p| *p <= MAX_PAUSE * 3 / 2), "{pauses:?}");
        neighbours.on_connected(&peer);
        assert!(neighbours.take_due(start + MAX_PAUSE * 2).is_empty());
    }

    #[test]
    fn neighbours_and_their_addresses_are_bounded_and_expire() {
        let local = PeerId::random();
        let mut neighbours = Neighbours::default();
        for _ in 0..MAX_NEIGHBOURS + 10 {
            neighbours.on_discovered(&local, PeerId::random(), addr(1));
        }
        assert_eq!(neighbours.known.len(), MAX_NEIGHBOURS);
        let peer = *neighbours.known.keys().next().unwrap();
        for port in 2..40 {
            neighbours.on_discovered(&local, peer, addr(port));
        }
        assert_eq!(neighbours.known[&peer].addrs.len(), MAX_ADDRS);
        for port in 1..40 {
            neighbours.on_expired(&peer, &addr(port));
        }
        assert!(!neighbours.known.contains_key(&peer));
    }
}
