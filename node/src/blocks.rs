//! Where this node's blocks come from. Inner DAG nodes are kept in [`Storage`]; leaves are not:
//! they are read back from the content they were imported from and checked against their CID
//! before they leave.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use cid::Cid;

use crate::block::verify;
use crate::storage::{Import, LeafLocation, Persist, Storage, Stored};
use crate::unixfs::{leaf_block_frame, Block, CidVersion, Importer, CHUNK_SIZE};

pub trait BlockSource: Send + Sync + 'static {
    /// The block's bytes, if this node has it (and they still hash to `cid`).
    fn block(&self, cid: &Cid) -> io::Result<Option<Vec<u8>>>;
    /// Whether this node holds the block, without reading it (what HAVE answers).
    fn has(&self, cid: &Cid) -> bool;
}

/// Re-produces imported content on demand, so that leaves need not be stored twice.
pub trait ContentSource: Send + Sync + 'static {
    /// Fills `buf` with the bytes at `offset` of the content imported under the name `source`.
    fn read_at(&self, source: &str, offset: u64, buf: &mut [u8]) -> io::Result<()>;
}

/// Content that lives in files: the source name is the file's path.
pub struct Files;

impl ContentSource for Files {
    fn read_at(&self, source: &str, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        File::open(source)?.read_exact_at(buf, offset)
    }
}

pub struct LocalBlocks {
    storage: Arc<Storage>,
    content: Arc<dyn ContentSource>,
}

impl LocalBlocks {
    pub fn new(storage: Arc<Storage>, content: Arc<dyn ContentSource>) -> Self {
        Self { storage, content }
    }

    /// Imports the content read from `reader` as a UnixFS file, recording that its leaves can be
    /// re-read from `source`; returns the root CID. Only inner nodes are stored.
    pub fn import(
        &self,
        source: &str,
        reader: impl Read,
        version: CidVersion,
        persist: Persist,
    ) -> io::Result<Cid> {
        let mut importer = Importer::new(version);
        let mut reader = reader;
        let mut buf = vec![0u8; CHUNK_SIZE];
        let mut import = Import {
            source: source.to_owned(),
            version,
            inner: Vec::new(),
            leaves: Vec::new(),
        };
        let mut record = |block| match block {
            Block::Leaf { cid, offset, len } => import.leaves.push((cid, offset, len)),
            Block::Inner { cid, bytes } => import.inner.push((cid, bytes)),
        };
        loop {
            let n = reader.read(&mut buf)?;
            if n == 0 {
                break;
            }
            importer.write(&buf[..n], &mut record);
        }
        let root = importer.finish(&mut record);
        self.storage.save_import(&import, persist)?;
        Ok(root)
    }

    /// Imports the file at `path` (which must stay in place for its blocks to be served).
    pub fn add_file(&self, path: &Path, version: CidVersion) -> io::Result<Cid> {
        let name = path
            .to_str()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "file name is not UTF-8"))?;
        self.import(name, File::open(path)?, version, Persist::Now)
    }

    fn read_leaf(&self, cid: &Cid, place: &LeafLocation) -> io::Result<Option<Vec<u8>>> {
        let (mut block, content) = leaf_block_frame(place.version, place.len);
        self.content
            .read_at(&place.source, place.offset, &mut block[content])?;
        Ok(verify(cid, &block).is_ok().then_some(block))
    }
}

impl BlockSource for LocalBlocks {
    fn has(&self, cid: &Cid) -> bool {
        self.storage.has(cid).unwrap_or_else(|e| {
            tracing::warn!(%cid, error = %e, "cannot look up block");
            false
        })
    }

    fn block(&self, cid: &Cid) -> io::Result<Option<Vec<u8>>> {
        let places = match self.storage.lookup(cid)? {
            None => return Ok(None),
            Some(Stored::Inner(bytes)) => return Ok(Some(bytes)),
            Some(Stored::Leaf(places)) => places,
        };
        // Any place that still holds the right bytes will do; changed or vanished ones are skipped.
        for place in places {
            match self.read_leaf(cid, &place) {
                Ok(Some(block)) => return Ok(Some(block)),
                Ok(None) => {
                    tracing::warn!(%cid, source = place.source, "source changed since import")
                }
                Err(e) => {
                    tracing::warn!(%cid, source = place.source, error = %e, "cannot read source")
                }
            }
        }
        Ok(None)
    }
}
