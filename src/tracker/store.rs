//! The tracker's state in redb: who is online, what each peer shares and under which CID, the
//! nonces of recent writes and reputation. Every write is one durable transaction committed before
//! its method returns, so a kill -9 loses nothing that was acknowledged, and a refused write
//! (a bound crossed, an unknown peer) changes nothing.
//!
//! Callers pass only peers whose writes were verified ([`crate::wire::tracker`]): the store
//! trusts the peer id it is given, and lets each peer change its own rows only.
//!
//! Holdings are stored per peer; [`HolderIndex`], in memory, answers who holds a path. Writers
//! take turns so the index changes in the order the transactions committed.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Mutex, MutexGuard, RwLock};

use cid::Cid;
use peerix_http::StoreHash;
use peerix_node::{Multiaddr, PeerId};
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata};
use thiserror::Error;

use super::holder_index::HolderIndex;
pub use super::reputation::Reputation;
use super::reputation::REPUTATION;
use super::tables::{
    decode_addrs, encode_addrs, holdings_key, load_index, Tables, HOLDINGS, NONCES, PEERS,
};
use crate::wire::tracker::NONCE_LEN;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("tracker database: {0}")]
    Database(#[from] redb::Error),
    #[error("the tracker holds {0} peers already")]
    TooManyPeers(u64),
    #[error("a peer may share {max} store paths, not {len}")]
    TooManyPackages { len: u64, max: u64 },
    #[error("too many writes in the replay window; retry later")]
    TooManyNonces,
    #[error("the tracker keeps the reputation of {0} peers already")]
    TooManyReputations(u64),
    #[error("{0} has not announced itself")]
    UnknownPeer(PeerId),
    #[error("{peer} does not share {hash}")]
    NotHolder { peer: PeerId, hash: StoreHash },
    #[error("address of {0} bytes is too long")]
    AddressTooLong(usize),
    #[error("corrupt entry in table {0}")]
    Corrupt(&'static str),
}

pub(super) fn db_error(e: impl Into<redb::Error>) -> StoreError {
    StoreError::Database(e.into())
}

/// What the store refuses to grow beyond, and how long a nonce matters.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_peers: u64,
    pub max_packages_per_peer: u64,
    /// Nonces remembered at once: writes per skew window, all peers together.
    pub max_nonces: u64,
    pub max_reputations: u64,
    /// The timestamp skew writes are accepted with: older nonces can be forgotten, since their
    /// writes would be refused as stale anyway.
    pub max_skew: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_peers: 10_000,
            max_packages_per_peer: 100_000,
            max_nonces: 1_000_000,
            max_reputations: 100_000,
            max_skew: 30,
        }
    }
}

/// A peer as its last heartbeat described it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerRecord {
    pub peer: PeerId,
    pub addrs: Vec<Multiaddr>,
    pub last_seen: u64,
    pub packages: u64,
}

/// A peer that shares a store path, and the CID it said the NAR is published under.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holder {
    pub peer: PeerId,
    pub addrs: Vec<Multiaddr>,
    pub last_seen: u64,
    pub cid: Option<Cid>,
}

pub struct TrackerStore {
    pub(super) db: Database,
    pub(super) limits: Limits,
    index: RwLock<HolderIndex>,
    writer: Mutex<()>,
}

/// A change to one peer's holdings, applied to the index once committed.
enum Change {
    Added(StoreHash),
    Removed(StoreHash),
}

impl TrackerStore {
    pub fn open(path: &Path, limits: Limits) -> Result<Self, StoreError> {
        let db = Database::create(path).map_err(db_error)?;
        let txn = db.begin_write().map_err(db_error)?;
        txn.open_table(PEERS).map_err(db_error)?;
        txn.open_table(HOLDINGS).map_err(db_error)?;
        txn.open_table(NONCES).map_err(db_error)?;
        txn.open_table(REPUTATION).map_err(db_error)?;
        txn.commit().map_err(db_error)?;
        let index = RwLock::new(load_index(&db)?);
        Ok(Self {
            db,
            limits,
            index,
            writer: Mutex::new(()),
        })
    }

    /// Held while a write transaction runs and its changes reach the index.
    fn writer(&self) -> MutexGuard<'_, ()> {
        // The guarded state is the database's, which a panicked writer left uncommitted.
        self.writer.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn update_index(&self, peer: PeerId, changes: Vec<Change>) {
        let mut index = self.index.write().unwrap_or_else(|e| e.into_inner());
        for change in changes {
            match change {
                Change::Added(hash) => index.add(peer, hash),
                Change::Removed(hash) => index.remove(peer, &hash),
            }
        }
    }

