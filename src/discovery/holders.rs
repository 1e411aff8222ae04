//! Who holds what: for each connected peer, the store paths it announced over its index stream,
//! and the holders a directory (the tracker) named for single paths lately. A narinfo request is
//! answered from this, in memory, without asking anyone.
//!
//! Bounded whatever peers send: a set belongs to the index stream that filled it (a newer
//! stream of the same peer replaces it; the older one ending late removes nothing), holds at
//! most [`MAX_HASHES_PER_PEER`] paths, all sets together [`MAX_HASHES`], and at most
//! [`MAX_PEERS`] peers are remembered (the least recently active go first). Paths are kept as
//! 64-bit keyed fingerprints: a quarter of a store hash's size, and a peer cannot choose a
//! collision with a path it does not announce (it could only claim that path, which announcing
//! it does anyway).

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, RandomState};
use std::sync::RwLock;
use std::time::{Duration, Instant};

use hashlink::LruCache;
use peerix_http::StoreHash;
use peerix_node::PeerId;
use thiserror::Error;

use crate::wire::IndexUpdate;

/// Paths one peer may announce: ten times the 100,000 paths of a large store (about 20 MiB).
pub const MAX_HASHES_PER_PEER: usize = 1_000_000;
/// Paths all peers together may announce (peer ids cost nothing): about 30 MiB.
pub const MAX_HASHES: usize = 1_500_000;
/// Sets past this size (two and a half times a large store) may be dropped for a smaller one
/// once all sets together are full.
const LARGE_SET: usize = 250_000;
/// Peers whose sets are kept.
pub const MAX_PEERS: usize = 1024;
/// How long a peer that broke the index protocol's rules is not listened to.
const PENALTY: Duration = Duration::from_secs(600);
/// Penalised peers remembered at most (the oldest penalty goes first).
const MAX_PENALISED: usize = 4096;
/// How long the holders a directory named for a path are kept: long enough for the NAR
/// requests that follow its narinfo; the directory is asked again afterwards.
const FOUND_FOR: Duration = Duration::from_secs(600);
/// Paths whose directory-named holders are kept at most (the least recent go first).
const MAX_FOUND: usize = 16_384;
/// Holders kept per path.
const MAX_FOUND_HOLDERS: usize = 16;

/// Why an index update was not taken.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum RefusedUpdate {
    /// A protocol violation: the peer is cut off and penalised.
    #[error("the peer announced more than {MAX_HASHES_PER_PEER} paths")]
    TooManyForPeer,
    /// Not the peer's fault: its stream is closed, and its set dropped.
    #[error("the peers' announcements together reached {MAX_HASHES} paths")]
    Full,
    /// A newer index stream of the peer took over, or the set was evicted.
    #[error("the stream's set was replaced or evicted")]
    Superseded,
}

/// The index stream a set belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamTicket(u64);

struct PeerSet {
    ticket: StreamTicket,
    fingerprints: HashSet<u64>,
    /// The tick of the last update, for eviction.
    last_active: u64,
}

#[derive(Default)]
struct Sets {
    by_peer: HashMap<PeerId, PeerSet>,
    /// Sum of the sets' sizes.
    total: usize,
    /// Counts up with every stream started and update applied.
    tick: u64,
    penalised: HashMap<PeerId, Instant>,
}

impl Sets {
    fn remove(&mut self, peer: &PeerId) {
        if let Some(set) = self.by_peer.remove(peer) {
            self.total -= set.fingerprints.len();
        }
    }

    /// Room for `wanted` more paths of `peer` once all sets together are full: the sets of
    /// other peers larger than [`LARGE_SET`] and more than twice as large as `peer`'s would be
    /// go, the largest first. Two peers announcing a million made-up paths each thus lose
    /// theirs before a store of ordinary size is refused, while ordinary stores (a new stream
    /// starts empty, so its first frames say nothing of its size) never evict each other.
    fn make_room(&mut self, peer: PeerId, wanted: usize) {
        let own = self.by_peer.get(&peer).map_or(0, |s| s.fingerprints.len()) + wanted;
        while self.total + wanted > MAX_HASHES {
            let largest = self
                .by_peer
                .iter()
                .filter(|(other, _)| **other != peer)
                .map(|(other, set)| (*other, set.fingerprints.len()))
                .max_by_key(|(_, len)| *len);
            match largest {
                Some((victim, len)) if len > LARGE_SET.max(own.saturating_mul(2)) => {
                    tracing::debug!(%victim, paths = len, "index full: dropping the largest set");
                    self.remove(&victim);
                }
                _ => break,
            }
        }
    }

