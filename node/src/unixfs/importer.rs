//! A streaming balanced-DAG builder that yields the same tree as kubo's `balanced` layout: a
//! complete 174-ary tree filled left to right, where a file of one chunk is that chunk alone.

use std::ops::Range;

use cid::Cid;

use super::pb::{inner_node, leaf_node, leaf_node_frame, Link};
use super::{dag_pb_cid, raw_cid, CidVersion, CHUNK_SIZE, MAX_LINKS};

/// What the importer produces, in order: every leaf, and every inner node once it is complete.
pub enum Block {
    /// A leaf over source bytes `offset..offset + len`; [`leaf_block`] re-produces its block.
    Leaf { cid: Cid, offset: u64, len: usize },
    /// An inner node: the only bytes a no-copy store has to keep.
    Inner { cid: Cid, bytes: Vec<u8> },
}

/// The block bytes of a leaf over `chunk`.
pub fn leaf_block(version: CidVersion, chunk: &[u8]) -> Vec<u8> {
    match version {
        CidVersion::V0 => leaf_node(chunk),
        CidVersion::V1 => chunk.to_vec(),
    }
}

/// The block of a leaf over `len` bytes with its content still to be read into the range
/// returned.
pub fn leaf_block_frame(version: CidVersion, len: usize) -> (Vec<u8>, Range<usize>) {
    match version {
        CidVersion::V0 => leaf_node_frame(len),
        CidVersion::V1 => (vec![0; len], 0..len),
    }
}

pub struct Importer {
    version: CidVersion,
    chunk: Vec<u8>,
    offset: u64,
    /// `levels[0]` collects leaves, `levels[i]` nodes of depth i; the last one becomes the root.
    levels: Vec<Vec<Link>>,
}

impl Importer {
    pub fn new(version: CidVersion) -> Self {
        Self {
            version,
            chunk: Vec::with_capacity(CHUNK_SIZE),
            offset: 0,
            levels: vec![Vec::new()],
        }
    }

    pub fn write(&mut self, mut data: &[u8], mut sink: impl FnMut(Block)) {
        while !data.is_empty() {
            let n = data.len().min(CHUNK_SIZE - self.chunk.len());
            self.chunk.extend_from_slice(&data[..n]);
            data = &data[n..];
            if self.chunk.len() == CHUNK_SIZE {
                self.emit_leaf(&mut sink);
            }
        }
    }

    /// Completes the DAG and returns its root CID.
    pub fn finish(mut self, mut sink: impl FnMut(Block)) -> Cid {
        // An empty file is one empty leaf, as in kubo.
        if !self.chunk.is_empty() || self.offset == 0 {
            self.emit_leaf(&mut sink);
        }
        let mut depth = 0;
        // Seal every level below the top into the next; sealing may add a level above.
        while depth + 1 < self.levels.len() {
            let links = std::mem::take(&mut self.levels[depth]);
            let node = self.seal(&links, &mut sink);
            self.push(depth + 1, node, &mut sink);
            depth += 1;
        }
        let top = std::mem::take(&mut self.levels[depth]);
        match top.as_slice() {
            // A single chunk: the leaf is the file.
            [only] if depth == 0 => only.cid,
            _ => self.seal(&top, &mut sink).cid,
        }
    }

    fn emit_leaf(&mut self, sink: &mut impl FnMut(Block)) {
        let len = self.chunk.len();
        let block = leaf_block(self.version, &self.chunk);
        let cid = match self.version {
            CidVersion::V0 => dag_pb_cid(self.version, &block),
            CidVersion::V1 => raw_cid(&block),
        };
        sink(Block::Leaf {
            cid,
            offset: self.offset,
            len,
        });
        self.offset += len as u64;
        self.chunk.clear();
        let link = Link {
            cid,
            tsize: block.len() as u64,
            file_size: len as u64,
        };
        self.push(0, link, sink);
    }

    /// Adds a link at `depth`; a full level is sealed into a node one level up first.
    fn push(&mut self, depth: usize, link: Link, sink: &mut impl FnMut(Block)) {
        if self.levels.len() == depth {
            self.levels.push(Vec::new());
        }
        if self.levels[depth].len() == MAX_LINKS {
            let full = std::mem::take(&mut self.levels[depth]);
            let node = self.seal(&full, sink);
            self.push(depth + 1, node, sink);
        }
        self.levels[depth].push(link);
    }

    fn seal(&self, links: &[Link], sink: &mut impl FnMut(Block)) -> Link {
        let bytes = inner_node(links);
        let cid = dag_pb_cid(self.version, &bytes);
        let link = Link {
            cid,
            tsize: bytes.len() as u64 + links.iter().map(|l| l.tsize).sum::<u64>(),
            file_size: links.iter().map(|l| l.file_size).sum(),
        };
        sink(Block::Inner { cid, bytes });
        link
    }
}
