//! Closure prefetch: Nix substitutes a closure path by path, asking for each narinfo in turn, so
//! when a peer's narinfo passes, the narinfos of its references are fetched from their holders
//! at once, and Nix's next questions are answered from memory (the trusted narinfos the cache
//! keeps). What is prefetched goes through the same trust checks as any answer.
//!
//! Bounded: at most [`AT_ONCE`] requests at a time and [`PENDING`] paths waiting or under way;
//! past that, references are not prefetched (Nix asks for them itself, as without prefetch).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use peerix_http::{NarInfo, StoreHash};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

/// Prefetch requests under way at most, over all closures.
pub const AT_ONCE: usize = 16;
/// Paths waiting for a prefetch or under way, at most.
pub const PENDING: usize = 1024;

pub struct Prefetch {
    permits: Arc<Semaphore>,
    pending: Mutex<HashSet<StoreHash>>,
    /// The paths this machine shares itself: Nix has them, and asks no one for them.
    shared_here: Option<watch::Receiver<Arc<HashSet<StoreHash>>>>,
}

impl Default for Prefetch {
    fn default() -> Self {
        Self {
            permits: Arc::new(Semaphore::new(AT_ONCE)),
            pending: Mutex::default(),
            shared_here: None,
        }
    }
}

/// A claimed path: released when dropped, whether its prefetch ran or not.
pub struct Claim<'a> {
    prefetch: &'a Prefetch,
    pub hash: StoreHash,
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        if let Ok(mut pending) = self.prefetch.pending.lock() {
            pending.remove(&self.hash);
        }
    }
}

impl Prefetch {
    pub fn with_shared_here(shared_here: watch::Receiver<Arc<HashSet<StoreHash>>>) -> Self {
        Self {
            shared_here: Some(shared_here),
            ..Self::default()
        }
    }

    /// The references of `narinfo` worth fetching ahead, claimed: not the path itself, not one
    /// this machine shares, not one `known` already answers, not one already pending.
    pub fn references_to_fetch(
        &self,
        narinfo: &NarInfo,
        known: impl Fn(StoreHash) -> bool,
    ) -> Vec<StoreHash> {
        let own = narinfo.store_path.hash();
        let shared_here = self.shared_here.as_ref().map(|s| s.borrow().clone());
        let Ok(mut pending) = self.pending.lock() else {
            return Vec::new();
        };
        let mut claimed = Vec::new();
        for reference in &narinfo.references {
            let hash = reference.hash();
            if hash == own
                || shared_here.as_ref().is_some_and(|s| s.contains(&hash))
                || pending.contains(&hash)
                || known(hash)
            {
                continue;
            }
            if pending.len() >= PENDING {
                break;
            }
            pending.insert(hash);
            claimed.push(hash);
        }
        claimed
    }

    /// Takes back a claim made by [`Prefetch::references_to_fetch`], for a path to fetch now.
    pub fn claim(&self, hash: StoreHash) -> Claim<'_> {
        Claim {
            prefetch: self,
            hash,
        }
    }

    /// Waits for a turn among the [`AT_ONCE`] requests.
    pub async fn turn(&self) -> Option<OwnedSemaphorePermit> {
        self.permits.clone().acquire_owned().await.ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use peerix_http::NarHash;

    fn narinfo(path: &str, references: &[&str]) -> NarInfo {
        let mut text = format!(
            "StorePath: /nix/store/{path}\nURL: nar/x.nar\nCompression: none\nNarHash: {}\n\
             NarSize: 8\n",
            NarHash([7; 32])
        );
        if !references.is_empty() {
            text.push_str(&format!("References: {}\n", references.join(" ")));
        }
        NarInfo::parse(&text).unwrap()
    }

    const TOP: &str = "00000000000000000000000000000000-top";
    const LIB: &str = "11111111111111111111111111111111-lib";
    const GLIBC: &str = "22222222222222222222222222222222-glibc";

    fn hash(path: &str) -> StoreHash {
        StoreHash::parse(&path[..32]).unwrap()
    }

    #[test]
    fn references_are_claimed_once_and_released_with_their_claim() {
        let prefetch = Prefetch::default();
        let top = narinfo(TOP, &[TOP, LIB, GLIBC]);
        let known_glibc = |h: StoreHash| h == hash(GLIBC);
        assert_eq!(prefetch.references_to_fetch(&top, known_glibc), [hash(LIB)]);
        // Pending: not claimed twice.
        assert!(prefetch.references_to_fetch(&top, |_| false) == [hash(GLIBC)]);
        drop(prefetch.claim(hash(LIB)));
        assert_eq!(prefetch.references_to_fetch(&top, |_| true), []);
        assert_eq!(prefetch.references_to_fetch(&top, |_| false), [hash(LIB)]);
    }

    #[test]
    fn paths_shared_here_are_not_fetched() {
        let (_tx, shared) = watch::channel(Arc::new(HashSet::from([hash(LIB)])));
        let prefetch = Prefetch::with_shared_here(shared);
        let top = narinfo(TOP, &[LIB, GLIBC]);
        assert_eq!(prefetch.references_to_fetch(&top, |_| false), [hash(GLIBC)]);
    }
}