    fn evict_least_active(&mut self) {
        let oldest = self
            .by_peer
            .iter()
            .min_by_key(|(_, set)| set.last_active)
            .map(|(peer, _)| *peer);
        if let Some(peer) = oldest {
            self.remove(&peer);
        }
    }
}

pub struct Holders {
    sets: RwLock<Sets>,
    keys: RandomState,
    /// Path -> when a directory named its holders, and them. Read without reordering (a miss
    /// must not queue behind other requests for a write lock): the oldest named go first.
    found: RwLock<LruCache<StoreHash, (Instant, Vec<PeerId>)>>,
}

impl Default for Holders {
    fn default() -> Self {
        Self {
            sets: RwLock::default(),
            keys: RandomState::default(),
            found: RwLock::new(LruCache::new(MAX_FOUND)),
        }
    }
}

impl Holders {
    fn fingerprint(&self, hash: &StoreHash) -> u64 {
        self.keys.hash_one(hash)
    }

    /// Starts `peer`'s set afresh for a new index stream; `None` while the peer is penalised.
    pub fn start(&self, peer: PeerId) -> Option<StreamTicket> {
        let mut sets = self.sets.write().ok()?;
        if let Some(since) = sets.penalised.get(&peer) {
            if since.elapsed() < PENALTY {
                return None;
            }
            sets.penalised.remove(&peer);
        }
        sets.remove(&peer);
        if sets.by_peer.len() >= MAX_PEERS {
            sets.evict_least_active();
        }
        sets.tick += 1;
        let ticket = StreamTicket(sets.tick);
        let set = PeerSet {
            ticket,
            fingerprints: HashSet::new(),
            last_active: sets.tick,
        };
        sets.by_peer.insert(peer, set);
        Some(ticket)
    }

    /// Applies an update from the stream of `ticket`. On [`RefusedUpdate::TooManyForPeer`] the
    /// peer is penalised; on any refusal its set is gone.
    pub fn apply(
        &self,
        peer: PeerId,
        ticket: StreamTicket,
        update: IndexUpdate,
    ) -> Result<(), RefusedUpdate> {
        let (adding, hashes) = match update {
            IndexUpdate::Add(hashes) => (true, hashes),
            IndexUpdate::Remove(hashes) => (false, hashes),
        };
        // Hashing happens before the lock is taken: lookups wait only for the insertions.
        let fingerprints: Vec<u64> = hashes.iter().map(|h| self.fingerprint(h)).collect();
        let mut sets = self.sets.write().map_err(|_| RefusedUpdate::Superseded)?;
        if adding
            && sets
                .by_peer
                .get(&peer)
                .is_some_and(|set| set.ticket == ticket)
        {
            sets.make_room(peer, fingerprints.len());
        }
        sets.tick += 1;
        let (tick, total) = (sets.tick, sets.total);
        let set = sets
            .by_peer
            .get_mut(&peer)
            .filter(|set| set.ticket == ticket)
            .ok_or(RefusedUpdate::Superseded)?;
        set.last_active = tick;
        let before = set.fingerprints.len();
        let mut refused = None;
        if adding {
            for fingerprint in fingerprints {
                set.fingerprints.insert(fingerprint);
                if set.fingerprints.len() > MAX_HASHES_PER_PEER {
                    refused = Some(RefusedUpdate::TooManyForPeer);
                    break;
                }
                if total + set.fingerprints.len() - before > MAX_HASHES {
                    refused = Some(RefusedUpdate::Full);
                    break;
                }
            }
        } else {
            for fingerprint in &fingerprints {
                set.fingerprints.remove(fingerprint);
            }
        }
        let after = set.fingerprints.len();
        sets.total = sets.total + after - before;
        match refused {
            None => Ok(()),
            Some(refused) => {
                sets.remove(&peer);
                if refused == RefusedUpdate::TooManyForPeer {
                    sets.penalised.retain(|_, since| since.elapsed() < PENALTY);
                    if sets.penalised.len() >= MAX_PENALISED {
                        let oldest = sets.penalised.iter().min_by_key(|(_, t)| **t);
                        if let Some(oldest) = oldest.map(|(peer, _)| *peer) {
                            sets.penalised.remove(&oldest);
                        }
                    }
                    sets.penalised.insert(peer, Instant::now());
                }
                Err(refused)
            }
        }
    }

    /// The index stream of `ticket` ended: its set goes, unless a newer stream replaced it.
    pub fn end(&self, peer: PeerId, ticket: StreamTicket) {
        if let Ok(mut sets) = self.sets.write() {
            if sets.by_peer.get(&peer).is_some_and(|s| s.ticket == ticket) {
                sets.remove(&peer);
            }
        }
    }

