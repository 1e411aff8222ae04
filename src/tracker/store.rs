//! The tracker's state in redb: who is online, what each peer shares and under which CID, the
//! nonces of recent writes and reputation. Every write is one durable transaction committed before
//! its method returns, so a kill -9 loses nothing that was acknowledged, and a refused write
//! (a bound crossed, an unknown peer) changes nothing.
//!
//! Callers pass only peers whose writes were verified ([`crate::wire::tracker`]): the store
//! trusts the peer id it is given, and lets each peer change its own rows only.
//!
//! Holdings are stored as one row per peer; the [`Directory`], in memory, answers every read
//! but the CID routes (their mappings: `cid_mappings.rs`; reputation: `reputation.rs`). Writers
//! take turns so it changes in the order the transactions committed.

use std::net::IpAddr;
use std::path::Path;
use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use peerix_http::StoreHash;
use peerix_node::{Multiaddr, PeerId};
use redb::{Database, ReadableTable, ReadableTableMetadata};
use thiserror::Error;

use super::directory::Directory;
pub use super::directory::{Holder, LivePeer};
use super::membership::MembershipLog;
pub use super::reputation::Reputation;
use super::reputation::REPUTATION;
use super::tables::{
    cid_key, decode_hashes, encode_addrs, encode_hashes, load_directory, sorted_difference, CIDS,
    HOLDINGS, NONCES, PEERS,
};
use crate::wire::tracker::{MembershipAnswer, NONCE_LEN};

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
    /// Changes of the membership set remembered for deltas.
    pub membership_log: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_peers: 10_000,
            max_packages_per_peer: 100_000,
            max_nonces: 1_000_000,
            max_reputations: 100_000,
            max_skew: 30,
            membership_log: super::membership::DEFAULT_LOG_LEN,
        }
    }
}

/// What a heartbeat says of its peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Announce {
    /// Where the announce came from.
    pub ip: IpAddr,
    pub port: u16,
    pub addrs: Vec<Multiaddr>,
}

pub struct TrackerStore {
    pub(super) db: Database,
    pub(super) limits: Limits,
    directory: RwLock<Directory>,
    writer: Mutex<()>,
}

impl TrackerStore {
    /// Opens (or creates) the database at `path`; `epoch` names this start in membership
    /// answers.
    pub fn open(path: &Path, limits: Limits, epoch: u64) -> Result<Self, StoreError> {
        let db = Database::create(path).map_err(db_error)?;
        let txn = db.begin_write().map_err(db_error)?;
        txn.open_table(PEERS).map_err(db_error)?;
        txn.open_table(HOLDINGS).map_err(db_error)?;
        txn.open_table(CIDS).map_err(db_error)?;
        txn.open_table(NONCES).map_err(db_error)?;
        txn.open_table(REPUTATION).map_err(db_error)?;
        txn.commit().map_err(db_error)?;
        let mut directory = Directory::new(MembershipLog::new(epoch, limits.membership_log));
        load_directory(&db, &mut directory)?;
        Ok(Self {
            db,
            limits,
            directory: RwLock::new(directory),
            writer: Mutex::new(()),
        })
    }

    /// Held while a write transaction runs and its changes reach the directory.
    pub(super) fn writer(&self) -> MutexGuard<'_, ()> {
        // The guarded state is the database's, which a panicked writer left uncommitted.
        self.writer.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn directory(&self) -> RwLockReadGuard<'_, Directory> {
        self.directory.read().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn directory_mut(&self) -> RwLockWriteGuard<'_, Directory> {
        self.directory.write().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn require_live(&self, peer: PeerId) -> Result<LivePeer, StoreError> {
        self.directory()
            .live
            .get(&peer)
            .cloned()
            .ok_or(StoreError::UnknownPeer(peer))
    }

    /// Whether a write from `peer` can be taken at all: from a live peer, or one that announces
    /// itself (`registers`) while there is room for it. Checked before the write's nonce is kept,
    /// so that writes of keys made for the purpose cannot fill the nonce table.
    pub fn admits(&self, peer: PeerId, registers: bool) -> Result<(), StoreError> {
        let directory = self.directory();
        if directory.live.contains_key(&peer) {
            return Ok(());
        }
        if !registers {
            return Err(StoreError::UnknownPeer(peer));
        }
        if directory.live.len() as u64 >= self.limits.max_peers {
            return Err(StoreError::TooManyPeers(self.limits.max_peers));
        }
        Ok(())
    }

