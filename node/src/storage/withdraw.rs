//! Withdrawing published items: their provided keys and the blocks only they account for, so a
//! withdrawn item is neither announced again nor served over Bitswap.

use std::collections::HashMap;

use cid::Cid;
use redb::{MultimapTable, ReadableMultimapTable, ReadableTable, Table};

use super::{
    decode_location, Persist, Result, Storage, StorageError, INNER, LEAVES, PROVIDED, SOURCE_IDS,
};
use crate::unixfs::decode_node;

/// Deeper than any DAG the importer builds (174 links per node: 4 levels hold 240 TB); a stored
/// node pointing deeper is corrupt and left in place.
const MAX_DEPTH: usize = 16;

/// One withdrawal: the root of an item published under the content source `source`.
pub struct Withdrawal {
    pub root: Cid,
    pub source: String,
}

struct Tables<'txn> {
    inner: Table<'txn, &'static [u8], &'static [u8]>,
    leaves: MultimapTable<'txn, &'static [u8], &'static [u8]>,
    /// What each visited block was found to be: still held (by another source) or dropped.
    visited: HashMap<Cid, bool>,
}

impl Storage {
    /// Forgets each item in one durable transaction: its provided key, the leaf locations its
    /// source gave, and the inner nodes under which no leaf is held any more. Content another
    /// item shares (identical NARs, a file added twice) keeps being served for that item.
    pub fn withdraw(&self, items: &[Withdrawal]) -> Result<()> {
        let txn = self.begin_write(Persist::Now)?;
        {
            let ids = txn.open_table(SOURCE_IDS).map_err(StorageError::db)?;
            let mut provided = txn.open_table(PROVIDED).map_err(StorageError::db)?;
            let mut tables = Tables {
                inner: txn.open_table(INNER).map_err(StorageError::db)?,
                leaves: txn.open_multimap_table(LEAVES).map_err(StorageError::db)?,
                visited: HashMap::new(),
            };
            for item in items {
                provided
                    .remove(item.root.hash().to_bytes().as_slice())
                    .map_err(StorageError::db)?;
                let source = ids
                    .get(item.source.as_str())
                    .map_err(StorageError::db)?
                    .map(|id| id.value());
                if let Some(source) = source {
                    tables.visited.clear();
                    tables.drop_block(&item.root, source, 0)?;
                }
            }
        }
        txn.commit().map_err(StorageError::db)
    }
}

impl Tables<'_> {
    /// Drops what `source` contributed under `cid`; true if the block is still held.
    fn drop_block(&mut self, cid: &Cid, source: u64, depth: usize) -> Result<bool> {
        if let Some(held) = self.visited.get(cid) {
            return Ok(*held);
        }
        let key = cid.to_bytes();
        let inner = self
            .inner
            .get(key.as_slice())
            .map_err(StorageError::db)?
            .map(|bytes| bytes.value().to_vec());
        let held = match inner {
            Some(bytes) => self.drop_inner(&key, &bytes, source, depth)?,
            None => self.drop_leaf(&key, source)?,
        };
        self.visited.insert(*cid, held);
        Ok(held)
    }

    fn drop_inner(&mut self, key: &[u8], bytes: &[u8], source: u64, depth: usize) -> Result<bool> {
        let Ok(node) = decode_node(bytes) else {
            return Ok(true);
        };
        if depth >= MAX_DEPTH {
            return Ok(true);
        }
        let mut held = false;
        for link in &node.links {
            held |= self.drop_block(&link.cid, source, depth + 1)?;
        }
        if !held {
            self.inner.remove(key).map_err(StorageError::db)?;
        }
        Ok(held)
    }

    fn drop_leaf(&mut self, key: &[u8], source: u64) -> Result<bool> {
        let mut theirs = Vec::new();
        let mut others = 0usize;
        for value in self.leaves.get(key).map_err(StorageError::db)? {
            let value = value.map_err(StorageError::db)?.value().to_vec();
            match decode_location(&value) {
                Ok((from, ..)) if from == source => theirs.push(value),
                _ => others += 1,
            }
        }
        for value in theirs {
            self.leaves
                .remove(key, value.as_slice())
                .map_err(StorageError::db)?;
        }
        Ok(others > 0)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;
    use std::sync::Arc;

    use super::*;
    use crate::blocks::{BlockSource, ContentSource, LocalBlocks};
    use crate::unixfs::{CidVersion, CHUNK_SIZE};

    /// Content that is the same bytes under every source name.
    struct Same(Vec<u8>);

    impl ContentSource for Same {
        fn read_at(&self, _: &str, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
            let start = usize::try_from(offset).unwrap();
            buf.copy_from_slice(&self.0[start..start + buf.len()]);
            Ok(())
        }
    }

    fn every_block(storage: &Storage, root: &Cid) -> Vec<Cid> {
        let mut out = vec![*root];
        if let Some(super::super::Stored::Inner(bytes)) = storage.lookup(root).unwrap() {
            for link in decode_node(&bytes).unwrap().links {
                out.extend(every_block(storage, &link.cid));
            }
        }
        out
    }

    #[test]
    fn a_withdrawn_item_loses_its_blocks_and_key_but_shared_content_stays() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Arc::new(Storage::open(&dir.path().join("node.redb")).unwrap());
        let content: Vec<u8> = (0..3 * CHUNK_SIZE + 5).map(|i| (i % 251) as u8).collect();
        let blocks = LocalBlocks::new(storage.clone(), Arc::new(Same(content.clone())));
        let import = |source: &str| {
            let root = blocks
                .import(
                    source,
                    Cursor::new(content.clone()),
                    CidVersion::V1,
                    Persist::Now,
                )
                .unwrap();
            storage
                .record_provided(&root.hash().to_bytes(), 1, Persist::Now)
                .unwrap();
            root
        };
        let root = import("nar:a");
        assert_eq!(import("nar:b"), root);
        let all = every_block(&storage, &root);
        assert_eq!(all.len(), 5, "a root over four leaves");
        let withdraw = |source: &str| {
            storage
                .withdraw(&[Withdrawal {
                    root,
                    source: source.to_owned(),
                }])
                .unwrap();
        };

        // Another source still holds the same content: every block is still served.
        withdraw("nar:a");
        assert!(all.iter().all(|cid| blocks.block(cid).unwrap().is_some()));
        assert!(storage.provided_keys().unwrap().is_empty());

        // The last one withdrawn: nothing is left to serve.
        withdraw("nar:b");
        for cid in &all {
            assert!(blocks.block(cid).unwrap().is_none(), "{cid} still served");
            assert!(!blocks.has(cid));
        }
        // Withdrawing again, or something never imported, changes nothing.
        withdraw("nar:b");
        withdraw("nar:never");
    }
}
