//! The layout of a directory tree's NAR: framing bytes kept in memory, file contents referenced by
//! path and read on demand.

use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};
use thiserror::Error;

use super::{padding, MAGIC};

#[derive(Debug, Error)]
pub enum PlanError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{0}: not a regular file, directory or symlink")]
    FileType(PathBuf),
    #[error("{0}: file changed size while being read")]
    Changed(PathBuf),
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> PlanError + '_ {
    move |source| PlanError::Io {
        path: path.to_owned(),
        source,
    }
}

enum Segment {
    /// `framing[start..end]`.
    Framing {
        start: usize,
        end: usize,
    },
    File {
        path: PathBuf,
        len: u64,
    },
}

pub struct NarPlan {
    framing: Vec<u8>,
    segments: Vec<Segment>,
    /// NAR offset at which each segment starts.
    offsets: Vec<u64>,
    size: u64,
}

impl NarPlan {
    /// Walks `root` (metadata only) and lays out its NAR.
    pub fn of_path(root: &Path) -> Result<Self, PlanError> {
        let mut builder = Builder::default();
        builder.string(MAGIC.as_bytes());
        builder.node(root)?;
        Ok(builder.finish())
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// About how many bytes of memory the plan holds (for caches that bound their total).
    pub fn memory(&self) -> usize {
        let paths: usize = self
            .segments
            .iter()
            .map(|s| match s {
                Segment::File { path, .. } => path.as_os_str().len(),
                Segment::Framing { .. } => 0,
            })
            .sum();
        self.framing.capacity()
            + self.segments.capacity() * std::mem::size_of::<Segment>()
            + self.offsets.capacity() * std::mem::size_of::<u64>()
            + paths
    }

    /// Produces bytes `start..end` in chunks of `chunk_size` (the last may be shorter), calling
    /// `sink` with each; stops early when `sink` returns false (the receiver went away).
    pub fn read_range(
        &self,
        start: u64,
        end: u64,
        chunk_size: usize,
        sink: impl FnMut(Bytes) -> bool,
    ) -> Result<(), PlanError> {
        let end = end.min(self.size);
        let mut out = Chunker::new(chunk_size, sink);
        let mut pos = start;
        let mut index = self
            .offsets
            .partition_point(|&o| o <= start)
            .saturating_sub(1);
        while pos < end && !out.stopped {
            let skip = pos - self.offsets[index];
            match &self.segments[index] {
                Segment::Framing { start: s, end: e } => {
                    let want = ((e - s) as u64 - skip).min(end - pos) as usize;
                    let from = s + skip as usize;
                    out.extend(&self.framing[from..from + want]);
                    pos += want as u64;
                }
                Segment::File { path, len } => {
                    let want = (len - skip).min(end - pos);
                    let mut file = File::open(path).map_err(io_error(path))?;
                    if skip > 0 {
                        file.seek(SeekFrom::Start(skip)).map_err(io_error(path))?;
                    }
                    let mut left = want;
                    while left > 0 && !out.stopped {
                        let n = out.fill_from(&mut file, left).map_err(io_error(path))?;
                        if n == 0 {
                            return Err(PlanError::Changed(path.clone()));
                        }
                        left -= n as u64;
                    }
                    pos += want;
                }
            }
            index += 1;
        }
        out.finish();
        Ok(())
    }
}

impl NarPlan {
    /// Fills `buf` with the bytes at `offset` (fewer at the NAR's end); returns how many.
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize, PlanError> {
        let end = offset.saturating_add(buf.len() as u64).min(self.size);
        let mut filled = 0;
        if offset < end {
            self.read_range(offset, end, buf.len(), |chunk| {
                buf[filled..filled + chunk.len()].copy_from_slice(&chunk);
                filled += chunk.len();
                true
            })?;
        }
        Ok(filled)
    }
}

/// The NAR of a plan as a [`Read`]er.
pub struct NarReader<P> {
    plan: P,
    pos: u64,
}

impl<P: std::ops::Deref<Target = NarPlan>> NarReader<P> {
    pub fn new(plan: P) -> Self {
        Self { plan, pos: 0 }
    }
}

impl<P: std::ops::Deref<Target = NarPlan>> Read for NarReader<P> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.plan.read_at(self.pos, buf).map_err(io::Error::other)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// Gathers bytes into fixed-size chunks so that small files and framing share one chunk.
struct Chunker<F> {
    chunk: BytesMut,
    chunk_size: usize,
    sink: F,
    stopped: bool,
}

impl<F: FnMut(Bytes) -> bool> Chunker<F> {
    fn new(chunk_size: usize, sink: F) -> Self {
        Self {
            chunk: BytesMut::with_capacity(chunk_size),
            chunk_size,
            sink,
            stopped: false,
        }
    }

