//! The CIDs peers named for NARs, as far as fetching by them went: which peer named a NAR's CID
//! (to be penalised if fetching by it fails), and which CIDs failed for a NAR (never used for
//! it again, whoever names them). Both bounded: cleared whole when full, which only forgets.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard, PoisonError};

use cid::Cid;
use peerix_http::NarHash;
use peerix_node::PeerId;

/// NARs whose CID came from a peer remembered with that peer, and CIDs a fetch failed with,
/// at most.
const REMEMBERED: usize = 1 << 14;

#[derive(Default)]
pub struct NamedCids {
    sources: Mutex<HashMap<NarHash, PeerId>>,
    failed: Mutex<HashSet<(NarHash, Cid)>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl NamedCids {
    /// Whether fetching `nar_hash` by `cid` failed before.
    pub fn failed(&self, nar_hash: NarHash, cid: Cid) -> bool {
        lock(&self.failed).contains(&(nar_hash, cid))
    }

    /// `peer` named the CID `nar_hash` is fetched by.
    pub fn named_by(&self, nar_hash: NarHash, peer: PeerId) {
        let mut sources = lock(&self.sources);
        if sources.len() >= REMEMBERED {
            sources.clear();
        }
        sources.insert(nar_hash, peer);
    }

    /// Fetching `nar_hash` by `cid` failed: never again. Returns the peer that named it.
    pub fn fail(&self, nar_hash: NarHash, cid: Cid) -> Option<PeerId> {
        let mut failed = lock(&self.failed);
        if failed.len() >= REMEMBERED {
            failed.clear();
        }
        failed.insert((nar_hash, cid));
        drop(failed);
        lock(&self.sources).remove(&nar_hash)
    }
}
