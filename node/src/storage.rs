//! What a node keeps across restarts, in one redb database: the inner nodes of imported DAGs,
//! where each leaf's bytes can be re-read (the no-copy map), the keys it provides and the peers it
//! has met. Every change is one transaction, so a crash leaves either all of an import or none.

use std::path::Path;

use cid::Cid;
use libp2p::{Multiaddr, PeerId};
use redb::{
    Database, Durability, MultimapTableDefinition, ReadableDatabase, ReadableTable,
    ReadableTableMetadata, TableDefinition, WriteTransaction,
};
use thiserror::Error;

use crate::unixfs::CidVersion;

mod withdraw;
pub use withdraw::Withdrawal;

/// CID bytes -> block bytes, for inner DAG nodes.
const INNER: TableDefinition<&[u8], &[u8]> = TableDefinition::new("inner_blocks");
/// Leaf CID bytes -> every known place holding its bytes (encoded [`LeafLocation`]s).
const LEAVES: MultimapTableDefinition<&[u8], &[u8]> = MultimapTableDefinition::new("leaves");
/// Source name -> its number, and back; locations refer to sources by number.
const SOURCE_IDS: TableDefinition<&str, u64> = TableDefinition::new("source_ids");
const SOURCE_NAMES: TableDefinition<u64, &str> = TableDefinition::new("source_names");
/// Provided key (multihash bytes) -> unix time it was last asked to be announced.
const PROVIDED: TableDefinition<&[u8], u64> = TableDefinition::new("provided");
/// Peer id bytes -> last seen (unix time) and its addresses.
const PEERS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("peers");

/// A location's encoding: source number, offset, length, CID version.
const LOCATION_LEN: usize = 8 + 8 + 4 + 1;

#[derive(Debug, Error)]
pub enum StorageError {
    #[error("database: {0}")]
    Database(String),
    #[error("corrupt entry in {table}: {reason}")]
    Corrupt {
        table: &'static str,
        reason: &'static str,
    },
}

impl StorageError {
    fn db(e: impl std::fmt::Display) -> Self {
        Self::Database(e.to_string())
    }
}

impl From<StorageError> for std::io::Error {
    fn from(e: StorageError) -> Self {
        std::io::Error::other(e)
    }
}

type Result<T, E = StorageError> = std::result::Result<T, E>;

/// Where a leaf's content lies: `len` bytes at `offset` of the named source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeafLocation {
    pub source: String,
    pub offset: u64,
    pub len: usize,
    pub version: CidVersion,
}

/// What the database holds for one CID.
#[derive(Debug, PartialEq, Eq)]
pub enum Stored {
    /// An inner node's bytes.
    Inner(Vec<u8>),
    /// Every recorded place of a leaf's content (several when sources share content).
    Leaf(Vec<LeafLocation>),
}

/// Everything one import adds, written at once.
pub struct Import {
    pub source: String,
    pub version: CidVersion,
    pub inner: Vec<(Cid, Vec<u8>)>,
    /// Leaf CID, offset and length in the source.
    pub leaves: Vec<(Cid, u64, usize)>,
}

/// A peer from the peer book.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KnownPeer {
    pub peer_id: PeerId,
    pub addrs: Vec<Multiaddr>,
    pub last_seen: u64,
}

/// When a write must be on disk: at once, or with the next durable commit (a bulk publisher
/// makes a batch durable in one fsync instead of one per item).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Persist {
    Now,
    Later,
}

pub struct Storage {
    db: Database,
}

