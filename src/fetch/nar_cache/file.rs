//! One cached NAR on disk, checked as it is read: the file starts with a header giving the NAR's
//! size and the SHA-256 of each of its 256 KiB chunks, computed from the bytes that passed the
//! NarHash check on their way in. A chunk is sent only once it hashes right, so a file damaged on
//! disk is caught before any wrong byte leaves.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use sha2::{Digest, Sha256};

/// Bytes per checked chunk.
pub const CHUNK: u64 = 256 * 1024;
const MAGIC: &[u8; 8] = b"PXNARC01";
const SUM: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum CachedFileError {
    #[error("not a cached NAR (bad header)")]
    Header,
    #[error("chunk {0} does not match its checksum: the file is damaged")]
    Damaged(u64),
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl From<CachedFileError> for io::Error {
    fn from(e: CachedFileError) -> Self {
        match e {
            CachedFileError::Io(e) => e,
            other => io::Error::new(io::ErrorKind::InvalidData, other),
        }
    }
}

fn chunks(size: u64) -> u64 {
    size.div_ceil(CHUNK)
}

/// Where the NAR's bytes start in a file holding a NAR of `size` bytes.
fn data_offset(size: u64) -> u64 {
    (MAGIC.len() + 8) as u64 + chunks(size) * SUM as u64
}

/// The size of the NAR in `file`, if its header is whole and the file has exactly its bytes.
pub fn read_size(file: &File) -> Result<u64, CachedFileError> {
    let mut head = [0u8; 16];
    file.read_exact_at(&mut head, 0)
        .map_err(|_| CachedFileError::Header)?;
    let (magic, size) = head.split_at(MAGIC.len());
    let size = u64::from_le_bytes(size.try_into().map_err(|_| CachedFileError::Header)?);
    let expected = size
        .checked_add(data_offset(size))
        .ok_or(CachedFileError::Header)?;
    if magic != MAGIC || file.metadata()?.len() != expected {
        return Err(CachedFileError::Header);
    }
    Ok(size)
}

/// Writes a NAR of known size into `file`, chunk checksums computed as its bytes go by.
pub struct Writer {
    file: File,
    size: u64,
    written: u64,
    sums: Vec<u8>,
    chunk: Sha256,
}

impl Writer {
    pub fn new(file: File, size: u64) -> Self {
        Self {
            file,
            size,
            written: 0,
            sums: Vec::new(),
            chunk: Sha256::new(),
        }
    }

    pub fn write(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        if self.written + bytes.len() as u64 > self.size {
            return Err(io::Error::other("more bytes than the NAR has"));
        }
        self.file
            .write_all_at(bytes, data_offset(self.size) + self.written)?;
        while !bytes.is_empty() {
            let room = CHUNK - self.written % CHUNK;
            let take = bytes.len().min(usize::try_from(room).unwrap_or(usize::MAX));
            self.chunk.update(&bytes[..take]);
            self.written += take as u64;
            bytes = &bytes[take..];
            if self.written % CHUNK == 0 {
                self.sums.extend_from_slice(&self.chunk.finalize_reset());
            }
        }
        Ok(())
    }

    /// Writes the header once every byte is in, and makes the file durable.
    pub fn finish(mut self) -> io::Result<File> {
        if self.written != self.size {
            return Err(io::Error::other("incomplete NAR not cached"));
        }
        if self.written % CHUNK != 0 {
            self.sums.extend_from_slice(&self.chunk.finalize_reset());
        }
        let mut head = MAGIC.to_vec();
        head.extend_from_slice(&self.size.to_le_bytes());
        head.extend_from_slice(&self.sums);
        self.file.write_all_at(&head, 0)?;
        self.file.sync_all()?;
        Ok(self.file)
    }
}

/// Reads checked chunks of a cached NAR of `size` bytes.
pub struct Reader {
    file: File,
    size: u64,
}

impl Reader {
    pub fn new(file: File, size: u64) -> Self {
        Self { file, size }
    }

    pub fn file(&self) -> &File {
        &self.file
    }

    /// Calls `send` with the bytes `start..end`, a checked chunk at a time, until it returns
    /// false; a chunk that fails its check ends the reading with [`CachedFileError::Damaged`]
    /// before any of its bytes is sent.
    pub fn read_range(
        &self,
        start: u64,
        end: u64,
        mut send: impl FnMut(Vec<u8>) -> bool,
    ) -> Result<(), CachedFileError> {
        let end = end.min(self.size);
        if start >= end {
            return Ok(());
        }
        let (first, last) = (start / CHUNK, (end - 1) / CHUNK);
        let mut sums = vec![0u8; usize::try_from((last - first + 1) * SUM as u64).unwrap_or(0)];
        self.file
            .read_exact_at(&mut sums, (MAGIC.len() + 8) as u64 + first * SUM as u64)?;
        for (index, sum) in (first..=last).zip(sums.chunks_exact(SUM)) {
            let chunk_start = index * CHUNK;
            let len = CHUNK.min(self.size - chunk_start);
            let mut chunk = vec![0u8; usize::try_from(len).unwrap_or(0)];
            self.file
                .read_exact_at(&mut chunk, data_offset(self.size) + chunk_start)?;
            if Sha256::digest(&chunk).as_slice() != sum {
                return Err(CachedFileError::Damaged(index));
            }
            let from = usize::try_from(start.saturating_sub(chunk_start)).unwrap_or(0);
            let to = usize::try_from(end.min(chunk_start + len) - chunk_start).unwrap_or(0);
            if from > 0 || to < chunk.len() {
                chunk = chunk[from..to].to_vec();
            }
            if !send(chunk) {
                return Ok(());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(content: &[u8], pieces: usize) -> (tempfile::TempDir, File) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nar");
        let file = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .unwrap();
        let mut writer = Writer::new(file, content.len() as u64);
        for piece in content.chunks(pieces) {
            writer.write(piece).unwrap();
        }
        (dir, writer.finish().unwrap())
    }

    fn read(file: File, start: u64, end: u64) -> Result<Vec<u8>, CachedFileError> {
        let size = read_size(&file)?;
        let mut out = Vec::new();
        Reader::new(file, size).read_range(start, end, |c| {
            out.extend_from_slice(&c);
            true
        })?;
        Ok(out)
    }

    #[test]
    fn ranges_read_back_and_a_flipped_byte_is_caught_before_its_chunk_leaves() {
        let content: Vec<u8> = (0..3 * CHUNK + 1000).map(|i| (i % 253) as u8).collect();
        for pieces in [1000, 100_000, content.len()] {
            let (_dir, file) = written(&content, pieces);
            let all = read(file.try_clone().unwrap(), 0, content.len() as u64).unwrap();
            assert!(all == content);
            let (a, b) = (CHUNK - 10, 2 * CHUNK + 5);
            let part = read(file, a, b).unwrap();
            assert!(part == content[a as usize..b as usize]);
        }

        let (_dir, file) = written(&content, 4096);
        let at = data_offset(content.len() as u64) + 2 * CHUNK + 7;
        let mut byte = [0u8];
        file.read_exact_at(&mut byte, at).unwrap();
        file.write_all_at(&[byte[0] ^ 1], at).unwrap();
        let size = read_size(&file).unwrap();
        let mut sent = 0u64;
        let result = Reader::new(file.try_clone().unwrap(), size).read_range(0, size, |c| {
            sent += c.len() as u64;
            true
        });
        assert!(matches!(result, Err(CachedFileError::Damaged(2))));
        assert_eq!(sent, 2 * CHUNK, "only the chunks before the damaged one");
        // Chunks around the damage still read.
        assert!(read(file, 0, CHUNK).is_ok());
    }

    #[test]
    fn bad_files_are_refused() {
        let content = vec![7u8; 1000];
        let (dir, file) = written(&content, 100);
        file.set_len(file.metadata().unwrap().len() - 1).unwrap();
        assert!(matches!(read_size(&file), Err(CachedFileError::Header)));
        let empty = File::create(dir.path().join("empty")).unwrap();
        assert!(matches!(read_size(&empty), Err(CachedFileError::Header)));

        let short = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(dir.path().join("short"))
            .unwrap();
        let mut writer = Writer::new(short, 10);
        writer.write(&[1; 5]).unwrap();
        assert!(writer.write(&[1; 6]).is_err());
        assert!(writer.finish().is_err());
    }
}
