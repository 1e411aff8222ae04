//! The CIDs peers say they publish their NARs under: each peer writes its own mappings, for
//! paths it shares only; the routes `/cid`, `/cids` and `/cids/batch` read them from redb.

use cid::Cid;
use peerix_http::StoreHash;
use peerix_node::PeerId;
use redb::ReadableDatabase;

use super::store::{db_error, StoreError, TrackerStore};
use super::tables::{cid_key, decode_hash, CIDS};

impl TrackerStore {
    /// Records the CID `peer` publishes the NAR of `hash` under: only a path it shares, and only
    /// its own mapping.
    pub fn set_cid(&self, peer: PeerId, hash: StoreHash, cid: Cid) -> Result<(), StoreError> {
        self.set_cids(peer, &[(hash, cid)])
    }

    /// Records several CIDs of `peer` in one transaction; if any names a path it does not
    /// share, none is recorded.
    pub fn set_cids(&self, peer: PeerId, mappings: &[(StoreHash, Cid)]) -> Result<(), StoreError> {
        let _writer = self.writer();
        let live = self.require_live(peer)?;
        {
            let directory = self.directory();
            if let Some((hash, _)) = mappings
                .iter()
                .find(|(h, _)| !directory.index.holds(peer, h))
            {
                return Err(StoreError::NotHolder { peer, hash: *hash });
            }
        }
        let txn = self.db.begin_write().map_err(db_error)?;
        let mut new = 0;
        {
            let mut cids = txn.open_table(CIDS).map_err(db_error)?;
            for (hash, cid) in mappings {
                let previous = cids
                    .insert(cid_key(hash, peer).as_slice(), cid.to_bytes().as_slice())
                    .map_err(db_error)?;
                new += u64::from(previous.is_none());
            }
        }
        txn.commit().map_err(db_error)?;
        let mut directory = self.directory_mut();
        for (hash, cid) in mappings {
            directory.add_cid(peer, *hash, *cid);
        }
        directory.set_counts(peer, live.packages, live.cid_mappings + new);
        Ok(())
    }

    /// The first CID mapping of `hash`, any peer's.
    pub fn cid(&self, hash: &StoreHash) -> Result<Option<Cid>, StoreError> {
        Ok(self
            .cids_from(hash.as_str().as_bytes(), 1, true)?
            .pop()
            .map(|(_, c)| c))
    }

    /// One CID per store hash, in hash order, from the first hash after `after`.
    pub fn cids_after(
        &self,
        after: Option<&StoreHash>,
        limit: usize,
    ) -> Result<Vec<(StoreHash, Cid)>, StoreError> {
        // The byte after a hash's last character sorts after every key of that hash.
        let start = after.map_or(Vec::new(), |h| {
            let mut key = h.as_str().as_bytes().to_vec();
            key.push(0xff);
            key
        });
        self.cids_from(&start, limit, false)
    }

    fn cids_from(
        &self,
        start: &[u8],
        limit: usize,
        only_start: bool,
    ) -> Result<Vec<(StoreHash, Cid)>, StoreError> {
        let txn = self.db.begin_read().map_err(db_error)?;
        let cids = txn.open_table(CIDS).map_err(db_error)?;
        let mut out: Vec<(StoreHash, Cid)> = Vec::new();
        for entry in cids.range(start..).map_err(db_error)? {
            let (key, value) = entry.map_err(db_error)?;
            let key = key.value();
            if only_start && !key.starts_with(start) {
                break;
            }
            let hash = decode_hash(key.get(..32).ok_or(StoreError::Corrupt("cids"))?)?;
            if out.last().is_some_and(|(h, _)| *h == hash) {
                continue;
            }
            if out.len() == limit {
                break;
            }
            let cid = Cid::try_from(value.value()).map_err(|_| StoreError::Corrupt("cids"))?;
            out.push((hash, cid));
        }
        Ok(out)
    }
}