    /// The peer disconnected.
    pub fn forget(&self, peer: &PeerId) {
        if let Ok(mut sets) = self.sets.write() {
            sets.remove(peer);
        }
    }

    /// Keeps only the sets of peers for which `connected` is true (after peer events were lost).
    pub fn retain_connected(&self, connected: impl Fn(&PeerId) -> bool) {
        if let Ok(mut sets) = self.sets.write() {
            let gone: Vec<PeerId> = sets
                .by_peer
                .keys()
                .filter(|peer| !connected(peer))
                .copied()
                .collect();
            for peer in gone {
                sets.remove(&peer);
            }
        }
    }

    /// How many peers announced paths, and how many paths they announced in all.
    pub fn summary(&self) -> (usize, usize) {
        self.sets
            .read()
            .map(|sets| {
                let holding = sets.by_peer.values().filter(|s| !s.fingerprints.is_empty());
                (holding.count(), sets.total)
            })
            .unwrap_or_default()
    }

    /// How many paths each peer announced.
    pub fn per_peer(&self) -> Vec<(PeerId, usize)> {
        self.sets
            .read()
            .map(|sets| {
                sets.by_peer
                    .iter()
                    .map(|(peer, set)| (*peer, set.fingerprints.len()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The peers that announced `hash`, then those a directory named for it lately.
    pub fn holders_of(&self, hash: &StoreHash) -> Vec<PeerId> {
        let fingerprint = self.fingerprint(hash);
        let mut holders: Vec<PeerId> = self
            .sets
            .read()
            .map(|sets| {
                sets.by_peer
                    .iter()
                    .filter(|(_, set)| set.fingerprints.contains(&fingerprint))
                    .map(|(peer, _)| *peer)
                    .collect()
            })
            .unwrap_or_default();
        if let Ok(found) = self.found.read() {
            if let Some((_, peers)) = found
                .peek(hash)
                .filter(|(when, _)| when.elapsed() < FOUND_FOR)
            {
                let new: Vec<PeerId> = peers
                    .iter()
                    .filter(|p| !holders.contains(p))
                    .copied()
                    .collect();
                holders.extend(new);
            }
        }
        holders
    }

    /// Records the holders a directory named for `hash` (and this node could reach).
    pub fn learn(&self, hash: StoreHash, mut peers: Vec<PeerId>) {
        peers.truncate(MAX_FOUND_HOLDERS);
        if let Ok(mut found) = self.found.write() {
            found.insert(hash, (Instant::now(), peers));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(c: char) -> StoreHash {
        StoreHash::parse(&c.to_string().repeat(32)).unwrap()
    }

    #[test]
    fn tracks_additions_removals_and_departures() {
        let holders = Holders::default();
        let (a, b) = (PeerId::random(), PeerId::random());
        let (ta, tb) = (holders.start(a).unwrap(), holders.start(b).unwrap());
        holders
            .apply(a, ta, IndexUpdate::Add(vec![hash('a'), hash('b')]))
            .unwrap();
        holders
            .apply(b, tb, IndexUpdate::Add(vec![hash('a')]))
            .unwrap();
        let mut both = holders.holders_of(&hash('a'));
        both.sort();
        let mut expected = vec![a, b];
        expected.sort();
        assert_eq!(both, expected);
        holders
            .apply(a, ta, IndexUpdate::Remove(vec![hash('a')]))
            .unwrap();
        assert_eq!(holders.holders_of(&hash('a')), vec![b]);
        assert_eq!(holders.summary(), (2, 2));
        holders.forget(&b);
        assert!(holders.holders_of(&hash('a')).is_empty());
        holders.start(a).unwrap();
        assert!(holders.holders_of(&hash('b')).is_empty());
        assert_eq!(holders.summary(), (0, 0));
    }

    #[test]
    fn adds_the_holders_a_directory_named() {
        let holders = Holders::default();
        let (a, b) = (PeerId::random(), PeerId::random());
        let ta = holders.start(a).unwrap();
        holders
            .apply(a, ta, IndexUpdate::Add(vec![hash('a')]))
            .unwrap();
        holders.learn(hash('a'), vec![b, a]);
        holders.learn(hash('b'), vec![b]);
        assert_eq!(holders.holders_of(&hash('a')), vec![a, b]);
        assert_eq!(holders.holders_of(&hash('b')), vec![b]);
        holders.learn(hash('b'), Vec::new());
        assert!(holders.holders_of(&hash('b')).is_empty());
    }

    #[test]
    fn a_set_ends_with_its_own_stream_only() {
        let holders = Holders::default();
        let peer = PeerId::random();
        let old = holders.start(peer).unwrap();
        let new = holders.start(peer).unwrap();
        holders
            .apply(peer, new, IndexUpdate::Add(vec![hash('a')]))
            .unwrap();
        assert_eq!(
            holders.apply(peer, old, IndexUpdate::Add(vec![hash('b')])),
            Err(RefusedUpdate::Superseded)
        );
        holders.end(peer, old);
        assert_eq!(holders.holders_of(&hash('a')), vec![peer]);
        holders.end(peer, new);
        assert!(holders.holders_of(&hash('a')).is_empty());
        holders.start(peer).unwrap();
        holders.retain_connected(|p| *p != peer);
        assert_eq!(holders.sets.read().unwrap().by_peer.len(), 0);
    }

    #[test]
    fn caps_each_peer_and_penalises_past_the_cap() {
        let holders = Holders::default();
        let peer = PeerId::random();
        let ticket = holders.start(peer).unwrap();
        // Fingerprints are what is counted: distinct fingerprints stand for distinct hashes.
        let mut sets = holders.sets.write().unwrap();
        let set = sets.by_peer.get_mut(&peer).unwrap();
        set.fingerprints.extend(0..MAX_HASHES_PER_PEER as u64);
        sets.total = MAX_HASHES_PER_PEER;
        drop(sets);
        let more = IndexUpdate::Add(vec![hash('a')]);
        assert_eq!(
            holders.apply(peer, ticket, more),
            Err(RefusedUpdate::TooManyForPeer)
        );
        assert_eq!(holders.summary(), (0, 0));
        assert_eq!(holders.start(peer), None);
    }

    /// Gives `peer` a set of `len` distinct fingerprints from `from` on.
    fn fill(holders: &Holders, peer: PeerId, from: u64, len: usize) {
        let mut sets = holders.sets.write().unwrap();
        let set = sets.by_peer.get_mut(&peer).unwrap();
        set.fingerprints.extend(from..from + len as u64);
        sets.total += len;
    }

    #[test]
    fn caps_all_peers_together_without_penalty() {
        let holders = Holders::default();
        let (a, b) = (PeerId::random(), PeerId::random());
        let ta = holders.start(a).unwrap();
        let tb = holders.start(b).unwrap();
        fill(&holders, a, 0, MAX_HASHES_PER_PEER - 10);
        fill(&holders, b, 1 << 40, MAX_HASHES - MAX_HASHES_PER_PEER + 9);
        // A's set is the largest already: B keeps its set, A is refused.
        assert_eq!(
            holders.apply(a, ta, IndexUpdate::Add(vec![hash('a'), hash('b')])),
            Err(RefusedUpdate::Full)
        );
        assert!(holders.start(a).is_some(), "not penalised");
        assert!(holders.sets.read().unwrap().by_peer.contains_key(&b));
        holders.end(b, tb);
        assert_eq!(holders.summary(), (0, 0));
    }

    #[test]
    fn a_full_index_drops_the_largest_sets_before_refusing_a_smaller_one() {
        let holders = Holders::default();
        let (liar, other_liar, honest) = (PeerId::random(), PeerId::random(), PeerId::random());
        let tickets: Vec<StreamTicket> = [liar, other_liar, honest]
            .iter()
            .map(|p| holders.start(*p).unwrap())
            .collect();
        fill(&holders, liar, 0, MAX_HASHES / 2 + 1);
        fill(&holders, other_liar, 1 << 40, MAX_HASHES / 2 - 1);
        holders
            .apply(
                honest,
                tickets[2],
                IndexUpdate::Add(vec![hash('a'), hash('b')]),
            )
            .unwrap();
        assert_eq!(holders.holders_of(&hash('a')), vec![honest]);
        let sets = holders.sets.read().unwrap();
        assert!(!sets.by_peer.contains_key(&liar), "the largest set went");
        assert!(sets.by_peer.contains_key(&other_liar), "one set was enough");
        assert_eq!(sets.total, MAX_HASHES / 2 - 1 + 2);
    }

    #[test]
    fn remembers_a_bounded_number_of_peers() {
        let holders = Holders::default();
        let first = PeerId::random();
        holders.start(first).unwrap();
        for _ in 0..MAX_PEERS {
            holders.start(PeerId::random()).unwrap();
        }
        let sets = holders.sets.read().unwrap();
        assert_eq!(sets.by_peer.len(), MAX_PEERS);
        assert!(!sets.by_peer.contains_key(&first));
    }
}
