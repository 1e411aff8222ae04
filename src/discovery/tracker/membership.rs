//! What the network holds, as the tracker last said: a set of keyed 64-bit fingerprints of
//! store hashes, kept current by the tracker's deltas. A narinfo request for a path outside it
//! is a miss answered from memory; one inside it is worth asking the tracker who holds it.

use std::collections::HashSet;
use std::hash::{BuildHasher, RandomState};
use std::sync::RwLock;

use peerix_http::StoreHash;

use crate::wire::tracker::MembershipAnswer;

/// Distinct paths remembered at most: twenty times the 100,000 paths of a large store
/// (about 40 MiB). Past it, further additions are dropped (those paths are misses here).
pub const MAX_MEMBERS: usize = 2_000_000;

#[derive(Default)]
pub struct Membership {
    state: RwLock<State>,
    keys: RandomState,
}

#[derive(Default)]
struct State {
    fingerprints: HashSet<u64>,
    /// The tracker's epoch and version this set matches; `None` before the first answer.
    version: Option<(u64, u64)>,
}

impl Membership {
    /// Whether some peer probably holds `hash` (false positives one in 2^64 per path).
    pub fn probably_held(&self, hash: &StoreHash) -> bool {
        let fingerprint = self.keys.hash_one(hash);
        self.state
            .read()
            .is_ok_and(|s| s.fingerprints.contains(&fingerprint))
    }

    /// The version to ask changes since.
    pub fn version(&self) -> Option<(u64, u64)> {
        self.state.read().ok().and_then(|s| s.version)
    }

    pub fn len(&self) -> usize {
        self.state.read().map_or(0, |s| s.fingerprints.len())
    }

    /// Takes the tracker's answer; hashes it sends that are not store hashes are skipped.
    /// Returns whether the tracker's epoch changed (it restarted).
    pub fn apply(&self, answer: &MembershipAnswer) -> bool {
        let fingerprints = |texts: &[String]| -> Vec<u64> {
            texts
                .iter()
                .filter_map(|t| StoreHash::parse(t).ok())
                .map(|h| self.keys.hash_one(h))
                .collect()
        };
        let (added, removed) = (fingerprints(&answer.added), fingerprints(&answer.removed));
        let Ok(mut state) = self.state.write() else {
            return false;
        };
        let restarted = state
            .version
            .is_some_and(|(epoch, _)| epoch != answer.epoch);
        if answer.full {
            state.fingerprints.clear();
        }
        for fingerprint in removed {
            state.fingerprints.remove(&fingerprint);
        }
        for fingerprint in added {
            if state.fingerprints.len() >= MAX_MEMBERS {
                break;
            }
            state.fingerprints.insert(fingerprint);
        }
        state.version = Some((answer.epoch, answer.version));
        restarted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(c: char) -> String {
        c.to_string().repeat(32)
    }

    fn answer(epoch: u64, full: bool, added: &[char], removed: &[char]) -> MembershipAnswer {
        MembershipAnswer {
            epoch,
            version: 1,
            full,
            added: added.iter().map(|c| hash(*c)).collect(),
            removed: removed.iter().map(|c| hash(*c)).collect(),
        }
    }

    #[test]
    fn follows_full_sets_and_deltas() {
        let set = Membership::default();
        let held = |c| set.probably_held(&StoreHash::parse(&hash(c)).unwrap());
        assert!(!set.apply(&answer(7, true, &['a', 'b'], &[])));
        assert!(held('a') && held('b') && !held('c'));
        set.apply(&answer(7, false, &['c'], &['a']));
        assert!(!held('a') && held('b') && held('c'));
        // A new epoch's full set replaces everything.
        assert!(set.apply(&answer(8, true, &['d'], &[])));
        assert!(!held('b') && !held('c') && held('d'));
        assert_eq!(set.len(), 1);
        assert_eq!(set.version(), Some((8, 1)));
        // Garbage is skipped, not fatal.
        let mut bad = answer(8, false, &[], &[]);
        bad.added.push("not a hash".to_owned());
        set.apply(&bad);
        assert_eq!(set.len(), 1);
    }
}
