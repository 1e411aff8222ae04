//! Who holds what: for each connected peer, the store paths it announced over the index protocol.
//! A narinfo request is answered from this, in memory, without asking anyone.

use std::collections::{HashMap, HashSet};
use std::sync::RwLock;

use peerix_http::StoreHash;
use peerix_node::PeerId;

use crate::wire::IndexUpdate;

#[derive(Default)]
pub struct Holders {
    by_peer: RwLock<HashMap<PeerId, HashSet<StoreHash>>>,
}

impl Holders {
    /// Starts `peer`'s set afresh (it opened a new index stream).
    pub fn reset(&self, peer: PeerId) {
        if let Ok(mut map) = self.by_peer.write() {
            map.insert(peer, HashSet::new());
        }
    }

    pub fn apply(&self, peer: PeerId, update: IndexUpdate) {
        let Ok(mut map) = self.by_peer.write() else {
            return;
        };
        let set = map.entry(peer).or_default();
        match update {
            IndexUpdate::Add(hashes) => set.extend(hashes),
            IndexUpdate::Remove(hashes) => {
                for hash in hashes {
                    set.remove(&hash);
                }
            }
        }
    }

    pub fn forget(&self, peer: &PeerId) {
        if let Ok(mut map) = self.by_peer.write() {
            map.remove(peer);
        }
    }

    /// How many peers announced paths, and how many paths they announced in all.
    pub fn summary(&self) -> (usize, usize) {
        self.by_peer
            .read()
            .map(|map| {
                let holding = map.values().filter(|set| !set.is_empty());
                let (peers, paths) = holding.fold((0, 0), |(n, p), set| (n + 1, p + set.len()));
                (peers, paths)
            })
            .unwrap_or_default()
    }

    /// The peers that announced `hash`.
    pub fn holders_of(&self, hash: &StoreHash) -> Vec<PeerId> {
        self.by_peer
            .read()
            .map(|map| {
                map.iter()
                    .filter(|(_, set)| set.contains(hash))
                    .map(|(peer, _)| *peer)
                    .collect()
            })
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracks_additions_removals_and_departures() {
        let holders = Holders::default();
        let (a, b) = (PeerId::random(), PeerId::random());
        let hash = |c: char| StoreHash::parse(&c.to_string().repeat(32)).unwrap();
        holders.apply(a, IndexUpdate::Add(vec![hash('a'), hash('b')]));
        holders.apply(b, IndexUpdate::Add(vec![hash('a')]));
        let mut both = holders.holders_of(&hash('a'));
        both.sort();
        let mut expected = vec![a, b];
        expected.sort();
        assert_eq!(both, expected);
        holders.apply(a, IndexUpdate::Remove(vec![hash('a')]));
        assert_eq!(holders.holders_of(&hash('a')), vec![b]);
        holders.forget(&b);
        assert!(holders.holders_of(&hash('a')).is_empty());
        holders.reset(a);
        assert!(holders.holders_of(&hash('b')).is_empty());
    }
}
