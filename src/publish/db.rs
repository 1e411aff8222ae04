//! The publication index (`STATE_DIR/index.redb`): for every shared store path, its narinfo as
//! this node serves it and the root CID its NAR is published under, and the CID kubo gave it
//! where that is another (`--ipfs-api`). Each entry is written in its own transaction, so an
//! interrupted scan leaves whole entries only and resumes after them.

use std::collections::HashSet;
use std::path::Path;

use cid::Cid;
use peerix_http::{NarHash, StoreHash};
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};

/// Store hash -> u16 CID length, CID bytes, narinfo text.
const PATHS: TableDefinition<&str, &[u8]> = TableDefinition::new("paths");
/// Store hash -> the CID kubo reports for the path's NAR, kept only where it is not the CID in
/// [`PATHS`] (a kubo that cannot make CIDv1 with raw leaves): what is fetched through kubo.
const KUBO_CIDS: TableDefinition<&str, &[u8]> = TableDefinition::new("kubo_cids");
/// NAR hash -> the day (since the epoch) it was last offered, NAR size, store hash and CID
/// (empty if unknown), for NARs of peers' paths this node has offered Nix: Nix caches narinfos
/// and may ask for the NAR long after, across restarts, but not for months.
const REMOTE_NARS: TableDefinition<&[u8], (u64, u64, &str, &str)> =
    TableDefinition::new("remote_nars_dated");
/// The same without the day, as earlier versions wrote it: moved to [`REMOTE_NARS`] on open.
const UNDATED_REMOTE_NARS: TableDefinition<&[u8], (u64, &str, &str)> =
    TableDefinition::new("remote_nars");
/// Days a NAR record is kept after its narinfo was last offered.
pub const REMOTE_NAR_DAYS: u64 = 30;

#[derive(Debug, thiserror::Error)]
#[error("index database: {0}")]
pub struct IndexError(String);

fn db_error(e: impl std::fmt::Display) -> IndexError {
    IndexError(e.to_string())
}

/// What is known of a peer's NAR that was offered to Nix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteNar {
    pub size: u64,
    pub path: StoreHash,
    pub cid: Option<Cid>,
}

pub struct IndexDb {
    db: Database,
}

impl IndexDb {
    pub fn open(path: &Path) -> Result<Self, IndexError> {
        let db = Database::create(path).map_err(db_error)?;
        let txn = db.begin_write().map_err(db_error)?;
        txn.open_table(PATHS).map_err(db_error)?;
        txn.open_table(KUBO_CIDS).map_err(db_error)?;
        {
            let mut dated = txn.open_table(REMOTE_NARS).map_err(db_error)?;
            let undated = txn.open_table(UNDATED_REMOTE_NARS).map_err(db_error)?;
            let today = today();
            for entry in undated.iter().map_err(db_error)? {
                let (key, value) = entry.map_err(db_error)?;
                let (size, path, cid) = value.value();
                dated
                    .insert(key.value(), (today, size, path, cid))
                    .map_err(db_error)?;
            }
        }
        txn.delete_table(UNDATED_REMOTE_NARS).map_err(db_error)?;
        txn.commit().map_err(db_error)?;
        Ok(Self { db })
    }

    /// Records each path's CID and narinfo, and the other CIDs kubo gave some of them, in one
    /// durable transaction: a bulk scan pays one fsync per batch.
    pub fn put_all(
        &self,
        entries: &[(StoreHash, Cid, String)],
        kubo_cids: &[(StoreHash, Cid)],
    ) -> Result<(), IndexError> {
        let txn = self.db.begin_write().map_err(db_error)?;
        {
            let mut table = txn.open_table(KUBO_CIDS).map_err(db_error)?;
            for (hash, cid) in kubo_cids {
                table
                    .insert(hash.as_str(), cid.to_bytes().as_slice())
                    .map_err(db_error)?;
            }
        }
        {
            let mut table = txn.open_table(PATHS).map_err(db_error)?;
            for (hash, cid, narinfo) in entries {
                let cid = cid.to_bytes();
                let len = u16::try_from(cid.len()).map_err(db_error)?;
                let mut value = len.to_le_bytes().to_vec();
                value.extend_from_slice(&cid);
                value.extend_from_slice(narinfo.as_bytes());
                table
                    .insert(hash.as_str(), value.as_slice())
                    .map_err(db_error)?;
            }
        }
        txn.commit().map_err(db_error)
    }

    pub fn remove(&self, hashes: &[StoreHash]) -> Result<(), IndexError> {
        let txn = self.db.begin_write().map_err(db_error)?;
        {
            let mut table = txn.open_table(PATHS).map_err(db_error)?;
            let mut kubo = txn.open_table(KUBO_CIDS).map_err(db_error)?;
            for hash in hashes {
                table.remove(hash.as_str()).map_err(db_error)?;
                kubo.remove(hash.as_str()).map_err(db_error)?;
            }
        }
        txn.commit().map_err(db_error)
    }

