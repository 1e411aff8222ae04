//! What this node shares, kept current: the store database is polled cheaply, re-read when it
//! changed, and every change is told to whoever announces the set (the index protocol).

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use peerix_http::StoreHash;
use tokio::sync::{broadcast, watch};

use super::LocalStore;
use crate::wire::IndexUpdate;

/// Changes kept for a slow announcer; one that falls further behind starts over.
const PENDING_CHANGES: usize = 64;

/// The store paths this node shares, as the index protocol announces them.
pub struct SharedPaths {
    current: watch::Sender<Arc<HashSet<StoreHash>>>,
    changes: broadcast::Sender<Arc<Vec<IndexUpdate>>>,
    /// Whether the store was read once: until then the empty set means "not known yet".
    loaded: AtomicBool,
}

impl Default for SharedPaths {
    fn default() -> Self {
        Self {
            current: watch::Sender::new(Arc::new(HashSet::new())),
            changes: broadcast::channel(PENDING_CHANGES).0,
            loaded: AtomicBool::new(false),
        }
    }
}

impl SharedPaths {
    /// The set, now and whenever it changes; the first change a receiver sees is the first
    /// read of the store (sent even when the store is empty).
    pub fn subscribe(&self) -> watch::Receiver<Arc<HashSet<StoreHash>>> {
        self.current.subscribe()
    }

    /// The set as it is now.
    pub fn snapshot(&self) -> Vec<StoreHash> {
        self.current.borrow().iter().copied().collect()
    }

    /// Every change from now on; a receiver that lags must start over from a snapshot.
    pub fn changes(&self) -> broadcast::Receiver<Arc<Vec<IndexUpdate>>> {
        self.changes.subscribe()
    }

    /// Replaces the set, telling announcers what changed.
    pub fn update(&self, new: HashSet<StoreHash>) {
        let old = self.current.borrow().clone();
        let added: Vec<StoreHash> = new.difference(&old).copied().collect();
        let removed: Vec<StoreHash> = old.difference(&new).copied().collect();
        let first = !self.loaded.swap(true, Ordering::AcqRel);
        if added.is_empty() && removed.is_empty() {
            if first {
                self.current.send_replace(Arc::new(new));
            }
            return;
        }
        tracing::info!(
            paths = new.len(),
            added = added.len(),
            removed = removed.len(),
            "store changed"
        );
        let mut updates = IndexUpdate::batches(true, &added);
        updates.extend(IndexUpdate::batches(false, &removed));
        self.current.send_replace(Arc::new(new));
        let _ = self.changes.send(Arc::new(updates));
    }
}

/// Keeps `shared` equal to the shareable paths of `store`, checking every `poll` whether the
/// store changed (a cheap query) and re-reading it only when it did.
pub async fn watch_store(store: Arc<LocalStore>, shared: Arc<SharedPaths>, poll: Duration) {
    let mut seen = None;
    loop {
        match store.generation() {
            Ok(generation) if Some(generation) != seen => {
                let reading = store.clone();
                match tokio::task::spawn_blocking(move || reading.refresh_shared()).await {
                    Ok(Ok(hashes)) => {
                        shared.update(hashes);
                        seen = Some(generation);
                    }
                    Ok(Err(e)) => tracing::warn!(error = %e, "cannot read the store's paths"),
                    Err(e) => tracing::warn!(error = %e, "store scan failed"),
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot read the store database"),
        }
        tokio::time::sleep(poll).await;
    }
}