    /// Records a heartbeat of `peer`, reachable at `addrs`; a new peer beyond the bound is
    /// refused.
    pub fn announce(&self, peer: PeerId, addrs: &[Multiaddr], now: u64) -> Result<(), StoreError> {
        let key = peer.to_bytes();
        let addrs = encode_addrs(addrs)?;
        let txn = self.db.begin_write().map_err(db_error)?;
        {
            let mut peers = txn.open_table(PEERS).map_err(db_error)?;
            let packages = match peers.get(key.as_slice()).map_err(db_error)? {
                Some(entry) => entry.value().1,
                None if peers.len().map_err(db_error)? >= self.limits.max_peers => {
                    return Err(StoreError::TooManyPeers(self.limits.max_peers));
                }
                None => 0,
            };
            peers
                .insert(key.as_slice(), (now, packages, addrs.as_slice()))
                .map_err(db_error)?;
        }
        txn.commit().map_err(db_error)
    }

    /// Makes `hashes` the whole set `peer` shares. Paths it keeps keep their CIDs and cost no
    /// write, so a repeated full announce is cheap.
    pub fn replace_packages(&self, peer: PeerId, hashes: &[StoreHash]) -> Result<(), StoreError> {
        let wanted: BTreeSet<StoreHash> = hashes.iter().copied().collect();
        self.check_package_bound(wanted.len() as u64)?;
        let _writer = self.writer();
        let txn = self.db.begin_write().map_err(db_error)?;
        let mut changes = Vec::new();
        {
            let mut tables = Tables::open(&txn)?;
            tables.require_peer(peer)?;
            let held = tables.holdings_of(peer)?;
            for hash in held.difference(&wanted) {
                tables.remove_holding(peer, hash)?;
                changes.push(Change::Removed(*hash));
            }
            for hash in wanted.difference(&held) {
                tables.add_holding(peer, hash)?;
                changes.push(Change::Added(*hash));
            }
            tables.set_package_count(peer, wanted.len() as u64)?;
        }
        txn.commit().map_err(db_error)?;
        self.update_index(peer, changes);
        Ok(())
    }

    /// Removes `removed`, then adds `added`, to what `peer` shares. Refused whole if the result
    /// would cross the bound.
    pub fn apply_delta(
        &self,
        peer: PeerId,
        added: &[StoreHash],
        removed: &[StoreHash],
    ) -> Result<(), StoreError> {
        let _writer = self.writer();
        let txn = self.db.begin_write().map_err(db_error)?;
        let mut changes = Vec::new();
        {
            let mut tables = Tables::open(&txn)?;
            let mut count = tables.require_peer(peer)?.packages;
            for hash in removed {
                if tables.remove_holding(peer, hash)? {
                    count = count.saturating_sub(1);
                    changes.push(Change::Removed(*hash));
                }
            }
            for hash in added {
                if tables.add_holding(peer, hash)? {
                    count += 1;
                    changes.push(Change::Added(*hash));
                }
            }
            // Dropping the transaction uncommitted leaves everything as it was.
            self.check_package_bound(count)?;
            tables.set_package_count(peer, count)?;
        }
        txn.commit().map_err(db_error)?;
        self.update_index(peer, changes);
        Ok(())
    }

    /// Records the CID `peer` publishes the NAR of `hash` under: only a path it shares, and only
    /// its own mapping.
    pub fn set_cid(&self, peer: PeerId, hash: StoreHash, cid: Cid) -> Result<(), StoreError> {
        let key = holdings_key(peer, &hash);
        let txn = self.db.begin_write().map_err(db_error)?;
        {
            let mut holdings = txn.open_table(HOLDINGS).map_err(db_error)?;
            if holdings.get(key.as_slice()).map_err(db_error)?.is_none() {
                return Err(StoreError::NotHolder { peer, hash });
            }
            holdings
                .insert(key.as_slice(), cid.to_bytes().as_slice())
                .map_err(db_error)?;
        }
        txn.commit().map_err(db_error)
    }