    /// The CID and narinfo recorded for `hash`.
    pub fn get(&self, hash: StoreHash) -> Result<Option<(Cid, String)>, IndexError> {
        let txn = self.db.begin_read().map_err(db_error)?;
        let table = txn.open_table(PATHS).map_err(db_error)?;
        let Some(value) = table.get(hash.as_str()).map_err(db_error)? else {
            return Ok(None);
        };
        decode(value.value()).map(Some)
    }

    /// The CID kubo gave `hash`'s NAR where it is not the one [`IndexDb::get`] tells.
    pub fn kubo_cid(&self, hash: StoreHash) -> Result<Option<Cid>, IndexError> {
        let txn = self.db.begin_read().map_err(db_error)?;
        let table = txn.open_table(KUBO_CIDS).map_err(db_error)?;
        let Some(value) = table.get(hash.as_str()).map_err(db_error)? else {
            return Ok(None);
        };
        Cid::try_from(value.value())
            .map(Some)
            .map_err(|_| corrupt())
    }

    pub fn hashes(&self) -> Result<HashSet<StoreHash>, IndexError> {
        let txn = self.db.begin_read().map_err(db_error)?;
        let table = txn.open_table(PATHS).map_err(db_error)?;
        let mut hashes = HashSet::new();
        for entry in table.iter().map_err(db_error)? {
            let (key, _) = entry.map_err(db_error)?;
            // A key that is no store hash was not written by this program: skip it.
            if let Ok(hash) = StoreHash::parse(key.value()) {
                hashes.insert(hash);
            }
        }
        Ok(hashes)
    }

    /// Every shared path with the CID the tracker is told: kubo's where it gave another (the
    /// tracker's CIDs are fetched through kubo by nodes that have no holder to ask), else the
    /// one its NAR is published under.
    pub fn cids(&self) -> Result<Vec<(StoreHash, Cid)>, IndexError> {
        let txn = self.db.begin_read().map_err(db_error)?;
        let table = txn.open_table(PATHS).map_err(db_error)?;
        let kubo = txn.open_table(KUBO_CIDS).map_err(db_error)?;
        let mut cids = Vec::new();
        for entry in table.iter().map_err(db_error)? {
            let (key, value) = entry.map_err(db_error)?;
            let Ok(hash) = StoreHash::parse(key.value()) else {
                continue;
            };
            let cid = match kubo.get(key.value()).map_err(db_error)? {
                Some(other) => Cid::try_from(other.value()).map_err(|_| corrupt())?,
                None => decode_cid(value.value())?.0,
            };
            cids.push((hash, cid));
        }
        Ok(cids)
    }

    /// Records what narinfo answers said of peers' NARs (`size` bytes, path `hash`) on `day`,
    /// in one transaction; NARs already known as they are that day cost a read, not a write.
    pub fn remember_remote_nars(
        &self,
        nars: &[(NarHash, RemoteNar)],
        day: u64,
    ) -> Result<(), IndexError> {
        let mut changed = Vec::new();
        for (nar_hash, nar) in nars {
            if self.dated_remote_nar(nar_hash)? != Some((day, nar.clone())) {
                changed.push((nar_hash, nar));
            }
        }
        if changed.is_empty() {
            return Ok(());
        }
        let txn = self.db.begin_write().map_err(db_error)?;
        {
            let mut table = txn.open_table(REMOTE_NARS).map_err(db_error)?;
            for (nar_hash, nar) in changed {
                let cid = nar.cid.map(|c| c.to_string()).unwrap_or_default();
                table
                    .insert(
                        nar_hash.0.as_slice(),
                        (day, nar.size, nar.path.as_str(), cid.as_str()),
                    )
                    .map_err(db_error)?;
            }
        }
        txn.commit().map_err(db_error)
    }

    pub fn remote_nar(&self, nar_hash: &NarHash) -> Result<Option<RemoteNar>, IndexError> {
        Ok(self.dated_remote_nar(nar_hash)?.map(|(_, nar)| nar))
    }

    fn dated_remote_nar(&self, nar_hash: &NarHash) -> Result<Option<(u64, RemoteNar)>, IndexError> {
        let txn = self.db.begin_read().map_err(db_error)?;
        let table = txn.open_table(REMOTE_NARS).map_err(db_error)?;
        let Some(entry) = table.get(nar_hash.0.as_slice()).map_err(db_error)? else {
            return Ok(None);
        };
        let (day, size, path, cid) = entry.value();
        let corrupt = || IndexError("corrupt entry".to_owned());
        let nar = RemoteNar {
            size,
            path: StoreHash::parse(path).map_err(|_| corrupt())?,
            cid: (!cid.is_empty())
                .then(|| Cid::try_from(cid).map_err(|_| corrupt()))
                .transpose()?,
        };
        Ok(Some((day, nar)))
    }

