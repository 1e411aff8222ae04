//! Passing blocks on within a swarm. A member that asks this node for a block it lacks counts
//! on it for that block (the rendezvous named this node): the want is kept, the block fetched
//! from the file's holders if it is not on its way already, and sent on when it arrives, or a
//! DONT_HAVE when no holder had it. Kept wants are bounded per peer, in all and in age.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use cid::Cid;
use libp2p::PeerId;

use super::{Bitswap, Purpose};
use crate::bitswap::{Message, Presence};
use crate::swarm::{Swarm, SwarmInner};

/// Wants kept for one peer at most: a fetch keeps 64 blocks in flight.
const OWED_PER_PEER: usize = 256;
/// Wants kept for all peers together.
const OWED_TOTAL: usize = 16_384;
/// A kept want older than this is dropped: the peer has long asked elsewhere.
const OWED_FOR: Duration = Duration::from_secs(60);
/// How long a block waits for a member's part of the send budget before it is not passed on.
const PASS_ON_WAIT: Duration = Duration::from_secs(5);

struct OwedWant {
    peer: PeerId,
    send_dont_have: bool,
    at: Instant,
}

#[derive(Default)]
pub(super) struct Owed {
    by_cid: HashMap<Cid, Vec<OwedWant>>,
    per_peer: HashMap<PeerId, usize>,
    total: usize,
}

impl Owed {
    fn take(&mut self, cid: &Cid) -> Vec<OwedWant> {
        let taken = self.by_cid.remove(cid).unwrap_or_default();
        for want in &taken {
            self.forget(want.peer);
        }
        taken
    }

    fn forget(&mut self, peer: PeerId) {
        self.total -= 1;
        if let Some(count) = self.per_peer.get_mut(&peer) {
            *count -= 1;
            if *count == 0 {
                self.per_peer.remove(&peer);
            }
        }
    }

    fn expire(&mut self, now: Instant) {
        let mut expired = Vec::new();
        for wants in self.by_cid.values_mut() {
            wants.retain(|w| {
                let keep = now.duration_since(w.at) < OWED_FOR;
                if !keep {
                    expired.push(w.peer);
                }
                keep
            });
        }
        self.by_cid.retain(|_, wants| !wants.is_empty());
        for peer in expired {
            self.forget(peer);
        }
    }

    /// Keeps `peer`'s want for `cid`, if the bounds allow.
    fn keep(&mut self, peer: PeerId, cid: Cid, send_dont_have: bool) -> bool {
        let now = Instant::now();
        if self.total >= OWED_TOTAL {
            self.expire(now);
        }
        let for_peer = self.per_peer.get(&peer).copied().unwrap_or(0);
        if self.total >= OWED_TOTAL || for_peer >= OWED_PER_PEER {
            return false;
        }
        let wants = self.by_cid.entry(cid).or_default();
        if !wants.iter().any(|w| w.peer == peer) {
            wants.push(OwedWant {
                peer,
                send_dont_have,
                at: now,
            });
            self.total += 1;
            *self.per_peer.entry(peer).or_default() += 1;
        }
        true
    }

    fn cancel(&mut self, peer: PeerId, cid: &Cid) {
        let Some(wants) = self.by_cid.get_mut(cid) else {
            return;
        };
        let before = wants.len();
        wants.retain(|w| w.peer != peer);
        let removed = before != wants.len();
        if wants.is_empty() {
            self.by_cid.remove(cid);
        }
        if removed {
            self.forget(peer);
        }
    }
}

/// What this node's swarms amount to now.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SwarmStatus {
    /// Files being fetched with a swarm.
    pub fetching: usize,
    /// Blocks kept to pass on, and their bytes.
    pub kept_blocks: usize,
    pub kept_bytes: usize,
    /// Members' wants waiting for blocks on their way.
    pub owed_wants: usize,
    /// Blocks passed on to members since start.
    pub passed_on: u64,
    /// Peers no longer asked for blocks, having sent wrong ones or garbage.
    pub banned: Vec<PeerId>,
}

impl Bitswap {
    /// Whether `peer`'s want for `cid` is kept to be answered later: it is when the block is on
    /// its way from a holder, or `peer` fetches with this node and the block is fetched for it.
    pub(super) fn owe(self: &Arc<Self>, peer: PeerId, cid: Cid, send_dont_have: bool) -> bool {
        let from_holder = Purpose::Swarm { from_holder: true };
        let on_its_way = self.wants.lock().is_ok_and(|w| {
            w.get(&cid)
                .is_some_and(|ws| ws.iter().any(|w| w.purpose == from_holder))
        });
        let swarm = (!on_its_way).then(|| self.swarm_with_member(&peer));
        if let Some(None) = swarm {
            return false;
        }
        let kept = self
            .owed
            .lock()
            .is_ok_and(|mut owed| owed.keep(peer, cid, send_dont_have));
        if !kept {
            return false;
        }
        if let Some(Some(swarm)) = swarm {
            let engine = self.clone();
            tokio::spawn(async move {
                let holders = swarm.holders.clone();
                drop(swarm);
                if engine
                    .want_block(cid, &holders, 0, from_holder)
                    .await
                    .is_none()
                {
                    engine.owed_unfound(cid);
                }
            });
        }
        true
    }

