//! Hole punching again for a peer reachable only through a relay. DCUtR punches once per
//! relayed connection; one made right after the peers started can come before either knows
//! its public address (identify has not reported it yet), and then the punch cannot work. A
//! fresh relayed connection a few seconds later makes DCUtR punch again with what is known now.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::{Multiaddr, PeerId};

use super::EventLoop;
use crate::connections::is_relayed;

/// Punches after the first one per peer, at most.
const RETRIES: u32 = 3;
/// Between a failed punch and the next.
pub(super) const RETRY_AFTER: Duration = Duration::from_secs(5);

struct Retry {
    done: u32,
    due: Option<Instant>,
}

#[derive(Default)]
pub(super) struct PunchRetries {
    /// The relayed addresses each connected peer listens at (from identify).
    relayed: HashMap<PeerId, Vec<Multiaddr>>,
    retries: HashMap<PeerId, Retry>,
}

impl PunchRetries {
    pub(super) fn on_identified(&mut self, peer: PeerId, listen_addrs: &[Multiaddr]) {
        let relayed: Vec<Multiaddr> = listen_addrs
            .iter()
            .filter(|a| is_relayed(a))
            .cloned()
            .collect();
        match relayed.is_empty() {
            true => self.relayed.remove(&peer),
            false => self.relayed.insert(peer, relayed),
        };
    }

    /// A direct connection exists, or the peer is gone: nothing left to retry.
    pub(super) fn forget(&mut self, peer: &PeerId) {
        self.retries.remove(peer);
    }

    pub(super) fn on_disconnected(&mut self, peer: &PeerId) {
        self.retries.remove(peer);
        self.relayed.remove(peer);
    }

    /// A punch to `peer` failed with no direct connection: another one later, unless the
    /// retries are used up.
    pub(super) fn on_failed(&mut self, peer: PeerId) {
        let retry = self
            .retries
            .entry(peer)
            .or_insert(Retry { done: 0, due: None });
        retry.due = (retry.done < RETRIES).then(|| Instant::now() + RETRY_AFTER);
    }
}

impl EventLoop {
    /// Opens a fresh relayed connection to each peer whose retry is due.
    pub(super) fn retry_hole_punches(&mut self) {
        let now = Instant::now();
        let due: Vec<PeerId> = self
            .punch_retries
            .retries
            .iter()
            .filter(|(_, r)| r.due.is_some_and(|due| due <= now))
            .map(|(peer, _)| *peer)
            .collect();
        for peer in due {
            let Some(retry) = self.punch_retries.retries.get_mut(&peer) else {
                continue;
            };
            retry.due = None;
            retry.done += 1;
            let addrs = self.punch_retries.relayed.get(&peer).cloned();
            let Some(addrs) = addrs.filter(|_| !self.connections.has_direct(&peer)) else {
                continue;
            };
            tracing::debug!(%peer, attempt = retry.done, "hole punching again through a fresh relayed connection");
            let opts = DialOpts::peer_id(peer)
                .condition(PeerCondition::Always)
                .addresses(addrs)
                .build();
            if let Err(e) = self.swarm.dial(opts) {
                tracing::debug!(%peer, error = %e, "cannot dial through the relay again");
            }
        }
    }
}
