//! The send budget: block bytes read for peers and not yet written to them. All peers share
//! [`SEND_BUDGET_KIB`] and wait their turn for it in order, which also shares the disk and the
//! uplink fairly among them; one peer holds at most [`PEER_SHARE_KIB`] of it, so a peer that
//! reads slowly (or not at all) over many streams cannot stall everyone else's answers.

use std::sync::{Arc, Mutex};

use hashlink::LruCache;
use libp2p::PeerId;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// All peers together, in KiB.
pub(super) const SEND_BUDGET_KIB: u32 = 64 << 10;
/// One peer's share at most, in KiB: eight peers reading slowly leave nothing for others, and
/// a peer of ids costs nothing, but each must then also keep up with the write deadline.
pub(super) const PEER_SHARE_KIB: u32 = 8 << 10;
/// What one block takes from the budget: a leaf is one 256 KiB chunk.
const BLOCK_KIB: u32 = 256;
/// Peers whose shares are tracked, the least recently used forgotten first (a forgotten
/// peer's permits still count against the whole budget).
const PEERS: usize = 1024;

pub(super) struct SendBudget {
    all: Arc<Semaphore>,
    peers: Mutex<LruCache<PeerId, Arc<Semaphore>>>,
}

/// One block's part of the budget, its peer's share included; returned when dropped (when the
/// message carrying the block has been written, or given up).
pub(super) struct BlockBudget {
    _peer: OwnedSemaphorePermit,
    _all: OwnedSemaphorePermit,
}

impl SendBudget {
    pub(super) fn new() -> Self {
        Self {
            all: Arc::new(Semaphore::new(SEND_BUDGET_KIB as usize)),
            peers: Mutex::new(LruCache::new(PEERS)),
        }
    }

    /// One block's part for `peer`, waited for in turn: first within its share, then in the
    /// whole, so a peer at its share takes nothing from others while it waits.
    pub(super) async fn for_block(&self, peer: PeerId) -> Option<BlockBudget> {
        let share = self
            .peers
            .lock()
            .ok()
            .map(|mut peers| match peers.get(&peer) {
                Some(share) => share.clone(),
                None => {
                    let share = Arc::new(Semaphore::new(PEER_SHARE_KIB as usize));
                    peers.insert(peer, share.clone());
                    share
                }
            })?;
        let peer_part = share.acquire_many_owned(BLOCK_KIB).await.ok()?;
        let all_part = self.all.clone().acquire_many_owned(BLOCK_KIB).await.ok()?;
        Some(BlockBudget {
            _peer: peer_part,
            _all: all_part,
        })
    }

    /// KiB of the whole budget not held by anyone.
    #[cfg(test)]
    pub(super) fn available_kib(&self) -> usize {
        self.all.available_permits()
    }
}
