//! Reputation as the old tracker counted it: bytes shared and received, transfers that
//! succeeded and failed, per peer. Only transfers both sides reported alike reach it.

use peerix_node::PeerId;
use redb::{ReadableTable, ReadableTableMetadata, TableDefinition};

use super::store::{db_error, StoreError, TrackerStore};

/// Peer id -> bytes shared, bytes received, successful transfers, failed transfers.
pub(super) const REPUTATION: TableDefinition<&[u8], (u64, u64, u64, u64)> =
    TableDefinition::new("reputation");

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reputation {
    pub bytes_shared: u64,
    pub bytes_received: u64,
    pub successful: u64,
    pub failed: u64,
}

impl Reputation {
    /// Grows with the share of transfers that succeeded and, slowly, with the bytes shared.
    pub fn score(&self) -> f64 {
        let (ok, failed) = (self.successful as f64, self.failed as f64);
        ok / (ok + failed + 1.0) * (self.bytes_shared as f64 + 1.0).ln()
    }
}

/// A change to one peer's counters.
type Update<'a> = dyn Fn(&mut Reputation) + 'a;

impl TrackerStore {
    /// Credits a transfer both sides agreed on: `sender` shared `bytes` to `receiver`.
    pub fn record_transfer(
        &self,
        sender: PeerId,
        receiver: PeerId,
        bytes: u64,
    ) -> Result<(), StoreError> {
        self.update_reputations(&[
            (sender, &|r: &mut Reputation| {
                r.bytes_shared = r.bytes_shared.saturating_add(bytes);
                r.successful = r.successful.saturating_add(1);
            }),
            (receiver, &|r: &mut Reputation| {
                r.bytes_received = r.bytes_received.saturating_add(bytes);
            }),
        ])
    }

    /// Counts a transfer `sender` was to make that failed or was disputed.
    pub fn record_failure(&self, sender: PeerId) -> Result<(), StoreError> {
        self.update_reputations(&[(sender, &|r: &mut Reputation| {
            r.failed = r.failed.saturating_add(1);
        })])
    }

    pub fn reputation(&self, peer: PeerId) -> Reputation {
        self.directory()
            .reputations
            .get(&peer)
            .copied()
            .unwrap_or_default()
    }

    fn update_reputations(&self, updates: &[(PeerId, &Update)]) -> Result<(), StoreError> {
        let _writer = self.writer();
        let mut changed = Vec::new();
        let txn = self.db.begin_write().map_err(db_error)?;
        {
            let mut table = txn.open_table(REPUTATION).map_err(db_error)?;
            for (peer, update) in updates {
                let key = peer.to_bytes();
                let current = table
                    .get(key.as_slice())
                    .map_err(db_error)?
                    .map(|e| e.value());
                if current.is_none()
                    && table.len().map_err(db_error)? >= self.limits.max_reputations
                {
                    return Err(StoreError::TooManyReputations(self.limits.max_reputations));
                }
                let mut reputation = current.map(reputation_of).unwrap_or_default();
                update(&mut reputation);
                changed.push((*peer, reputation));
                let Reputation {
                    bytes_shared,
                    bytes_received,
                    successful,
                    failed,
                } = reputation;
                table
                    .insert(
                        key.as_slice(),
                        (bytes_shared, bytes_received, successful, failed),
                    )
                    .map_err(db_error)?;
            }
        }
        txn.commit().map_err(db_error)?;
        let mut directory = self.directory_mut();
        for (peer, reputation) in changed {
            directory.set_reputation(peer, reputation);
        }
        Ok(())
    }
}

pub(super) fn reputation_of(
    (bytes_shared, bytes_received, successful, failed): (u64, u64, u64, u64),
) -> Reputation {
    Reputation {
        bytes_shared,
        bytes_received,
        successful,
        failed,
    }
}