    pub(super) fn cancel_owed(&self, peer: PeerId, cid: &Cid) {
        if let Ok(mut owed) = self.owed.lock() {
            owed.cancel(peer, cid);
        }
    }

    /// Tells the members that counted on this node for `cid` that it did not get it.
    pub(super) fn owed_unfound(&self, cid: Cid) {
        // Telling them needs a runtime, which a want dropped at shutdown may lack.
        if tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        let Some(owed) = self.owed.lock().ok().map(|mut o| o.take(&cid)) else {
            return;
        };
        let told: Vec<PeerId> = owed
            .into_iter()
            .filter(|w| w.send_dont_have)
            .map(|w| w.peer)
            .collect();
        let Some(engine) = self.this.upgrade().filter(|_| !told.is_empty()) else {
            return;
        };
        tokio::spawn(async move {
            for peer in told {
                let message = Message {
                    presences: vec![(cid, Presence::DontHave)],
                    ..Message::default()
                };
                engine.send(peer, message).await;
            }
        });
    }

    /// Sends a block that just arrived to the members that counted on this node for it.
    pub(super) fn pass_on(self: &Arc<Self>, cid: Cid, data: &[u8]) {
        let Some(owed) = self.owed.lock().ok().map(|mut o| o.take(&cid)) else {
            return;
        };
        if owed.is_empty() {
            return;
        }
        let (engine, data) = (self.clone(), data.to_vec());
        tokio::spawn(async move {
            for want in owed {
                // Within a while: a member that reads slowly must not keep this copy of the
                // block here for long; it asks elsewhere when its want times out.
                let budget =
                    tokio::time::timeout(PASS_ON_WAIT, engine.send_budget.for_block(want.peer));
                let Ok(budget) = budget.await else {
                    continue;
                };
                let message = Message {
                    blocks: vec![(cid, data.clone())],
                    ..Message::default()
                };
                engine.passed_on.fetch_add(1, Ordering::Relaxed);
                engine
                    .send_with_budget(want.peer, message, budget.into_iter().collect())
                    .await;
            }
        });
    }

    /// Starts fetching with `swarm`: its members may count on this node from now on.
    pub(crate) fn join(&self, swarm: &Swarm) {
        if let Ok(mut swarms) = self.swarms.lock() {
            swarms.retain(|s| s.strong_count() > 0);
            swarms.push(Arc::downgrade(&swarm.0));
        }
    }

    fn swarm_with_member(&self, peer: &PeerId) -> Option<Arc<SwarmInner>> {
        let swarms = self.swarms.lock().ok()?;
        swarms
            .iter()
            .filter_map(Weak::upgrade)
            .find(|s| !s.holders.is_empty() && s.has_member(peer))
    }

    pub(crate) fn kept_block(&self, cid: &Cid) -> Option<Vec<u8>> {
        self.kept.get(cid)
    }

    pub fn swarm_status(&self) -> SwarmStatus {
        let fetching = self
            .swarms
            .lock()
            .map(|s| s.iter().filter(|s| s.strong_count() > 0).count())
            .unwrap_or(0);
        let (kept_blocks, kept_bytes) = self.kept.usage();
        SwarmStatus {
            fetching,
            kept_blocks,
            kept_bytes,
            owed_wants: self.owed.lock().map(|o| o.total).unwrap_or(0),
            passed_on: self.passed_on.load(Ordering::Relaxed),
            banned: self
                .banned
                .lock()
                .map(|b| b.iter().map(|(p, _)| *p).collect())
                .unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::{sha256_multihash, RAW};

    fn cid(i: u32) -> Cid {
        Cid::new_v1(RAW, sha256_multihash(&i.to_be_bytes()))
    }

    #[test]
    fn kept_wants_stay_within_their_bounds() {
        let mut owed = Owed::default();
        let (greedy, other) = (PeerId::random(), PeerId::random());
        for i in 0..OWED_PER_PEER as u32 {
            assert!(owed.keep(greedy, cid(i), true));
        }
        assert!(
            !owed.keep(greedy, cid(9999), true),
            "one peer's share is full"
        );
        assert!(
            owed.keep(other, cid(0), true),
            "another peer still counts on it"
        );
        assert!(owed.keep(other, cid(0), true), "the same want twice is one");
        assert_eq!(owed.total, OWED_PER_PEER + 1);
        owed.cancel(greedy, &cid(0));
        assert_eq!(owed.total, OWED_PER_PEER);
        let taken = owed.take(&cid(0));
        assert_eq!(taken.len(), 1);
        assert_eq!(taken[0].peer, other);
        owed.expire(Instant::now() + OWED_FOR);
        assert_eq!(
            (owed.total, owed.by_cid.len(), owed.per_peer.len()),
            (0, 0, 0)
        );
    }
}
