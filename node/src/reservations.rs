//! Relay reservations: while this node may not be reachable (AutoNAT says private, or does not
//! know yet), it listens on `<relay>/p2p-circuit` at up to [`MAX_RESERVATIONS`] relays so that
//! peers can reach it through them; the relay client then confirms each relayed address as an
//! external address, which identify advertises. The configured relays are used, or else
//! connected peers that offer the relay v2 hop protocol.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use libp2p::core::transport::ListenerId;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::dial_opts::DialOpts;
use libp2p::swarm::DialError;
use libp2p::{relay, Multiaddr, PeerId, Swarm};

use crate::behaviour::Behaviour;
use crate::connections::is_relayed;
use crate::nat::Reachability;

/// Reservations held at once at most: one spare in case a relay goes away.
pub const MAX_RESERVATIONS: usize = 2;
/// A relay whose reservation failed or ended is not asked again before this.
const RETRY_AFTER: Duration = Duration::from_secs(60);

struct Reservation {
    listener: ListenerId,
    /// The relay accepted (and keeps renewing) the reservation.
    accepted: bool,
}

pub struct Reservations {
    /// From the configuration: each relay's address (with its `/p2p` suffix).
    configured: Vec<(PeerId, Multiaddr)>,
    /// Connected peers offering the hop protocol, with one of their direct addresses.
    learned: HashMap<PeerId, Multiaddr>,
    held: HashMap<PeerId, Reservation>,
    /// Relays being connected to first: the relay client's own dial would fail while another
    /// dial to the relay is under way, and end the listener with it.
    connecting: HashSet<PeerId>,
    /// Relays not to ask again before the given time.
    resting: HashMap<PeerId, Instant>,
}

impl Reservations {
    /// `relays` are addresses ending in `/p2p/<relay>`; the caller checked them.
    pub fn new(relays: Vec<(PeerId, Multiaddr)>) -> Self {
        Self {
            configured: relays,
            learned: HashMap::new(),
            held: HashMap::new(),
            connecting: HashSet::new(),
            resting: HashMap::new(),
        }
    }

    /// Takes or drops reservations as `reachability` calls for.
    pub fn maintain(&mut self, swarm: &mut Swarm<Behaviour>, reachability: Reachability) {
        if reachability == Reachability::Public {
            self.connecting.clear();
            for (relay, reservation) in self.held.drain() {
                tracing::info!(%relay, "reachable directly: dropping the relay reservation");
                swarm.remove_listener(reservation.listener);
            }
            return;
        }
        let now = Instant::now();
        self.resting.retain(|_, until| *until > now);
        while self.held.len() + self.connecting.len() < MAX_RESERVATIONS {
            let Some((relay, addr)) = self.next_relay() else {
                return;
            };
            if !swarm.is_connected(&relay) {
                let opts = DialOpts::peer_id(relay).addresses(vec![addr]).build();
                match swarm.dial(opts) {
                    Ok(()) | Err(DialError::DialPeerConditionFalse(_)) => {
                        self.connecting.insert(relay);
                    }
                    Err(e) => {
                        tracing::warn!(%relay, error = %e, "cannot dial the relay");
                        self.resting.insert(relay, now + RETRY_AFTER);
                    }
                }
                continue;
            }
            let circuit = addr.with(Protocol::P2pCircuit);
            match swarm.listen_on(circuit.clone()) {
                Ok(listener) => {
                    tracing::debug!(%circuit, "asking for a relay reservation");
                    self.held.insert(
                        relay,
                        Reservation {
                            listener,
                            accepted: false,
                        },
                    );
                }
                Err(e) => {
                    tracing::warn!(%circuit, error = %e, "cannot listen through the relay");
                    self.resting.insert(relay, now + RETRY_AFTER);
                }
            }
        }
    }

    fn next_relay(&self) -> Option<(PeerId, Multiaddr)> {
        let candidates: Vec<(PeerId, Multiaddr)> = if self.configured.is_empty() {
            self.learned
                .iter()
                .map(|(peer, addr)| (*peer, addr.clone()))
                .collect()
        } else {
            self.configured.clone()
        };
        candidates.into_iter().find(|(relay, _)| {
            !self.held.contains_key(relay)
                && !self.connecting.contains(relay)
                && !self.resting.contains_key(relay)
        })
    }

    /// The relays being connected to, each at the address dialled.
    pub fn connecting_to(&self) -> impl Iterator<Item = (&PeerId, &Multiaddr)> {
        let configured = self.configured.iter().map(|(peer, addr)| (peer, addr));
        configured
            .chain(self.learned.iter())
            .filter(|(peer, _)| self.connecting.contains(peer))
    }

    /// Connected to `peer`; true when it is a relay waiting for that (to be asked now).
    pub fn on_connected(&mut self, peer: &PeerId) -> bool {
        self.connecting.remove(peer)
    }

    /// A dial to `peer` failed; a relay waiting for it rests.
    pub fn on_dial_failed(&mut self, peer: &PeerId) {
        if self.connecting.remove(peer) {
            tracing::info!(relay = %peer, "cannot connect to the relay");
            self.resting.insert(*peer, Instant::now() + RETRY_AFTER);
        }
    }

    pub fn on_accepted(&mut self, relay: PeerId, renewal: bool) {
        if let Some(reservation) = self.held.get_mut(&relay) {
            if !reservation.accepted {
                tracing::info!(%relay, "relay reservation accepted");
            }
            reservation.accepted = true;
        } else if !renewal {
            tracing::debug!(%relay, "reservation accepted by a relay no longer wanted");
        }
    }

    /// A listener closed; when it held a reservation, the relay rests before it is asked again.
    /// True when it was one of ours.
    pub fn on_listener_closed(&mut self, listener: ListenerId, reason: &str) -> bool {
        let Some(relay) = self
            .held
            .iter()
            .find_map(|(relay, r)| (r.listener == listener).then_some(*relay))
        else {
            return false;
        };
        self.held.remove(&relay);
        tracing::info!(%relay, reason, "relay reservation ended");
        self.resting.insert(relay, Instant::now() + RETRY_AFTER);
        true
    }

    /// A peer identified itself: it may offer to relay.
    pub fn on_identified(
        &mut self,
        peer: PeerId,
        protocols: &[libp2p::StreamProtocol],
        addrs: &[Multiaddr],
    ) {
        let direct = addrs.iter().find(|a| !is_relayed(a));
        match direct {
            Some(addr) if protocols.contains(&relay::HOP_PROTOCOL_NAME) => {
                let addr = with_peer(addr.clone(), peer);
                self.learned.insert(peer, addr);
            }
            _ => {
                self.learned.remove(&peer);
            }
        }
    }

    pub fn on_disconnected(&mut self, peer: &PeerId) {
        self.learned.remove(peer);
    }
}

/// `addr` ending in `/p2p/<peer>`.
fn with_peer(mut addr: Multiaddr, peer: PeerId) -> Multiaddr {
    if let Some(Protocol::P2p(_)) = addr.iter().last() {
        addr.pop();
    }
    addr.with(Protocol::P2p(peer))
}