    /// Records a heartbeat of `peer`; a new peer beyond the bound is refused.
    pub fn announce(&self, peer: PeerId, announce: Announce, now: u64) -> Result<(), StoreError> {
        let key = peer.to_bytes();
        let addrs = encode_addrs(&announce.addrs)?;
        let ip = announce.ip.to_string();
        let _writer = self.writer();
        self.admits(peer, true)?;
        let txn = self.db.begin_write().map_err(db_error)?;
        {
            let mut peers = txn.open_table(PEERS).map_err(db_error)?;
            peers
                .insert(
                    key.as_slice(),
                    (now, announce.port, ip.as_str(), addrs.as_slice()),
                )
                .map_err(db_error)?;
        }
        txn.commit().map_err(db_error)?;
        self.directory_mut().upsert_peer(LivePeer::new(
            peer,
            announce.ip,
            announce.port,
            now,
            announce.addrs,
        ));
        Ok(())
    }

    /// Makes `hashes` the whole set `peer` shares. Paths it keeps keep their CIDs.
    pub fn replace_packages(&self, peer: PeerId, hashes: &[StoreHash]) -> Result<(), StoreError> {
        let mut wanted = hashes.to_vec();
        wanted.sort_unstable();
        wanted.dedup();
        self.check_package_bound(wanted.len() as u64)?;
        self.rewrite_holdings(peer, |_| Ok(wanted))
    }

    /// Removes `removed`, then adds `added`, to what `peer` shares. Refused whole if the result
    /// would cross the bound.
    pub fn apply_delta(
        &self,
        peer: PeerId,
        added: &[StoreHash],
        removed: &[StoreHash],
    ) -> Result<(), StoreError> {
        self.rewrite_holdings(peer, |held| {
            let mut removed = removed.to_vec();
            removed.sort_unstable();
            let mut next: Vec<StoreHash> = held
                .iter()
                .filter(|h| removed.binary_search(h).is_err())
                .copied()
                .collect();
            next.extend_from_slice(added);
            next.sort_unstable();
            next.dedup();
            self.check_package_bound(next.len() as u64)?;
            Ok(next)
        })
    }

    /// Replaces the holdings row of `peer` by what `next` makes of the current one (both
    /// sorted, without duplicates); the CID mappings of paths it no longer shares go.
    fn rewrite_holdings(
        &self,
        peer: PeerId,
        next: impl FnOnce(&[StoreHash]) -> Result<Vec<StoreHash>, StoreError>,
    ) -> Result<(), StoreError> {
        let _writer = self.writer();
        let live = self.require_live(peer)?;
        let key = peer.to_bytes();
        let txn = self.db.begin_write().map_err(db_error)?;
        let (added, removed, count, cid_mappings) = {
            let mut holdings = txn.open_table(HOLDINGS).map_err(db_error)?;
            let held = match holdings.get(key.as_slice()).map_err(db_error)? {
                Some(row) => decode_hashes(row.value())?,
                None => Vec::new(),
            };
            let next = next(&held)?;
            let (added, removed) = sorted_difference(&held, &next);
            if added.is_empty() && removed.is_empty() {
                return Ok(());
            }
            holdings
                .insert(key.as_slice(), encode_hashes(&next).as_slice())
                .map_err(db_error)?;
            let mut cid_mappings = live.cid_mappings;
            if cid_mappings > 0 {
                let mut cids = txn.open_table(CIDS).map_err(db_error)?;
                for hash in &removed {
                    if cids
                        .remove(cid_key(hash, peer).as_slice())
                        .map_err(db_error)?
                        .is_some()
                    {
                        cid_mappings -= 1;
                    }
                }
            }
            (added, removed, next.len() as u64, cid_mappings)
        };
        txn.commit().map_err(db_error)?;
        let mut directory = self.directory_mut();
        for hash in &removed {
            directory.remove_holding(peer, hash);
        }
        for hash in added {
            directory.add_holding(peer, hash);
        }
        directory.set_counts(peer, count, cid_mappings);
        Ok(())
    }

