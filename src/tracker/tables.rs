//! The tracker's redb tables and their keys: the layout under [`super::store::TrackerStore`].

use std::collections::BTreeSet;

use peerix_http::StoreHash;
use peerix_node::{Multiaddr, PeerId};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::holder_index::HolderIndex;
use super::store::{db_error, PeerRecord, StoreError};

/// Peer id -> last heartbeat (unix seconds), number of store paths shared, addresses (each a u16
/// length and a binary multiaddr).
pub(super) const PEERS: TableDefinition<&[u8], (u64, u64, &[u8])> = TableDefinition::new("peers");
/// Length of the peer id (one byte), peer id, store hash (32 ASCII bytes) -> the CID the peer
/// publishes that NAR under (empty: none said). A peer's rows are contiguous, so its full
/// announce, delta or expiry touches few pages. The length keeps one id from prefixing another.
pub(super) const HOLDINGS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("holdings");
/// Timestamp of the write (big-endian), peer id, nonce -> nothing. A replay carries the same
/// signed timestamp, so one lookup finds it; ordering by time makes forgetting old ones a range.
pub(super) const NONCES: TableDefinition<&[u8], ()> = TableDefinition::new("nonces");

/// The tables a write changes, open in its transaction.
pub(super) struct Tables<'t> {
    pub(super) peers: redb::Table<'t, &'static [u8], (u64, u64, &'static [u8])>,
    pub(super) holdings: redb::Table<'t, &'static [u8], &'static [u8]>,
}

impl<'t> Tables<'t> {
    pub(super) fn open(txn: &'t redb::WriteTransaction) -> Result<Self, StoreError> {
        Ok(Self {
            peers: txn.open_table(PEERS).map_err(db_error)?,
            holdings: txn.open_table(HOLDINGS).map_err(db_error)?,
        })
    }

    /// The peer's record; packages belong to announced peers only, so expiry finds them all.
    pub(super) fn require_peer(&self, peer: PeerId) -> Result<PeerRecord, StoreError> {
        let entry = self
            .peers
            .get(peer.to_bytes().as_slice())
            .map_err(db_error)?
            .ok_or(StoreError::UnknownPeer(peer))?;
        let (last_seen, packages, addrs) = entry.value();
        Ok(PeerRecord {
            peer,
            addrs: decode_addrs(addrs)?,
            last_seen,
            packages,
        })
    }

    pub(super) fn set_package_count(&mut self, peer: PeerId, count: u64) -> Result<(), StoreError> {
        let key = peer.to_bytes();
        let entry = self
            .peers
            .get(key.as_slice())
            .map_err(db_error)?
            .ok_or(StoreError::UnknownPeer(peer))?;
        let (last_seen, _, addrs) = entry.value();
        let addrs = addrs.to_vec();
        drop(entry);
        self.peers
            .insert(key.as_slice(), (last_seen, count, addrs.as_slice()))
            .map_err(db_error)?;
        Ok(())
    }

    pub(super) fn holdings_of(&self, peer: PeerId) -> Result<BTreeSet<StoreHash>, StoreError> {
        let prefix = holdings_prefix(peer);
        let mut held = BTreeSet::new();
        for entry in self.holdings.range(prefix.as_slice()..).map_err(db_error)? {
            let (key, _) = entry.map_err(db_error)?;
            let Some(hash) = key.value().strip_prefix(prefix.as_slice()) else {
                break;
            };
            let hash = std::str::from_utf8(hash)
                .ok()
                .and_then(|h| StoreHash::parse(h).ok())
                .ok_or(StoreError::Corrupt("holdings"))?;
            held.insert(hash);
        }
        Ok(held)
    }

    /// True when the peer did not share `hash` before (a path it shares keeps its CID).
    pub(super) fn add_holding(
        &mut self,
        peer: PeerId,
        hash: &StoreHash,
    ) -> Result<bool, StoreError> {
        let key = holdings_key(peer, hash);
        if self
            .holdings
            .get(key.as_slice())
            .map_err(db_error)?
            .is_some()
        {
            return Ok(false);
        }
        let no_cid: &[u8] = &[];
        self.holdings
            .insert(key.as_slice(), no_cid)
            .map_err(db_error)?;
        Ok(true)
    }

    /// True when the peer shared `hash`; its CID mapping goes with it.
    pub(super) fn remove_holding(
        &mut self,
        peer: PeerId,
        hash: &StoreHash,
    ) -> Result<bool, StoreError> {
        let key = holdings_key(peer, hash);
        Ok(self
            .holdings
            .remove(key.as_slice())
            .map_err(db_error)?
            .is_some())
    }
}

/// The index of every peer's holdings, from the durable record.
pub(super) fn load_index(db: &Database) -> Result<HolderIndex, StoreError> {
    let corrupt = || StoreError::Corrupt("holdings");
    let txn = db.begin_read().map_err(db_error)?;
    let holdings = txn.open_table(HOLDINGS).map_err(db_error)?;
    let mut index = HolderIndex::default();
    for entry in holdings.iter().map_err(db_error)? {
        let (key, _) = entry.map_err(db_error)?;
        let (&len, rest) = key.value().split_first().ok_or_else(corrupt)?;
        let (peer, hash) = rest
            .split_at_checked(usize::from(len))
            .ok_or_else(corrupt)?;
        let peer = PeerId::from_bytes(peer).map_err(|_| corrupt())?;
        let hash = std::str::from_utf8(hash)
            .ok()
            .and_then(|h| StoreHash::parse(h).ok())
            .ok_or_else(corrupt)?;
        index.add(peer, hash);
    }
    Ok(index)
}

pub(super) fn holdings_prefix(peer: PeerId) -> Vec<u8> {
    let peer = peer.to_bytes();
    // A peer id is a multihash of at most 64 bytes of digest: its length fits a byte.
    let mut key = vec![peer.len() as u8];
    key.extend_from_slice(&peer);
    key
}

pub(super) fn holdings_key(peer: PeerId, hash: &StoreHash) -> Vec<u8> {
    let mut key = holdings_prefix(peer);
    key.extend_from_slice(hash.as_str().as_bytes());
    key
}

pub(super) fn encode_addrs(addrs: &[Multiaddr]) -> Result<Vec<u8>, StoreError> {
    let mut out = Vec::new();
    for addr in addrs {
        let bytes = addr.to_vec();
        let len =
            u16::try_from(bytes.len()).map_err(|_| StoreError::AddressTooLong(bytes.len()))?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&bytes);
    }
    Ok(out)
}

pub(super) fn decode_addrs(mut bytes: &[u8]) -> Result<Vec<Multiaddr>, StoreError> {
    let corrupt = || StoreError::Corrupt("peers");
    let mut addrs = Vec::new();
    while let Some((len, rest)) = bytes.split_first_chunk::<2>() {
        let len = usize::from(u16::from_be_bytes(*len));
        if rest.len() < len {
            return Err(corrupt());
        }
        let (addr, rest) = rest.split_at(len);
        addrs.push(Multiaddr::try_from(addr.to_vec()).map_err(|_| corrupt())?);
        bytes = rest;
    }
    match bytes.is_empty() {
        true => Ok(addrs),
        false => Err(corrupt()),
    }
}
