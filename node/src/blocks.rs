//! Where this node's blocks come from. Inner DAG nodes are kept; leaves are not: they are read back
//! from the file they were imported from and checked against their CID before they leave.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use cid::Cid;

use crate::block::verify;
use crate::unixfs::{leaf_block, Block, CidVersion, Importer, CHUNK_SIZE};

pub trait BlockSource: Send + Sync + 'static {
    /// The block's bytes, if this node has it (and they still hash to `cid`).
    fn block(&self, cid: &Cid) -> io::Result<Option<Vec<u8>>>;
    /// Whether this node holds the block, without reading it (what HAVE answers).
    fn has(&self, cid: &Cid) -> bool;
}

struct Leaf {
    file: Arc<PathBuf>,
    offset: u64,
    len: usize,
    version: CidVersion,
}

#[derive(Default)]
pub struct LocalBlocks {
    inner: RwLock<HashMap<Cid, Vec<u8>>>,
    leaves: RwLock<HashMap<Cid, Leaf>>,
}

impl LocalBlocks {
    /// Imports `path` as a UnixFS file without copying its content; returns the root CID.
    pub fn add_file(&self, path: &Path, version: CidVersion) -> io::Result<Cid> {
        let file = Arc::new(path.to_owned());
        let mut importer = Importer::new(version);
        let mut source = File::open(path)?;
        let mut buf = vec![0u8; CHUNK_SIZE];
        let mut inner = Vec::new();
        let mut leaves = Vec::new();
        let mut record = |block| match block {
            Block::Leaf { cid, offset, len } => leaves.push((cid, offset, len)),
            Block::Inner { cid, bytes } => inner.push((cid, bytes)),
        };
        loop {
            let n = source.read(&mut buf)?;
            if n == 0 {
                break;
            }
            importer.write(&buf[..n], &mut record);
        }
        let root = importer.finish(&mut record);
        if let Ok(mut map) = self.inner.write() {
            map.extend(inner);
        }
        if let Ok(mut map) = self.leaves.write() {
            for (cid, offset, len) in leaves {
                let file = file.clone();
                map.insert(
                    cid,
                    Leaf {
                        file,
                        offset,
                        len,
                        version,
                    },
                );
            }
        }
        Ok(root)
    }

    fn read_leaf(leaf: &Leaf) -> io::Result<Vec<u8>> {
        let mut chunk = vec![0u8; leaf.len];
        File::open(leaf.file.as_path())?.read_exact_at(&mut chunk, leaf.offset)?;
        Ok(leaf_block(leaf.version, &chunk))
    }
}

impl BlockSource for LocalBlocks {
    fn has(&self, cid: &Cid) -> bool {
        let inner = self.inner.read().is_ok_and(|m| m.contains_key(cid));
        inner || self.leaves.read().is_ok_and(|m| m.contains_key(cid))
    }

    fn block(&self, cid: &Cid) -> io::Result<Option<Vec<u8>>> {
        if let Some(bytes) = self.inner.read().ok().and_then(|m| m.get(cid).cloned()) {
            return Ok(Some(bytes));
        }
        let guard = self
            .leaves
            .read()
            .map_err(|_| io::Error::other("leaf map poisoned"))?;
        let Some(leaf) = guard.get(cid) else {
            return Ok(None);
        };
        let block = Self::read_leaf(leaf)?;
        if verify(cid, &block).is_err() {
            tracing::warn!(%cid, file = %leaf.file.display(), "source changed since import: not serving");
            return Ok(None);
        }
        Ok(Some(block))
    }
}