    /// Who shares `hash`, best first, at most `max`. Touches no database.
    pub fn find(&self, hash: &StoreHash, max: usize) -> Vec<Holder> {
        self.directory().find(hash, max)
    }

    /// [`Self::find`] as the JSON body of a `/find` answer.
    pub fn find_json(&self, hash: &StoreHash, max: usize) -> Vec<u8> {
        self.directory().find_json(hash, max)
    }

    /// Live peers, best score first.
    pub fn peers(&self) -> Vec<LivePeer> {
        self.directory().peers()
    }

    /// `count` live peers (or all there are), from a random place in the directory.
    pub fn sample_peers(&self, count: usize) -> Vec<LivePeer> {
        let mut seed = [0; 8];
        let start = getrandom::getrandom(&mut seed).map_or(0, |()| u64::from_le_bytes(seed));
        self.directory().sample(start, count)
    }

    /// Peers, holdings, distinct store paths held, CID mappings.
    pub fn counts(&self) -> (u64, u64, u64, u64) {
        let directory = self.directory();
        let (packages, cids) = directory.live.values().fold((0, 0), |(p, c), peer| {
            (p + peer.packages, c + peer.cid_mappings)
        });
        (
            directory.live.len() as u64,
            packages,
            directory.index.distinct() as u64,
            cids,
        )
    }

    /// The membership set whole, or what changed since `since` (epoch, version) when the log
    /// still knows.
    pub fn membership(&self, since: Option<(u64, u64)>) -> MembershipAnswer {
        let directory = self.directory();
        let log = &directory.membership;
        let strings = |hashes: Vec<StoreHash>| hashes.iter().map(|h| h.to_string()).collect();
        let (epoch, version) = (log.epoch(), log.version());
        match since.and_then(|(e, v)| log.since(e, v)) {
            Some(delta) => MembershipAnswer {
                epoch,
                version,
                full: false,
                added: strings(delta.added),
                removed: strings(delta.removed),
            },
            None => MembershipAnswer {
                epoch,
                version,
                full: true,
                added: directory.index.hashes().map(|h| h.to_string()).collect(),
                removed: Vec::new(),
            },
        }
    }

    /// Removes the peers silent for `ttl` seconds or more, with everything they shared, and the
    /// nonces too old to matter. Returns the peers removed.
    pub fn expire(&self, now: u64, ttl: u64) -> Result<Vec<PeerId>, StoreError> {
        let _writer = self.writer();
        let silent: Vec<LivePeer> = self
            .directory()
            .live
            .values()
            .filter(|p| now.saturating_sub(p.last_seen) >= ttl)
            .cloned()
            .collect();
        let txn = self.db.begin_write().map_err(db_error)?;
        let mut gone = Vec::new();
        {
            let mut peers = txn.open_table(PEERS).map_err(db_error)?;
            let mut holdings = txn.open_table(HOLDINGS).map_err(db_error)?;
            let mut cids = txn.open_table(CIDS).map_err(db_error)?;
            for live in silent {
                let key = live.peer.to_bytes();
                let held = match holdings.remove(key.as_slice()).map_err(db_error)? {
                    Some(row) => decode_hashes(row.value())?,
                    None => Vec::new(),
                };
                if live.cid_mappings > 0 {
                    for hash in &held {
                        cids.remove(cid_key(hash, live.peer).as_slice())
                            .map_err(db_error)?;
                    }
                }
                peers.remove(key.as_slice()).map_err(db_error)?;
                gone.push((live.peer, held));
            }
            let oldest = now.saturating_sub(self.limits.max_skew).to_be_bytes();
            let mut nonces = txn.open_table(NONCES).map_err(db_error)?;
            nonces
                .retain_in::<&[u8], _>(..oldest.as_slice(), |_, _| false)
                .map_err(db_error)?;
        }
        txn.commit().map_err(db_error)?;
        let mut directory = self.directory_mut();
        for (peer, held) in &gone {
            for hash in held {
                directory.remove_holding(*peer, hash);
            }
            directory.remove_peer(*peer);
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

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