    /// Forgets the NAR records last offered before `day`; returns how many went.
    pub fn forget_remote_nars_before(&self, day: u64) -> Result<u64, IndexError> {
        let txn = self.db.begin_write().map_err(db_error)?;
        let gone = {
            let mut table = txn.open_table(REMOTE_NARS).map_err(db_error)?;
            let before = table.len().map_err(db_error)?;
            table
                .retain(|_, (offered, ..)| offered >= day)
                .map_err(db_error)?;
            before - table.len().map_err(db_error)?
        };
        txn.commit().map_err(db_error)?;
        Ok(gone)
    }

    pub fn count(&self) -> Result<u64, IndexError> {
        let txn = self.db.begin_read().map_err(db_error)?;
        txn.open_table(PATHS)
            .map_err(db_error)?
            .len()
            .map_err(db_error)
    }
}

fn decode(value: &[u8]) -> Result<(Cid, String), IndexError> {
    let (cid, text) = decode_cid(value)?;
    let text = String::from_utf8(text.to_vec()).map_err(|_| corrupt())?;
    Ok((cid, text))
}

fn corrupt() -> IndexError {
    IndexError("corrupt entry".to_owned())
}

/// An entry's CID, and the narinfo text after it.
fn decode_cid(value: &[u8]) -> Result<(Cid, &[u8]), IndexError> {
    let (len, rest) = value.split_first_chunk::<2>().ok_or_else(corrupt)?;
    let (cid, text) = rest
        .split_at_checked(usize::from(u16::from_le_bytes(*len)))
        .ok_or_else(corrupt)?;
    let cid = Cid::try_from(cid).map_err(|_| corrupt())?;
    Ok((cid, text))
}

/// Days since the epoch, the granularity of NAR records.
pub fn today() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 86_400)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_of_an_earlier_version_are_kept_with_today_as_their_day() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.redb");
        let hash = "a".repeat(32);
        {
            let db = Database::create(&path).unwrap();
            let txn = db.begin_write().unwrap();
            txn.open_table(UNDATED_REMOTE_NARS)
                .unwrap()
                .insert([7u8; 32].as_slice(), (42, hash.as_str(), ""))
                .unwrap();
            txn.commit().unwrap();
        }
        let db = IndexDb::open(&path).unwrap();
        let expected = RemoteNar {
            size: 42,
            path: StoreHash::parse(&hash).unwrap(),
            cid: None,
        };
        assert_eq!(
            db.dated_remote_nar(&NarHash([7; 32])).unwrap(),
            Some((today(), expected))
        );
        assert_eq!(db.forget_remote_nars_before(today()).unwrap(), 0);
    }

    #[test]
    fn entries_survive_reopening_and_bad_ones_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.redb");
        let hash = StoreHash::parse(&"a".repeat(32)).unwrap();
        let cid =
            Cid::try_from("bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku").unwrap();
        {
            let db = IndexDb::open(&path).unwrap();
            db.put_all(&[(hash, cid, "StorePath: x\n".to_owned())], &[])
                .unwrap();
        }
        let db = IndexDb::open(&path).unwrap();
        assert_eq!(
            db.get(hash).unwrap(),
            Some((cid, "StorePath: x\n".to_owned()))
        );
        assert_eq!(db.cids().unwrap(), vec![(hash, cid)]);
        // Another CID from kubo is what the tracker is told; the entry keeps its own.
        let kubo = Cid::try_from("QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH").unwrap();
        db.put_all(&[(hash, cid, "StorePath: x\n".to_owned())], &[(hash, kubo)])
            .unwrap();
        assert_eq!(db.cids().unwrap(), vec![(hash, kubo)]);
        assert_eq!(db.kubo_cid(hash).unwrap(), Some(kubo));
        assert_eq!(db.get(hash).unwrap().map(|(c, _)| c), Some(cid));
        assert_eq!(db.hashes().unwrap(), HashSet::from([hash]));
        assert_eq!(db.count().unwrap(), 1);
        db.remove(&[hash]).unwrap();
        assert_eq!(db.get(hash).unwrap(), None);
        let nar = NarHash([5; 32]);
        let remote = RemoteNar {
            size: 77,
            path: hash,
            cid: Some(cid),
        };
        db.remember_remote_nars(&[(nar, remote.clone())], 100)
            .unwrap();
        assert_eq!(db.remote_nar(&nar).unwrap(), Some(remote.clone()));
        assert_eq!(db.remote_nar(&NarHash([6; 32])).unwrap(), None);
        // Offered again later, it is kept past a pruning of the older ones.
        db.remember_remote_nars(&[(NarHash([6; 32]), remote.clone())], 100)
            .unwrap();
        db.remember_remote_nars(&[(nar, remote.clone())], 130)
            .unwrap();
        assert_eq!(db.forget_remote_nars_before(101).unwrap(), 1);
        assert_eq!(db.remote_nar(&nar).unwrap(), Some(remote));
        assert_eq!(db.remote_nar(&NarHash([6; 32])).unwrap(), None);
        assert!(decode(&[]).is_err());
        assert!(decode(&[9, 0, 1]).is_err());
        assert!(decode(&[1, 0, 0xff]).is_err());
    }
}
