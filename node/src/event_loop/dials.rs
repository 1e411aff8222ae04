//! Dials the application asks for: no address of a peer dialled twice at once, and none at
//! which another peer is being dialled or is connected.
//!
//! TCP dials reuse the listening port. While one dial from it to an address is under way (a NAT
//! that drops unsolicited packets keeps it pending for seconds), libp2p makes a second one to
//! the same address from a fresh port without saying so. The NAT gives that connection another
//! public port: the peer observes us there (and we would take our NAT for symmetric), and a hole
//! punch sent from that port opens no path to the port the other side punches towards.

use std::collections::HashMap;

use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{ConnectionId, DialError};
use libp2p::{Multiaddr, PeerId};
use tokio::sync::oneshot;

use super::EventLoop;
use crate::connections::is_relayed;
use crate::nat;

type Reply = oneshot::Sender<Result<PeerId, String>>;

#[derive(Default)]
pub(super) struct Dials {
    /// Who asked for each dial under way.
    replies: HashMap<ConnectionId, Reply>,
    /// Callers whose peer was being dialled already: answered when that dial ends.
    waiting: HashMap<PeerId, Vec<Reply>>,
    /// The addresses each dial under way was given, and for which peer.
    targets: HashMap<ConnectionId, (PeerId, Vec<Multiaddr>)>,
    /// A peer's public direct addresses, held back while its relayed ones are tried (and
    /// whether to add the behaviours' addresses then).
    later: HashMap<ConnectionId, (Vec<Multiaddr>, bool)>,
}

impl EventLoop {
    /// Connects to `peer` at `addrs` (all at once; also at the addresses the behaviours know
    /// when `extend`), unless connected already. Addresses a dial under way tries already are
    /// left to it; when that leaves none, `reply` waits for that dial.
    pub(super) fn dial_peer(
        &mut self,
        peer: PeerId,
        mut addrs: Vec<Multiaddr>,
        extend: bool,
        reply: Reply,
    ) {
        if self.swarm.is_connected(&peer) {
            let _ = reply.send(Ok(peer));
            return;
        }
        addrs.retain(|addr| !self.taken_by_another(&peer, addr));
        let mut tried = self
            .dials
            .targets
            .values()
            .filter(|(target, _)| *target == peer)
            .flat_map(|(_, tried)| tried)
            .peekable();
        if tried.peek().is_some() {
            let tried: Vec<&Multiaddr> = tried.collect();
            addrs.retain(|addr| !tried.contains(&addr));
            if addrs.is_empty() {
                self.dials.waiting.entry(peer).or_default().push(reply);
                return;
            }
        }
        // A peer that lists relayed addresses holds reservations: it is not reachable directly,
        // as far as it knows. A dial to its public address would wait for its SYN while the
        // relayed connection comes and the hole punch dials that same address; the stale
        // socket then takes the punch's place (or makes it leave from another port), and the
        // punch fails. Those addresses are tried only if the relays fail.
        let (now, later): (Vec<Multiaddr>, Vec<Multiaddr>) = match addrs.iter().any(is_relayed) {
            true => addrs.into_iter().partition(|a| !is_public_direct(a)),
            false => (addrs, Vec::new()),
        };
        let later = (!later.is_empty()).then_some((later, extend));
        self.start_dial(peer, now, extend && later.is_none(), reply, later);
    }

    fn start_dial(
        &mut self,
        peer: PeerId,
        addrs: Vec<Multiaddr>,
        extend: bool,
        reply: Reply,
        later: Option<(Vec<Multiaddr>, bool)>,
    ) {
        let opts = DialOpts::peer_id(peer)
            .condition(PeerCondition::Disconnected)
            .addresses(addrs.clone());
        let opts = match extend {
            true => opts.extend_addresses_through_behaviour().build(),
            false => opts.build(),
        };
        let id = opts.connection_id();
        match self.swarm.dial(opts) {
            Ok(()) => {
                self.dials.replies.insert(id, reply);
                self.dials.targets.insert(id, (peer, addrs));
                if let Some(later) = later {
                    self.dials.later.insert(id, later);
                }
            }
            Err(DialError::DialPeerConditionFalse(_)) => {
                let _ = reply.send(Ok(peer));
            }
            Err(e) => {
                let _ = reply.send(Err(e.to_string()));
            }
        }
    }

    /// Dials an address whose peer is not known; answered with the peer found there.
    pub(super) fn dial_unknown_peer(&mut self, addr: Multiaddr, reply: Reply) {
        let opts = DialOpts::unknown_peer_id().address(addr).build();
        let id = opts.connection_id();
        match self.swarm.dial(opts) {
            Ok(()) => {
                self.dials.replies.insert(id, reply);
            }
            Err(e) => {
                let _ = reply.send(Err(e.to_string()));
            }
        }
    }

    /// Whether another peer listens at `addr`'s socket address, as far as this node knows: it
    /// is connected to it there, or dialling it there (a relay included). One socket address is
    /// one listener, so `addr` cannot be `peer`'s (a tracker that substitutes the address it saw
    /// a request come from hands out such addresses for hosts with several).
    fn taken_by_another(&self, peer: &PeerId, addr: &Multiaddr) -> bool {
        let Some(target) = nat::split(addr) else {
            return false;
        };
        let same =
            |(other, a): (&PeerId, &Multiaddr)| other != peer && nat::split(a) == Some(target);
        let dialling = self
            .dials
            .targets
            .values()
            .flat_map(|(other, addrs)| addrs.iter().map(move |a| (other, a)));
        self.connections.dialed_addrs().any(same)
            || dialling.into_iter().any(same)
            || self.reservations.connecting_to().any(same)
    }

    pub(super) fn on_dial_established(&mut self, id: &ConnectionId, peer: PeerId) {
        self.dials.targets.remove(id);
        self.dials.later.remove(id);
        let replies = self.dials.replies.remove(id).into_iter();
        for reply in replies.chain(self.dials.waiting.remove(&peer).unwrap_or_default()) {
            let _ = reply.send(Ok(peer));
        }
    }

    pub(super) fn on_dial_failed(&mut self, id: &ConnectionId, peer: Option<PeerId>, error: &str) {
        let target = self.dials.targets.remove(id);
        let later = self.dials.later.remove(id);
        let mut reply = self.dials.replies.remove(id);
        if let (Some((peer, _)), Some((addrs, extend))) = (target, later) {
            if let Some(reply) = reply.take() {
                // The relays failed: the public addresses held back are all that is left.
                match self.swarm.is_connected(&peer) {
                    true => drop(reply.send(Ok(peer))),
                    false => self.start_dial(peer, addrs, extend, reply, None),
                }
                return;
            }
        }
        let waiting = peer.and_then(|peer| self.dials.waiting.remove(&peer));
        for reply in reply.into_iter().chain(waiting.unwrap_or_default()) {
            let _ = reply.send(Err(error.to_owned()));
        }
    }
}

/// A direct address another host could dial from anywhere (not loopback, LAN or relayed).
fn is_public_direct(addr: &Multiaddr) -> bool {
    let loopback = match nat::split(addr) {
        Some((_, ip, _)) => ip.is_loopback(),
        None => return false,
    };
    nat::routable(addr) && !loopback
}
