//! The tracker's redb tables and their encodings: the layout under
//! [`super::store::TrackerStore`].

use std::net::IpAddr;

use cid::Cid;
use peerix_http::StoreHash;
use peerix_node::{Multiaddr, PeerId};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::directory::{Directory, LivePeer};
use super::reputation::{reputation_of, REPUTATION};
use super::store::{db_error, StoreError};

const HASH_LEN: usize = 32;

/// Peer id -> last heartbeat (unix seconds), port of its front, IP its announce came from
/// (text), addresses (each a u16 length and a binary multiaddr).
pub(super) const PEERS: TableDefinition<&[u8], (u64, u16, &str, &[u8])> =
    TableDefinition::new("peers");
/// Peer id -> every store hash it shares, sorted, concatenated (32 ASCII bytes each). One row
/// per peer: a full announce of 10,000 paths writes one value, not 10,000 keys.
pub(super) const HOLDINGS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("holdings");
/// Store hash (32 ASCII bytes), peer id -> the binary CID that peer publishes the NAR under.
/// Keyed by hash first, so `/cid/{hash}` and `/cids` are ranges.
pub(super) const CIDS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("cids");
/// Timestamp of the write (big-endian), peer id, nonce -> nothing. A replay carries the same
/// signed timestamp, so one lookup finds it; ordering by time makes forgetting old ones a range.
pub(super) const NONCES: TableDefinition<&[u8], ()> = TableDefinition::new("nonces");

pub(super) fn cid_key(hash: &StoreHash, peer: PeerId) -> Vec<u8> {
    let mut key = hash.as_str().as_bytes().to_vec();
    key.extend_from_slice(&peer.to_bytes());
    key
}

pub(super) fn encode_hashes(hashes: &[StoreHash]) -> Vec<u8> {
    let mut out = Vec::with_capacity(hashes.len() * HASH_LEN);
    for hash in hashes {
        out.extend_from_slice(hash.as_str().as_bytes());
    }
    out
}

pub(super) fn decode_hashes(bytes: &[u8]) -> Result<Vec<StoreHash>, StoreError> {
    if bytes.len() % HASH_LEN != 0 {
        return Err(StoreError::Corrupt("holdings"));
    }
    bytes.chunks_exact(HASH_LEN).map(decode_hash).collect()
}

pub(super) fn decode_hash(bytes: &[u8]) -> Result<StoreHash, StoreError> {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|h| StoreHash::parse(h).ok())
        .ok_or(StoreError::Corrupt("store hash"))
}

/// The directory of everything the database holds: peers, holdings, a few CIDs per path and
/// reputations.
pub(super) fn load_directory(db: &Database, directory: &mut Directory) -> Result<(), StoreError> {
    let txn = db.begin_read().map_err(db_error)?;
    let reputations = txn.open_table(REPUTATION).map_err(db_error)?;
    for entry in reputations.iter().map_err(db_error)? {
        let (key, value) = entry.map_err(db_error)?;
        let peer = decode_peer(key.value(), "reputation")?;
        directory.set_reputation(peer, reputation_of(value.value()));
    }
    let peers = txn.open_table(PEERS).map_err(db_error)?;
    for entry in peers.iter().map_err(db_error)? {
        let (key, value) = entry.map_err(db_error)?;
        let peer = decode_peer(key.value(), "peers")?;
        let (last_seen, port, ip, addrs) = value.value();
        let ip: IpAddr = ip.parse().map_err(|_| StoreError::Corrupt("peers"))?;
        directory.upsert_peer(LivePeer::new(
            peer,
            ip,
            port,
            last_seen,
            decode_addrs(addrs)?,
        ));
    }
    let holdings = txn.open_table(HOLDINGS).map_err(db_error)?;
    for entry in holdings.iter().map_err(db_error)? {
        let (key, value) = entry.map_err(db_error)?;
        let peer = decode_peer(key.value(), "holdings")?;
        let hashes = decode_hashes(value.value())?;
        directory.set_counts(peer, hashes.len() as u64, 0);
        for hash in hashes {
            // A new epoch starts with an empty log: the set is whole to every client.
            directory.index.add(peer, hash);
        }
    }
    let cids = txn.open_table(CIDS).map_err(db_error)?;
    let mut mappings: std::collections::HashMap<PeerId, u64> = Default::default();
    for entry in cids.iter().map_err(db_error)? {
        let (key, value) = entry.map_err(db_error)?;
        let (hash, peer) = key
            .value()
            .split_at_checked(HASH_LEN)
            .ok_or(StoreError::Corrupt("cids"))?;
        let (hash, peer) = (decode_hash(hash)?, decode_peer(peer, "cids")?);
        let cid = Cid::try_from(value.value()).map_err(|_| StoreError::Corrupt("cids"))?;
        directory.add_cid(peer, hash, cid);
        *mappings.entry(peer).or_default() += 1;
    }
    for (peer, count) in mappings {
        let packages = directory.live.get(&peer).map_or(0, |p| p.packages);
        directory.set_counts(peer, packages, count);
    }
    Ok(())
}

pub(super) fn decode_peer(bytes: &[u8], table: &'static str) -> Result<PeerId, StoreError> {
    PeerId::from_bytes(bytes).map_err(|_| StoreError::Corrupt(table))
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

/// The merge of two sorted, duplicate-free lists: what `new` has that `old` lacks, and what
/// `old` has that `new` lacks.
pub(super) fn sorted_difference(
    old: &[StoreHash],
    new: &[StoreHash],
) -> (Vec<StoreHash>, Vec<StoreHash>) {
    let (mut added, mut removed) = (Vec::new(), Vec::new());
    let (mut i, mut j) = (0, 0);
    while i < old.len() || j < new.len() {
        match (old.get(i), new.get(j)) {
            (Some(o), Some(n)) if o == n => {
                i += 1;
                j += 1;
            }
            (Some(o), Some(n)) if o < n => {
                removed.push(*o);
                i += 1;
            }
            (Some(o), None) => {
                removed.push(*o);
                i += 1;
            }
            (_, Some(n)) => {
                added.push(*n);
                j += 1;
            }
            (None, None) => break,
        }
    }
    (added, removed)
}