impl Storage {
    /// Opens (or creates) the database at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let db = Database::create(path).map_err(StorageError::db)?;
        let txn = db.begin_write().map_err(StorageError::db)?;
        txn.open_table(INNER).map_err(StorageError::db)?;
        txn.open_multimap_table(LEAVES).map_err(StorageError::db)?;
        txn.open_table(SOURCE_IDS).map_err(StorageError::db)?;
        txn.open_table(SOURCE_NAMES).map_err(StorageError::db)?;
        txn.open_table(PROVIDED).map_err(StorageError::db)?;
        txn.open_table(PEERS).map_err(StorageError::db)?;
        txn.commit().map_err(StorageError::db)?;
        Ok(Self { db })
    }

    /// A write transaction that is durable on commit, or (`Persist::Later`) only once a later
    /// durable commit or [`Storage::persist`] follows.
    fn begin_write(&self, persist: Persist) -> Result<WriteTransaction> {
        let mut txn = self.db.begin_write().map_err(StorageError::db)?;
        if persist == Persist::Later {
            txn.set_durability(Durability::None)
                .map_err(StorageError::db)?;
        }
        Ok(txn)
    }

    /// Makes every earlier `Persist::Later` write durable.
    pub fn persist(&self) -> Result<()> {
        self.begin_write(Persist::Now)?
            .commit()
            .map_err(StorageError::db)
    }

    pub fn save_import(&self, import: &Import, persist: Persist) -> Result<()> {
        let txn = self.begin_write(persist)?;
        {
            let source = source_id(&txn, &import.source)?;
            let mut inner = txn.open_table(INNER).map_err(StorageError::db)?;
            for (cid, bytes) in &import.inner {
                inner
                    .insert(cid.to_bytes().as_slice(), bytes.as_slice())
                    .map_err(StorageError::db)?;
            }
            let mut leaves = txn.open_multimap_table(LEAVES).map_err(StorageError::db)?;
            for (cid, offset, len) in &import.leaves {
                let location = encode_location(source, *offset, *len, import.version);
                leaves
                    .insert(cid.to_bytes().as_slice(), location.as_slice())
                    .map_err(StorageError::db)?;
            }
        }
        txn.commit().map_err(StorageError::db)
    }

    /// What is stored for `cid`, in one read transaction.
    pub fn lookup(&self, cid: &Cid) -> Result<Option<Stored>> {
        let txn = self.db.begin_read().map_err(StorageError::db)?;
        let key = cid.to_bytes();
        let inner = txn.open_table(INNER).map_err(StorageError::db)?;
        if let Some(bytes) = inner.get(key.as_slice()).map_err(StorageError::db)? {
            return Ok(Some(Stored::Inner(bytes.value().to_vec())));
        }
        let leaves = txn.open_multimap_table(LEAVES).map_err(StorageError::db)?;
        let names = txn.open_table(SOURCE_NAMES).map_err(StorageError::db)?;
        let mut found = Vec::new();
        for value in leaves.get(key.as_slice()).map_err(StorageError::db)? {
            let value = value.map_err(StorageError::db)?;
            let (source, offset, len, version) = decode_location(value.value())?;
            let name =
                names
                    .get(source)
                    .map_err(StorageError::db)?
                    .ok_or(StorageError::Corrupt {
                        table: "leaves",
                        reason: "location names an unknown source",
                    })?;
            found.push(LeafLocation {
                source: name.value().to_owned(),
                offset,
                len,
                version,
            });
        }
        Ok((!found.is_empty()).then_some(Stored::Leaf(found)))
    }

    pub fn has(&self, cid: &Cid) -> Result<bool> {
        let txn = self.db.begin_read().map_err(StorageError::db)?;
        let key = cid.to_bytes();
        let inner = txn.open_table(INNER).map_err(StorageError::db)?;
        if inner
            .get(key.as_slice())
            .map_err(StorageError::db)?
            .is_some()
        {
            return Ok(true);
        }
        let leaves = txn.open_multimap_table(LEAVES).map_err(StorageError::db)?;
        let mut locations = leaves.get(key.as_slice()).map_err(StorageError::db)?;
        Ok(locations.next().is_some())
    }

    pub fn record_provided(&self, key: &[u8], at: u64, persist: Persist) -> Result<()> {
        let txn = self.begin_write(persist)?;
        txn.open_table(PROVIDED)
            .map_err(StorageError::db)?
            .insert(key, at)
            .map_err(StorageError::db)?;
        txn.commit().map_err(StorageError::db)
    }

    /// Every key this node has provided, to be announced again after a restart.
    pub fn provided_keys(&self) -> Result<Vec<Vec<u8>>> {
        let txn = self.db.begin_read().map_err(StorageError::db)?;
        let table = txn.open_table(PROVIDED).map_err(StorageError::db)?;
        let mut keys = Vec::new();
        for entry in table.iter().map_err(StorageError::db)? {
            let (key, _) = entry.map_err(StorageError::db)?;
            keys.push(key.value().to_vec());
        }
        Ok(keys)
    }

    /// How many keys this node provides.
    pub fn provided_count(&self) -> Result<u64> {
        let txn = self.db.begin_read().map_err(StorageError::db)?;
        let table = txn.open_table(PROVIDED).map_err(StorageError::db)?;
        table.len().map_err(StorageError::db)
    }

    /// Adds or refreshes peers in the peer book, in one transaction.
    pub fn record_peers(&self, peers: &[KnownPeer]) -> Result<()> {
        let txn = self.db.begin_write().map_err(StorageError::db)?;
        {
            let mut table = txn.open_table(PEERS).map_err(StorageError::db)?;
            for peer in peers {
                table
                    .insert(
                        peer.peer_id.to_bytes().as_slice(),
                        encode_peer(peer).as_slice(),
                    )
                    .map_err(StorageError::db)?;
            }
        }
        txn.commit().map_err(StorageError::db)
    }

    /// The peer book, most recently seen first, at most `limit` peers.
    pub fn known_peers(&self, limit: usize) -> Result<Vec<KnownPeer>> {
        let txn = self.db.begin_read().map_err(StorageError::db)?;
        let table = txn.open_table(PEERS).map_err(StorageError::db)?;
        let mut peers = Vec::new();
        for entry in table.iter().map_err(StorageError::db)? {
            let (key, value) = entry.map_err(StorageError::db)?;
            // An unreadable entry costs that peer only, not the book.
            match decode_peer(key.value(), value.value()) {
                Ok(peer) => peers.push(peer),
                Err(e) => tracing::warn!(error = %e, "skipping peer book entry"),
            }
        }
        peers.sort_by_key(|p| std::cmp::Reverse(p.last_seen));
        peers.truncate(limit);
        Ok(peers)
    }
}

