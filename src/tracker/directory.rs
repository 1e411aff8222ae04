//! Everything `find`, `/peers`, `/membership` and `/status` read, in memory next to the holder
//! index, so no read route touches the database: the live peers, their reputation scores, a few
//! CIDs per path and the membership log. Rebuilt from the database at start; changed only after
//! the transaction that made the change durable committed.

use std::collections::HashMap;
use std::net::IpAddr;

use cid::Cid;
use peerix_http::StoreHash;
use peerix_node::{Multiaddr, PeerId};

use super::dial_addrs::dial_addrs;
use super::find_answer::{self, provider_prefix};
use super::holder_index::HolderIndex;
use super::membership::MembershipLog;
use super::reputation::Reputation;

/// CIDs of a path kept at hand for `find`'s answer (all mappings stay in the database).
const CID_HINTS_PER_PATH: usize = 4;

/// A peer as its last heartbeat described it.
#[derive(Clone, Debug, PartialEq)]
pub struct LivePeer {
    pub peer: PeerId,
    /// Where its last announce came from.
    pub ip: IpAddr,
    /// Of its binary-cache front.
    pub port: u16,
    pub last_seen: u64,
    pub addrs: Vec<Multiaddr>,
    /// What the tracker hands out to dial it (see [`super::dial_addrs`]).
    pub dial_addrs: Vec<String>,
    pub packages: u64,
    pub cid_mappings: u64,
    pub score: f64,
    /// Its entry in `/find` answers (see [`super::find_answer`]), kept current.
    pub(super) provider_prefix: String,
}

impl LivePeer {
    pub(super) fn new(
        peer: PeerId,
        ip: IpAddr,
        port: u16,
        last_seen: u64,
        addrs: Vec<Multiaddr>,
    ) -> Self {
        let mut record = Self {
            dial_addrs: dial_addrs(peer, ip, &addrs),
            peer,
            ip,
            port,
            last_seen,
            addrs,
            packages: 0,
            cid_mappings: 0,
            score: 0.0,
            provider_prefix: String::new(),
        };
        record.provider_prefix = provider_prefix(&record);
        record
    }

    fn set_score(&mut self, score: f64) {
        if self.score != score {
            self.score = score;
            self.provider_prefix = provider_prefix(self);
        }
    }
}

/// A peer that shares a store path, and the CID it said the NAR is published under if that is
/// among the few kept at hand.
#[derive(Clone, Debug, PartialEq)]
pub struct Holder {
    pub peer: LivePeer,
    pub cid: Option<Cid>,
}

pub(super) struct Directory {
    pub(super) index: HolderIndex,
    pub(super) live: HashMap<PeerId, LivePeer>,
    pub(super) reputations: HashMap<PeerId, Reputation>,
    cid_hints: HashMap<StoreHash, Vec<(PeerId, Cid)>>,
    pub(super) membership: MembershipLog,
}

impl Directory {
    pub(super) fn new(membership: MembershipLog) -> Self {
        Self {
            index: HolderIndex::default(),
            live: HashMap::new(),
            reputations: HashMap::new(),
            cid_hints: HashMap::new(),
            membership,
        }
    }

    /// A heartbeat; a returning peer keeps its counts.
    pub(super) fn upsert_peer(&mut self, mut record: LivePeer) {
        let score = self.score(record.peer);
        match self.live.get_mut(&record.peer) {
            Some(known) => {
                record.packages = known.packages;
                record.cid_mappings = known.cid_mappings;
                record.set_score(known.score);
                *known = record;
            }
            None => {
                record.set_score(score);
                self.live.insert(record.peer, record);
            }
        }
    }

    fn score(&self, peer: PeerId) -> f64 {
        self.reputations.get(&peer).map_or(0.0, Reputation::score)
    }

    pub(super) fn add_holding(&mut self, peer: PeerId, hash: StoreHash) {
        if self.index.add(peer, hash) {
            self.membership.record(hash, true);
        }
    }

