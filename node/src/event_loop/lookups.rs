//! Provider lookups: one question asked of every DHT the node takes part in (the private one,
//! and the public IPFS one when it is on), answered once each has finished, with what they found
//! merged; and where the providers found are, so that they can be dialled afterwards.

use std::collections::{HashMap, HashSet, VecDeque};

use libp2p::core::Endpoint;
use libp2p::swarm::{ConnectionId, NetworkBehaviour};
use libp2p::{kad, Multiaddr, PeerId};
use tokio::sync::oneshot;

use super::announcements::{Dht, PendingQuery};
use super::EventLoop;

/// Providers one lookup answers at most: a key anyone may announce gathers any number.
const MAX_PROVIDERS: usize = 256;
/// Providers whose addresses are kept for a later dial, the oldest forgotten first.
const REMEMBERED_PROVIDERS: usize = 1024;
const MAX_ADDRS_PER_PROVIDER: usize = 8;

pub(super) type LookupId = u64;

struct Lookup {
    found: HashSet<PeerId>,
    /// DHT queries of this lookup still running.
    unfinished: usize,
    reply: oneshot::Sender<HashSet<PeerId>>,
}

#[derive(Default)]
pub(super) struct Lookups {
    running: HashMap<LookupId, Lookup>,
    next: LookupId,
    /// Where each provider found was said to be. A DHT forgets the addresses a query learnt
    /// once it ends, and a provider met on the public DHT is rarely in its routing table.
    addresses: HashMap<PeerId, Vec<Multiaddr>>,
    remembered: VecDeque<PeerId>,
}

impl Lookups {
    /// The addresses lookups found `peer` at (none when it was not found by one).
    pub(super) fn addresses_of(&self, peer: &PeerId) -> Vec<Multiaddr> {
        self.addresses.get(peer).cloned().unwrap_or_default()
    }

    fn remember(&mut self, peer: PeerId, mut addrs: Vec<Multiaddr>) {
        if addrs.is_empty() {
            return;
        }
        addrs.truncate(MAX_ADDRS_PER_PROVIDER);
        if self.addresses.insert(peer, addrs).is_none() {
            self.remembered.push_back(peer);
        }
        while self.remembered.len() > REMEMBERED_PROVIDERS {
            if let Some(oldest) = self.remembered.pop_front() {
                self.addresses.remove(&oldest);
            }
        }
    }
}

impl EventLoop {
    pub(super) fn find_providers(
        &mut self,
        key: kad::RecordKey,
        reply: oneshot::Sender<HashSet<PeerId>>,
    ) {
        let lookup = self.lookups.next;
        self.lookups.next += 1;
        let behaviour = self.swarm.behaviour_mut();
        let mut unfinished = 1;
        if let Some(public) = behaviour.public_kad.as_mut() {
            let id = public.get_providers(key.clone());
            self.queries
                .insert((Dht::Public, id), PendingQuery::Providers(lookup));
            unfinished += 1;
        }
        let id = behaviour.private_kad.get_providers(key);
        self.queries
            .insert((Dht::Private, id), PendingQuery::Providers(lookup));
        let found = HashSet::new();
        let entry = Lookup {
            found,
            unfinished,
            reply,
        };
        self.lookups.running.insert(lookup, entry);
    }

    /// Providers one DHT query of `lookup` found, while that query still runs (and so still
    /// knows their addresses).
    pub(super) fn on_providers(&mut self, dht: Dht, lookup: LookupId, providers: HashSet<PeerId>) {
        let behaviour = self.swarm.behaviour_mut();
        let kad = match dht {
            Dht::Private => Some(&mut behaviour.private_kad),
            Dht::Public => behaviour.public_kad.as_mut(),
        };
        let Some(kad) = kad else {
            return;
        };
        let Some(running) = self.lookups.running.get_mut(&lookup) else {
            return;
        };
        let room = MAX_PROVIDERS.saturating_sub(running.found.len());
        let new: Vec<PeerId> = providers
            .into_iter()
            .filter(|p| !running.found.contains(p))
            .take(room)
            .collect();
        running.found.extend(new.iter().copied());
        for peer in new {
            // What a dial of `peer` would be given now: its routing table entry and the
            // addresses running queries learnt (the connection id is not looked at).
            let addrs = kad
                .handle_pending_outbound_connection(
                    ConnectionId::new_unchecked(0),
                    Some(peer),
                    &[],
                    Endpoint::Dialer,
                )
                .unwrap_or_default();
            self.lookups.remember(peer, addrs);
        }
    }

    /// One DHT query of `lookup` ended; the lookup is answered when it was the last.
    pub(super) fn on_lookup_query_done(&mut self, lookup: LookupId) {
        let Some(running) = self.lookups.running.get_mut(&lookup) else {
            return;
        };
        running.unfinished = running.unfinished.saturating_sub(1);
        if running.unfinished == 0 {
            if let Some(done) = self.lookups.running.remove(&lookup) {
                let _ = done.reply.send(done.found);
            }
        }
    }
}
