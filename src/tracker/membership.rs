//! The log of changes to the network's membership set (the store hashes at least one live peer
//! holds), so a node that polls every few seconds gets only what changed since its last answer.

use std::collections::{BTreeMap, VecDeque};

use peerix_http::StoreHash;

/// Changes remembered: enough for a node to catch up after minutes away at a busy tracker.
pub const DEFAULT_LOG_LEN: usize = 500_000;

pub(super) struct MembershipLog {
    /// Random per start: a restarted tracker's versions mean nothing to its old clients.
    epoch: u64,
    /// Changes of the set so far; the newest entry has this version.
    version: u64,
    /// `(hash, joined)` of versions `version - changes.len() + 1 ..= version`.
    changes: VecDeque<(StoreHash, bool)>,
    max_len: usize,
}

/// What changed since a version: joined and left, each hash once with its current state.
pub(super) struct Delta {
    pub(super) added: Vec<StoreHash>,
    pub(super) removed: Vec<StoreHash>,
}

impl MembershipLog {
    pub(super) fn new(epoch: u64, max_len: usize) -> Self {
        Self {
            epoch,
            version: 0,
            changes: VecDeque::new(),
            max_len: max_len.max(1),
        }
    }

    pub(super) fn epoch(&self) -> u64 {
        self.epoch
    }

    pub(super) fn version(&self) -> u64 {
        self.version
    }

    pub(super) fn record(&mut self, hash: StoreHash, joined: bool) {
        if self.changes.len() == self.max_len {
            self.changes.pop_front();
        }
        self.changes.push_back((hash, joined));
        self.version += 1;
    }

    /// The changes after `version` of `epoch`, or `None` when the log cannot tell them (another
    /// epoch, a version forgotten or not yet reached): then the client needs the whole set.
    pub(super) fn since(&self, epoch: u64, version: u64) -> Option<Delta> {
        let oldest_known = self.version - self.changes.len() as u64;
        if epoch != self.epoch || version < oldest_known || version > self.version {
            return None;
        }
        let skip = (version - oldest_known) as usize;
        // The last change of each hash is its state now.
        let last: BTreeMap<StoreHash, bool> = self.changes.iter().skip(skip).copied().collect();
        let (mut added, mut removed) = (Vec::new(), Vec::new());
        for (hash, joined) in last {
            match joined {
                true => added.push(hash),
                false => removed.push(hash),
            }
        }
        Some(Delta { added, removed })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(c: char) -> StoreHash {
        StoreHash::parse(&c.to_string().repeat(32)).unwrap()
    }

    #[test]
    fn deltas_hold_the_last_state_of_each_hash_and_need_a_remembered_version() {
        let mut log = MembershipLog::new(7, 3);
        log.record(hash('a'), true);
        log.record(hash('b'), true);
        let delta = log.since(7, 0).unwrap();
        assert_eq!((delta.added.len(), delta.removed.len()), (2, 0));
        log.record(hash('a'), false);
        let delta = log.since(7, 1).unwrap();
        assert_eq!(delta.added, vec![hash('b')]);
        assert_eq!(delta.removed, vec![hash('a')]);
        assert!(log.since(7, 3).unwrap().added.is_empty());
        // A fourth change pushes the first out: version 0 can no longer be answered by a delta.
        log.record(hash('c'), true);
        assert!(log.since(7, 0).is_none());
        assert!(log.since(7, 1).is_some());
        assert!(log.since(8, 4).is_none(), "another epoch");
        assert!(log.since(7, 5).is_none(), "a version not reached");
    }
}