    fn room(&self) -> usize {
        self.chunk_size - self.chunk.len()
    }

    fn ship_if_full(&mut self) {
        if self.room() == 0 {
            let full = std::mem::replace(&mut self.chunk, BytesMut::with_capacity(self.chunk_size));
            self.stopped = !(self.sink)(full.freeze());
        }
    }

    fn extend(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() && !self.stopped {
            let n = bytes.len().min(self.room());
            self.chunk.extend_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
            self.ship_if_full();
        }
    }

    /// Reads at most `limit` bytes from `file` into the current chunk.
    fn fill_from(&mut self, file: &mut File, limit: u64) -> io::Result<usize> {
        let old = self.chunk.len();
        let want = self.room().min(limit.try_into().unwrap_or(usize::MAX));
        self.chunk.resize(old + want, 0);
        let result = file.read(&mut self.chunk[old..]);
        let n = *result.as_ref().unwrap_or(&0);
        self.chunk.truncate(old + n);
        self.ship_if_full();
        result
    }

    fn finish(mut self) {
        if !self.chunk.is_empty() && !self.stopped {
            (self.sink)(self.chunk.freeze());
        }
    }
}

#[derive(Default)]
struct Builder {
    framing: Vec<u8>,
    /// Start of framing bytes not yet closed into a segment.
    open_from: usize,
    segments: Vec<Segment>,
    offsets: Vec<u64>,
    size: u64,
}

impl Builder {
    fn raw(&mut self, bytes: &[u8]) {
        self.framing.extend_from_slice(bytes);
    }

    fn string(&mut self, s: &[u8]) {
        self.raw(&(s.len() as u64).to_le_bytes());
        self.raw(s);
        self.raw(&[0; 8][..padding(s.len() as u64)]);
    }

    fn strings(&mut self, list: &[&str]) {
        for s in list {
            self.string(s.as_bytes());
        }
    }

    fn close_framing(&mut self) {
        if self.framing.len() > self.open_from {
            self.offsets.push(self.size);
            self.size += (self.framing.len() - self.open_from) as u64;
            self.segments.push(Segment::Framing {
                start: self.open_from,
                end: self.framing.len(),
            });
            self.open_from = self.framing.len();
        }
    }

    fn file(&mut self, path: &Path, len: u64) {
        self.raw(&len.to_le_bytes());
        if len > 0 {
            self.close_framing();
            self.offsets.push(self.size);
            self.size += len;
            self.segments.push(Segment::File {
                path: path.to_owned(),
                len,
            });
        }
        self.raw(&[0; 8][..padding(len)]);
    }

    fn node(&mut self, path: &Path) -> Result<(), PlanError> {
        let meta = fs::symlink_metadata(path).map_err(io_error(path))?;
        self.strings(&["(", "type"]);
        let kind = meta.file_type();
        if kind.is_file() {
            self.string(b"regular");
            if meta.permissions().mode() & 0o100 != 0 {
                self.strings(&["executable", ""]);
            }
            self.string(b"contents");
            self.file(path, meta.len());
        } else if kind.is_symlink() {
            let target = fs::read_link(path).map_err(io_error(path))?;
            self.strings(&["symlink", "target"]);
            self.string(target.as_os_str().as_bytes());
        } else if kind.is_dir() {
            self.string(b"directory");
            let mut names = fs::read_dir(path)
                .map_err(io_error(path))?
                .map(|entry| entry.map(|e| e.file_name()))
                .collect::<Result<Vec<_>, _>>()
                .map_err(io_error(path))?;
            // Nix sorts entries by their bytes.
            names.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
            for name in names {
                self.strings(&["entry", "(", "name"]);
                self.string(name.as_bytes());
                self.string(b"node");
                self.node(&path.join(&name))?;
                self.string(b")");
            }
        } else {
            return Err(PlanError::FileType(path.to_owned()));
        }
        self.string(b")");
        Ok(())
    }

    fn finish(mut self) -> NarPlan {
        self.close_framing();
        NarPlan {
            framing: self.framing,
            segments: self.segments,
            offsets: self.offsets,
            size: self.size,
        }
    }
}
