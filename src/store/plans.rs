//! NAR plans kept for reuse, least recently used first out: a striped fetch asks for one NAR in
//! 4 MiB segments and Bitswap asks for it block by block, and walking a path's tree again for
//! each would cost more than the bytes.

use std::sync::{Arc, Mutex};

use peerix_http::{NarHash, StoreHash};

use crate::nix::nar::NarPlan;

/// Plans kept at most.
const PLANS_KEPT: usize = 64;
/// Memory the kept plans may hold together (a plan of a path with many files is large).
const PLAN_BYTES_KEPT: usize = 64 << 20;

struct Kept {
    nar_hash: NarHash,
    path: StoreHash,
    plan: Arc<NarPlan>,
    memory: usize,
}

/// A few dozen entries: a linear search costs less than hashing would.
#[derive(Default)]
pub struct PlanCache {
    /// Most recently used last.
    kept: Mutex<Vec<Kept>>,
}

impl PlanCache {
    /// The plan kept for the NAR `nar_hash`, marked as just used.
    pub fn get(&self, nar_hash: &NarHash) -> Option<Arc<NarPlan>> {
        self.take_to_front(|k| k.nar_hash == *nar_hash)
    }

    /// The plan kept for the path `path`, marked as just used.
    pub fn get_by_path(&self, path: &StoreHash) -> Option<Arc<NarPlan>> {
        self.take_to_front(|k| k.path == *path)
    }

    fn take_to_front(&self, matches: impl Fn(&Kept) -> bool) -> Option<Arc<NarPlan>> {
        let mut kept = self.kept.lock().ok()?;
        let at = kept.iter().rposition(matches)?;
        let entry = kept.remove(at);
        let plan = entry.plan.clone();
        kept.push(entry);
        Some(plan)
    }

    /// Keeps `plan`, dropping the least recently used plans beyond the bounds. A plan larger
    /// than the whole budget is not kept.
    pub fn insert(&self, nar_hash: NarHash, path: StoreHash, plan: Arc<NarPlan>) {
        let memory = plan.memory();
        if memory > PLAN_BYTES_KEPT {
            return;
        }
        let Ok(mut kept) = self.kept.lock() else {
            return;
        };
        kept.retain(|k| k.nar_hash != nar_hash);
        let mut total: usize = kept.iter().map(|k| k.memory).sum::<usize>() + memory;
        while !kept.is_empty() && (kept.len() >= PLANS_KEPT || total > PLAN_BYTES_KEPT) {
            total -= kept.remove(0).memory;
        }
        kept.push(Kept {
            nar_hash,
            path,
            plan,
            memory,
        });
    }

    /// Drops the plans of paths for which `still_shared` is false (they vanished, or are
    /// filtered now).
    pub fn retain(&self, still_shared: impl Fn(&NarHash) -> bool) {
        if let Ok(mut kept) = self.kept.lock() {
            kept.retain(|k| still_shared(&k.nar_hash));
        }
    }

    pub fn forget(&self, nar_hash: &NarHash) {
        self.retain(|h| h != nar_hash);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> Arc<NarPlan> {
        let dir = std::env::temp_dir().join(format!("peerix-plans-{}", std::process::id()));
        std::fs::write(&dir, b"x").unwrap();
        let plan = Arc::new(NarPlan::of_path(&dir).unwrap());
        std::fs::remove_file(&dir).unwrap();
        plan
    }

    #[test]
    fn keeps_the_most_recently_used_and_forgets_vanished_paths() {
        let cache = PlanCache::default();
        let store_hash = StoreHash::parse(&"a".repeat(32)).unwrap();
        let plan = plan();
        for i in 0..PLANS_KEPT as u8 {
            cache.insert(NarHash([i; 32]), store_hash, plan.clone());
        }
        assert!(cache.get(&NarHash([0; 32])).is_some());
        cache.insert(NarHash([255; 32]), store_hash, plan.clone());
        // The first one was used last but one, so the second is the least recently used.
        assert!(cache.get(&NarHash([0; 32])).is_some());
        assert!(cache.get(&NarHash([1; 32])).is_none());
        assert!(cache.get(&NarHash([255; 32])).is_some());
        cache.retain(|h| *h != NarHash([255; 32]));
        assert!(cache.get(&NarHash([255; 32])).is_none());
        cache.forget(&NarHash([0; 32]));
        assert!(cache.get(&NarHash([0; 32])).is_none());
        assert!(cache.get_by_path(&store_hash).is_some());
    }
}
