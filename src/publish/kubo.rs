//! Publication to kubo (`--ipfs-api`): each shared NAR is also added to kubo, streamed from the
//! store (never held whole in memory) and pinned, then announced there; unpinned once its path
//! is no longer shared. kubo keeps its own copy
//! of every block: a NAR is no file, so kubo's filestore cannot point into the store instead.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cid::Cid;
use peerix_http::StoreHash;

use crate::kubo_rpc::{KuboError, KuboRpc};
use crate::nix::nar::{NarPlan, NarReader};

/// What an add may take at least, and the slowest rate it may go at beyond that.
const ADD_BASE_DEADLINE: Duration = Duration::from_secs(60);
const ADD_MIN_RATE: u64 = 4 << 20;

#[derive(Debug, thiserror::Error)]
pub enum KuboPublishError {
    #[error("kubo: {0}")]
    Kubo(#[from] KuboError),
    #[error("kubo answered {0:?}, which is no CID")]
    BadCid(String),
    #[error("the upload stopped: {0}")]
    Stopped(String),
}

pub struct KuboPublisher {
    rpc: KuboRpc,
    /// Whether the log said that kubo's CIDs are not the embedded node's: said once.
    told_other_cids: AtomicBool,
}

impl KuboPublisher {
    pub fn new(rpc: KuboRpc) -> Self {
        Self {
            rpc,
            told_other_cids: AtomicBool::new(false),
        }
    }

    /// Adds the NAR `plan` describes to kubo and asks kubo to announce it; returns kubo's CID.
    pub async fn publish(
        &self,
        hash: StoreHash,
        plan: Arc<NarPlan>,
    ) -> Result<Cid, KuboPublishError> {
        let rpc = self.rpc.clone();
        let deadline = ADD_BASE_DEADLINE + Duration::from_secs(plan.size() / ADD_MIN_RATE);
        let name = format!("{hash}.nar");
        let added = tokio::task::spawn_blocking(move || {
            let (cid, _) = rpc.add_within(&name, NarReader::new(plan), Some(deadline))?;
            // kubo's provider announces what was added by itself too: a refusal here (kubo
            // has no peer yet) is no failure of the publication.
            if let Err(e) = rpc.provide(&cid) {
                tracing::debug!(%cid, error = %e, "kubo did not announce the NAR now");
            }
            Ok::<_, KuboError>(cid)
        })
        .await
        .map_err(|e| KuboPublishError::Stopped(e.to_string()))??;
        Cid::try_from(added.as_str()).map_err(|_| KuboPublishError::BadCid(added))
    }

    /// Unpins the NARs of paths no longer shared, so that kubo may collect their blocks; one
    /// kubo does not hold (pinned) is no failure.
    pub async fn withdraw(&self, cids: Vec<Cid>) {
        let rpc = self.rpc.clone();
        let unpinned = tokio::task::spawn_blocking(move || {
            for cid in cids {
                if let Err(e) = rpc.unpin(&cid.to_string()) {
                    tracing::debug!(%cid, error = %e, "kubo did not unpin the NAR");
                }
            }
        });
        if let Err(e) = unpinned.await {
            tracing::warn!(error = %e, "cannot unpin withdrawn NARs in kubo");
        }
    }

    /// Records that kubo named the NAR of `hash` `kubo` where the embedded node has `embedded`;
    /// the log says so the first time.
    pub fn other_cid(&self, hash: StoreHash, embedded: Cid, kubo: Cid) {
        if !self.told_other_cids.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                %hash, %embedded, %kubo,
                "kubo gives NARs other CIDs than the embedded node (no CIDv1 with raw leaves?): \
                 both are kept, and the tracker is told kubo's"
            );
        }
    }
}