/// The number of source `name`, assigning the next free one when it is new.
fn source_id(txn: &redb::WriteTransaction, name: &str) -> Result<u64> {
    let mut ids = txn.open_table(SOURCE_IDS).map_err(StorageError::db)?;
    if let Some(id) = ids.get(name).map_err(StorageError::db)? {
        return Ok(id.value());
    }
    let mut names = txn.open_table(SOURCE_NAMES).map_err(StorageError::db)?;
    let next = names
        .last()
        .map_err(StorageError::db)?
        .map_or(0, |(id, _)| id.value() + 1);
    ids.insert(name, next).map_err(StorageError::db)?;
    names.insert(next, name).map_err(StorageError::db)?;
    Ok(next)
}

fn encode_location(source: u64, offset: u64, len: usize, version: CidVersion) -> Vec<u8> {
    let mut out = Vec::with_capacity(LOCATION_LEN);
    out.extend_from_slice(&source.to_le_bytes());
    out.extend_from_slice(&offset.to_le_bytes());
    // Leaves are at most one chunk (256 KiB), far below u32::MAX.
    out.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_le_bytes());
    out.push(match version {
        CidVersion::V0 => 0,
        CidVersion::V1 => 1,
    });
    out
}

fn decode_location(bytes: &[u8]) -> Result<(u64, u64, usize, CidVersion)> {
    let corrupt = |reason| StorageError::Corrupt {
        table: "leaves",
        reason,
    };
    if bytes.len() != LOCATION_LEN {
        return Err(corrupt("location has the wrong length"));
    }
    let (source, rest) = bytes.split_first_chunk::<8>().ok_or(corrupt("short"))?;
    let (offset, rest) = rest.split_first_chunk::<8>().ok_or(corrupt("short"))?;
    let (len, version) = rest.split_first_chunk::<4>().ok_or(corrupt("short"))?;
    let version = match version {
        [0] => CidVersion::V0,
        [1] => CidVersion::V1,
        _ => return Err(corrupt("unknown CID version")),
    };
    let len = u32::from_le_bytes(*len) as usize;
    Ok((
        u64::from_le_bytes(*source),
        u64::from_le_bytes(*offset),
        len,
        version,
    ))
}