    /// Who shares `hash`, with their last heartbeat and CID.
    pub fn find(&self, hash: &StoreHash) -> Result<Vec<Holder>, StoreError> {
        let holders = self
            .index
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .holders(hash);
        let txn = self.db.begin_read().map_err(db_error)?;
        let peers = txn.open_table(PEERS).map_err(db_error)?;
        let holdings = txn.open_table(HOLDINGS).map_err(db_error)?;
        let mut found = Vec::with_capacity(holders.len());
        for peer in holders {
            // A holder expired since the index was read is left out.
            let Some(record) = peers.get(peer.to_bytes().as_slice()).map_err(db_error)? else {
                continue;
            };
            let Some(cid) = holdings
                .get(holdings_key(peer, hash).as_slice())
                .map_err(db_error)?
            else {
                continue;
            };
            let cid = cid.value();
            let cid = (!cid.is_empty())
                .then(|| Cid::try_from(cid).map_err(|_| StoreError::Corrupt("holdings")))
                .transpose()?;
            let (last_seen, _, addrs) = record.value();
            found.push(Holder {
                peer,
                addrs: decode_addrs(addrs)?,
                last_seen,
                cid,
            });
        }
        Ok(found)
    }

    pub fn peers(&self) -> Result<Vec<PeerRecord>, StoreError> {
        let txn = self.db.begin_read().map_err(db_error)?;
        let peers = txn.open_table(PEERS).map_err(db_error)?;
        let mut all = Vec::new();
        for entry in peers.iter().map_err(db_error)? {
            let (key, value) = entry.map_err(db_error)?;
            let (last_seen, packages, addrs) = value.value();
            all.push(PeerRecord {
                peer: PeerId::from_bytes(key.value()).map_err(|_| StoreError::Corrupt("peers"))?,
                addrs: decode_addrs(addrs)?,
                last_seen,
                packages,
            });
        }
        Ok(all)
    }

    /// Removes the peers silent for `ttl` seconds or more, with everything they shared, and the
    /// nonces too old to matter. Returns the peers removed.
    pub fn expire(&self, now: u64, ttl: u64) -> Result<Vec<PeerId>, StoreError> {
        let silent: Vec<PeerId> = self
            .peers()?
            .into_iter()
            .filter(|p| now.saturating_sub(p.last_seen) >= ttl)
            .map(|p| p.peer)
            .collect();
        let _writer = self.writer();
        let txn = self.db.begin_write().map_err(db_error)?;
        let mut gone = Vec::new();
        {
            let mut tables = Tables::open(&txn)?;
            for &peer in &silent {
                // A heartbeat may have come between the read above and this transaction.
                match tables
                    .peers
                    .get(peer.to_bytes().as_slice())
                    .map_err(db_error)?
                {
                    Some(entry) if now.saturating_sub(entry.value().0) >= ttl => {}
                    _ => continue,
                }
                let held = tables.holdings_of(peer)?;
                for hash in &held {
                    tables.remove_holding(peer, hash)?;
                }
                tables
                    .peers
                    .remove(peer.to_bytes().as_slice())
                    .map_err(db_error)?;
                gone.push((peer, held));
            }
            let oldest = now.saturating_sub(self.limits.max_skew).to_be_bytes();
            let mut nonces = txn.open_table(NONCES).map_err(db_error)?;
            nonces
                .retain_in::<&[u8], _>(..oldest.as_slice(), |_, _| false)
                .map_err(db_error)?;
        }
        txn.commit().map_err(db_error)?;
        let mut index = self.index.write().unwrap_or_else(|e| e.into_inner());
        for (peer, held) in &gone {
            for hash in held {
                index.remove(*peer, hash);
            }
            index.forget(*peer);
        }
        Ok(gone.into_iter().map(|(peer, _)| peer).collect())
    }

    /// Records that `peer` wrote with `nonce` at `timestamp` (the write's own, signed). False
    /// when it did so before: a replay.
    pub fn remember_nonce(
        &self,
        peer: PeerId,
        nonce: &[u8; NONCE_LEN],
        timestamp: u64,
    ) -> Result<bool, StoreError> {
        let mut key = timestamp.to_be_bytes().to_vec();
        key.extend_from_slice(&peer.to_bytes());
        key.extend_from_slice(nonce);
        let txn = self.db.begin_write().map_err(db_error)?;
        {
            let mut nonces = txn.open_table(NONCES).map_err(db_error)?;
            if nonces.get(key.as_slice()).map_err(db_error)?.is_some() {
                return Ok(false);
            }
            if nonces.len().map_err(db_error)? >= self.limits.max_nonces {
                return Err(StoreError::TooManyNonces);
            }
            nonces.insert(key.as_slice(), ()).map_err(db_error)?;
        }
        txn.commit().map_err(db_error)?;
        Ok(true)
    }

    fn check_package_bound(&self, len: u64) -> Result<(), StoreError> {
        let max = self.limits.max_packages_per_peer;
        match len > max {
            true => Err(StoreError::TooManyPackages { len, max }),
            false => Ok(()),
        }
    }
}

/// The tables a change of holdings touches, open in one write transaction.
#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