    pub(super) fn remove_holding(&mut self, peer: PeerId, hash: &StoreHash) {
        if self.index.remove(peer, hash) {
            self.membership.record(*hash, false);
        }
        if let Some(hints) = self.cid_hints.get_mut(hash) {
            hints.retain(|(p, _)| *p != peer);
            if hints.is_empty() {
                self.cid_hints.remove(hash);
            }
        }
    }

    pub(super) fn set_counts(&mut self, peer: PeerId, packages: u64, cid_mappings: u64) {
        if let Some(live) = self.live.get_mut(&peer) {
            live.packages = packages;
            live.cid_mappings = cid_mappings;
        }
    }

    pub(super) fn add_cid(&mut self, peer: PeerId, hash: StoreHash, cid: Cid) {
        let hints = self.cid_hints.entry(hash).or_default();
        if let Some(hint) = hints.iter_mut().find(|(p, _)| *p == peer) {
            hint.1 = cid;
        } else if hints.len() < CID_HINTS_PER_PATH {
            hints.push((peer, cid));
        }
    }

    pub(super) fn remove_peer(&mut self, peer: PeerId) {
        self.live.remove(&peer);
        self.index.forget(peer);
    }

    pub(super) fn set_reputation(&mut self, peer: PeerId, reputation: Reputation) {
        self.reputations.insert(peer, reputation);
        if let Some(live) = self.live.get_mut(&peer) {
            live.set_score(reputation.score());
        }
    }

    /// The live holders of `hash`, best score first, then the most recently seen; at most
    /// `max`, each with its CID if at hand.
    fn best_holders(&self, hash: &StoreHash, max: usize) -> Vec<(&LivePeer, Option<Cid>)> {
        let mut holders: Vec<&LivePeer> = self
            .index
            .holders(hash)
            .filter_map(|peer| self.live.get(&peer))
            .collect();
        let order = |a: &&LivePeer, b: &&LivePeer| {
            b.score
                .total_cmp(&a.score)
                .then(b.last_seen.cmp(&a.last_seen))
        };
        if holders.len() > max && max > 0 {
            holders.select_nth_unstable_by(max - 1, order);
        }
        holders.truncate(max);
        holders.sort_by(order);
        let hints = self.cid_hints.get(hash);
        holders
            .into_iter()
            .map(|peer| {
                let cid = hints
                    .and_then(|h| h.iter().find(|(p, _)| *p == peer.peer))
                    .map(|(_, cid)| *cid);
                (peer, cid)
            })
            .collect()
    }

    pub(super) fn find(&self, hash: &StoreHash, max: usize) -> Vec<Holder> {
        self.best_holders(hash, max)
            .into_iter()
            .map(|(peer, cid)| Holder {
                peer: peer.clone(),
                cid,
            })
            .collect()
    }

    /// [`Self::find`] as the JSON of a `/find` answer.
    pub(super) fn find_json(&self, hash: &StoreHash, max: usize) -> Vec<u8> {
        find_answer::render(hash, self.best_holders(hash, max).into_iter())
    }

    /// Live peers, best score first.
    /// `count` live peers, the run that starts at `start` (modulo their number) in the map's
    /// order, wrapping around.
    pub(super) fn sample(&self, start: u64, count: usize) -> Vec<LivePeer> {
        let len = self.live.len();
        if len == 0 {
            return Vec::new();
        }
        let start = (start % len as u64) as usize;
        let values = self.live.values();
        values
            .clone()
            .skip(start)
            .chain(values.take(start))
            .take(count)
            .cloned()
            .collect()
    }

    pub(super) fn peers(&self) -> Vec<LivePeer> {
        let mut peers: Vec<LivePeer> = self.live.values().cloned().collect();
        peers.sort_by(|a, b| {
            b.score
                .total_cmp(&a.score)
                .then(b.last_seen.cmp(&a.last_seen))
        });
        peers
    }
}