/// Last seen, then each address as a little-endian u16 length and its bytes.
fn encode_peer(peer: &KnownPeer) -> Vec<u8> {
    let mut out = peer.last_seen.to_le_bytes().to_vec();
    for addr in &peer.addrs {
        let bytes = addr.to_vec();
        let Ok(len) = u16::try_from(bytes.len()) else {
            continue;
        };
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&bytes);
    }
    out
}

fn decode_peer(key: &[u8], value: &[u8]) -> Result<KnownPeer> {
    let corrupt = |reason| StorageError::Corrupt {
        table: "peers",
        reason,
    };
    let peer_id = PeerId::from_bytes(key).map_err(|_| corrupt("bad peer id"))?;
    let (seen, mut rest) = value
        .split_first_chunk::<8>()
        .ok_or(corrupt("entry too short"))?;
    let mut addrs = Vec::new();
    while let Some((len, tail)) = rest.split_first_chunk::<2>() {
        let len = usize::from(u16::from_le_bytes(*len));
        let (addr, tail) = tail
            .split_at_checked(len)
            .ok_or(corrupt("address runs past the entry"))?;
        addrs.push(Multiaddr::try_from(addr.to_vec()).map_err(|_| corrupt("bad address"))?);
        rest = tail;
    }
    if !rest.is_empty() {
        return Err(corrupt("trailing bytes"));
    }
    Ok(KnownPeer {
        peer_id,
        addrs,
        last_seen: u64::from_le_bytes(*seen),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::{sha256_multihash, RAW};

    fn cid(n: u8) -> Cid {
        Cid::new_v1(RAW, sha256_multihash(&[n]))
    }

    #[test]
    fn imports_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.redb");
        {
            let storage = Storage::open(&path).unwrap();
            for (source, offset, persist) in [("/a", 0, Persist::Now), ("/b", 7, Persist::Later)] {
                let import = Import {
                    source: source.to_owned(),
                    version: CidVersion::V1,
                    inner: vec![(cid(9), b"node".to_vec())],
                    leaves: vec![(cid(1), offset, 3)],
                };
                storage.save_import(&import, persist).unwrap();
            }
            storage.record_provided(b"key", 5, Persist::Later).unwrap();
            storage.persist().unwrap();
        }
        let storage = Storage::open(&path).unwrap();
        assert_eq!(
            storage.lookup(&cid(9)).unwrap(),
            Some(Stored::Inner(b"node".to_vec()))
        );
        assert!(storage.has(&cid(1)).unwrap());
        assert!(!storage.has(&cid(2)).unwrap());
        assert_eq!(storage.lookup(&cid(2)).unwrap(), None);
        let Some(Stored::Leaf(places)) = storage.lookup(&cid(1)).unwrap() else {
            panic!("a leaf")
        };
        let sources: Vec<_> = places
            .iter()
            .map(|l| (l.source.as_str(), l.offset))
            .collect();
        assert_eq!(sources, [("/a", 0), ("/b", 7)]);
        assert_eq!(storage.provided_keys().unwrap(), [b"key".to_vec()]);
    }

    #[test]
    fn peer_book_keeps_the_latest_first() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(&dir.path().join("node.redb")).unwrap();
        let peer = |seen| KnownPeer {
            peer_id: PeerId::random(),
            addrs: vec!["/ip4/127.0.0.1/tcp/4001".parse().unwrap()],
            last_seen: seen,
        };
        let (old, new) = (peer(1), peer(2));
        storage.record_peers(&[old.clone(), new.clone()]).unwrap();
        assert_eq!(storage.known_peers(10).unwrap(), [new.clone(), old]);
        assert_eq!(storage.known_peers(1).unwrap(), [new]);
    }

    #[test]
    fn bad_entries_are_errors_not_panics() {
        assert!(decode_location(&[0; 3]).is_err());
        assert!(decode_location(&[9; LOCATION_LEN]).is_err());
        let id = PeerId::random().to_bytes();
        assert!(decode_peer(&id, &[0; 7]).is_err());
        assert!(decode_peer(&id, &[0, 0, 0, 0, 0, 0, 0, 0, 9, 0, 1]).is_err());
        assert!(decode_peer(b"junk", &[0; 8]).is_err());
    }
}
