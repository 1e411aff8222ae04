//! This node's side of Bitswap: fetching one block from peers in turn, waiting for each as
//! long as it keeps delivering, and its own copy of a block.

use std::sync::Arc;
use std::time::Instant;

use cid::Cid;
use libp2p::PeerId;
use tokio::sync::oneshot;

use super::{Bitswap, Outcome, Purpose, Waiter, MAX_WANT_WAIT, WANT_TIMEOUT};
use crate::bitswap::{Message, WantEntry, WantType};

/// Removes the waiters of `cid` nobody listens to any more when a want ends, however it ends.
struct PruneOnDrop<'a> {
    engine: &'a Bitswap,
    cid: Cid,
}

impl Drop for PruneOnDrop<'_> {
    fn drop(&mut self) {
        if self
            .engine
            .drop_waiters(Some(&self.cid), |w| w.reply.is_closed())
        {
            self.engine.settle(self.cid);
        }
    }
}

impl Bitswap {
    /// Waits for `peer`'s answer to one want. A peer that answers nothing for [`WANT_TIMEOUT`]
    /// times out; one that keeps delivering other blocks is merely busy (behind a bandwidth cap,
    /// say) and is waited for, up to [`MAX_WANT_WAIT`].
    async fn wait_for(
        &self,
        peer: PeerId,
        mut outcome: oneshot::Receiver<Outcome>,
    ) -> Result<Result<Outcome, oneshot::error::RecvError>, tokio::time::error::Elapsed> {
        let give_up = Instant::now() + MAX_WANT_WAIT;
        loop {
            let answer = tokio::time::timeout(WANT_TIMEOUT, &mut outcome).await;
            let busy = self
                .last_delivery
                .lock()
                .ok()
                .and_then(|d| d.peek(&peer).copied())
                .is_some_and(|at| at.elapsed() < WANT_TIMEOUT);
            if answer.is_ok() || !busy || Instant::now() >= give_up {
                return answer;
            }
        }
    }

    /// This node's own copy of a block, if it has one.
    pub async fn local_block(&self, cid: Cid) -> Option<Vec<u8>> {
        let blocks = self.blocks.clone();
        tokio::task::spawn_blocking(move || blocks.block(&cid))
            .await
            .ok()?
            .ok()?
    }

    /// Fetches one block, asking `peers` in turn starting with the `first`-th.
    pub(crate) async fn want_block(
        self: &Arc<Self>,
        cid: Cid,
        peers: &[PeerId],
        first: usize,
        purpose: Purpose,
    ) -> Option<Vec<u8>> {
        for i in 0..peers.len() {
            let peer = peers[(first + i) % peers.len()];
            if self.is_banned(&peer) {
                continue;
            }
            // Declared before the channel, so dropped after its receiver: a want whose asker
            // went away (a walk dropped mid-way) leaves no waiter behind.
            let _pruned = PruneOnDrop { engine: self, cid };
            let (reply, outcome) = oneshot::channel();
            // A file may hold the same block twice: one want per block and peer is enough.
            let mut asked = false;
            if let Ok(mut wants) = self.wants.lock() {
                let waiters = wants.entry(cid).or_default();
                asked = waiters.iter().any(|w| w.peer == peer);
                waiters.push(Waiter {
                    peer,
                    reply,
                    purpose,
                });
            }
            let want = WantEntry {
                cid,
                priority: 1,
                cancel: false,
                want_type: WantType::Block,
                send_dont_have: true,
            };
            if !asked {
                let wantlist = vec![want.clone()];
                self.send(
                    peer,
                    Message {
                        wantlist,
                        ..Message::default()
                    },
                )
                .await;
            }
            match self.wait_for(peer, outcome).await {
                Ok(Ok(Outcome::Block(data))) => return Some(data),
                Ok(Ok(Outcome::DontHave)) | Ok(Err(_)) => continue,
                Err(_) => {
                    let cancel = WantEntry {
                        cancel: true,
                        ..want
                    };
                    self.send(
                        peer,
                        Message {
                            wantlist: vec![cancel],
                            ..Message::default()
                        },
                    )
                    .await;
                    self.settle(cid);
                    self.peer_lacks(peer, &cid);
                }
            }
        }
        None
    }
}
