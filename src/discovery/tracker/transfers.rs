//! Reports of NAR transfers to the tracker, for the peers' reputation: both sides of a
//! transfer report it (the tracker counts it only when they agree), so this node reports what
//! it received from a peer and what it served to one.
//!
//! Reputation is advice (nodes choose holders by what they measured themselves): reports wait
//! in a bounded queue and the ones that do not fit are dropped.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use peerix_http::{NarHash, StoreHash};
use peerix_node::PeerId;
use tokio::sync::mpsc;

use super::client::TrackerClient;
use crate::publish::ServedNar;
use crate::store::LocalStore;
use crate::wire::tracker::{Role, TransferAnswer, WriteAnswer, WritePayload};

/// Reports waiting to be sent, at most.
const QUEUED: usize = 256;
/// NARs being served to a peer (perhaps in ranges over several streams) tracked at once.
const SERVING: usize = 4096;
/// A NAR served in part and not finished within this is not reported.
const SERVING_FOR: Duration = Duration::from_secs(300);

/// One side's account of a transfer of the NAR of `hash`.
#[derive(Clone, Copy, Debug)]
pub struct Transfer {
    pub sender: PeerId,
    pub receiver: PeerId,
    pub hash: StoreHash,
    pub bytes: u64,
}

#[derive(Clone)]
pub struct TransferReports(mpsc::Sender<Transfer>);

impl TransferReports {
    /// Starts the task that sends the reports, signed as `me`.
    pub fn start(client: TrackerClient, me: PeerId) -> Self {
        let (sender, queue) = mpsc::channel(QUEUED);
        tokio::spawn(send_reports(client, me, queue));
        Self(sender)
    }

    /// Queues a report; dropped when the queue is full.
    pub fn record(&self, transfer: Transfer) {
        let _ = self.0.try_send(transfer);
    }
}

async fn send_reports(client: TrackerClient, me: PeerId, mut queue: mpsc::Receiver<Transfer>) {
    while let Some(transfer) = queue.recv().await {
        let role = match transfer.sender == me {
            true => Role::Sender,
            false => Role::Receiver,
        };
        let init = WritePayload::TransferInit {
            sender: transfer.sender,
            receiver: transfer.receiver,
            hash: transfer.hash,
        };
        let reported = async {
            let TransferAnswer { transfer_id } = client.write(init).await?;
            let report = WritePayload::Report {
                transfer_id,
                role,
                bytes: transfer.bytes,
            };
            client.write::<WriteAnswer>(report).await
        };
        if let Err(e) = reported.await {
            tracing::debug!(error = %e, ?transfer, "transfer not reported");
        }
    }
}

/// Adds up what this node serves to each peer, NAR by NAR, and reports each NAR once it was
/// served whole (in one stream or in ranges over several).
pub async fn report_served(
    mut served: mpsc::Receiver<ServedNar>,
    store: Arc<LocalStore>,
    reports: TransferReports,
    me: PeerId,
) {
    let mut serving: HashMap<(PeerId, NarHash), (Instant, u64)> = HashMap::new();
    while let Some(nar) = served.recv().await {
        if serving.len() >= SERVING {
            serving.retain(|_, (since, _)| since.elapsed() < SERVING_FOR);
            if serving.len() >= SERVING {
                continue;
            }
        }
        let key = (nar.peer, nar.nar_hash);
        let entry = serving.entry(key).or_insert((Instant::now(), 0));
        entry.1 = entry.1.saturating_add(nar.bytes);
        if entry.1 < nar.size {
            continue;
        }
        let bytes = entry.1;
        serving.remove(&key);
        let finding = store.clone();
        let hash = tokio::task::spawn_blocking(move || finding.path_of_nar(nar.nar_hash)).await;
        if let Ok(Ok(Some(hash))) = hash {
            reports.record(Transfer {
                sender: me,
                receiver: nar.peer,
                hash,
                bytes,
            });
        }
    }
}
