//! Files pulled through this node, each written once under STATE_DIR/pull-through and read by
//! every request for it while it grows. A file is checked against its FileHash and FileSize
//! as it is written; a reader gets its last byte only once the whole passed, so a wrong file
//! never reaches anyone complete. Finished files stay, up to a byte budget (oldest out first:
//! an open reader keeps reading an evicted one), so the near nodes that ask later get them
//! without another trip upstream.

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use peerix_http::{channel_stream, ByteStream, NarHash};
use sha2::{Digest, Sha256};
use thiserror::Error;
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, watch};

/// Bytes read from the file per chunk handed to a reader.
const CHUNK: usize = 256 << 10;
/// Chunks buffered for one reader.
const CHUNKS_IN_FLIGHT: usize = 4;
/// Files written at once at most.
const IN_FLIGHT: usize = 16;
/// A file that grows by nothing for this long has failed, for every reader.
pub const STALL: Duration = Duration::from_secs(30);

/// The file pulled: its hash and size, as a narinfo that passed the trust check gives them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Expected {
    pub file_hash: NarHash,
    pub size: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Progress {
    Writing(u64),
    Done,
    Failed,
}

#[derive(Debug, Error)]
pub enum DownloadError {
    #[error("{IN_FLIGHT} files are being pulled already, or the budget is spent")]
    Full,
    #[error("cannot write in {dir}: {source}")]
    Disk { dir: PathBuf, source: io::Error },
}

/// One file, being written or written.
pub struct Download {
    expected: Expected,
    /// Opened before anything is written: readers keep it, whatever happens to the name.
    file: Arc<File>,
    progress: watch::Receiver<Progress>,
}

/// Writes one [`Download`]; dropped before [`Writer::finish`], the download has failed.
pub struct Writer {
    file: tokio::fs::File,
    hasher: Sha256,
    written: u64,
    expected: Expected,
    progress: watch::Sender<Progress>,
    downloads: Arc<Downloads>,
}

struct State {
    entries: HashMap<NarHash, Arc<Download>>,
    /// Finished files, oldest first, with their sizes.
    finished: VecDeque<(NarHash, u64)>,
    /// Bytes of finished files and of those being written.
    bytes: u64,
    writing: usize,
}

pub struct Downloads {
    dir: PathBuf,
    budget: u64,
    state: Mutex<State>,
}

impl Downloads {
    /// Files kept in `dir` (emptied: what an earlier run left is not known to be whole),
    /// `budget` bytes of them at most.
    pub fn open(dir: &Path, budget: u64) -> Result<Arc<Self>, DownloadError> {
        let disk = |source| DownloadError::Disk {
            dir: dir.to_owned(),
            source,
        };
        match std::fs::remove_dir_all(dir) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(disk(e)),
            _ => {}
        }
        std::fs::create_dir_all(dir).map_err(disk)?;
        Ok(Arc::new(Self {
            dir: dir.to_owned(),
            budget,
            state: Mutex::new(State {
                entries: HashMap::new(),
                finished: VecDeque::new(),
                bytes: 0,
                writing: 0,
            }),
        }))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent whatever a holder was doing.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn path(&self, file_hash: &NarHash) -> PathBuf {
        self.dir.join(file_hash.to_base32())
    }

    /// Files kept or being written, and their bytes.
    pub fn kept(&self) -> (usize, u64) {
        let state = self.lock();
        (state.entries.len(), state.bytes)
    }

    /// The download of `expected`: the one under way or kept, or a new one, whose writer goes
    /// to whoever fetches it.
    pub fn join_or_start(
        self: &Arc<Self>,
        expected: Expected,
    ) -> Result<(Arc<Download>, Option<Writer>), DownloadError> {
        let mut state = self.lock();
        let live = state
            .entries
            .get(&expected.file_hash)
            .filter(|d| d.expected == expected && !d.failed());
        if let Some(download) = live {
            return Ok((download.clone(), None));
        }
        if state.writing >= IN_FLIGHT {
            return Err(DownloadError::Full);
        }
        self.evict(&mut state, expected.size)?;
        let path = self.path(&expected.file_hash);
        let disk = |source| DownloadError::Disk {
            dir: self.dir.clone(),
            source,
        };
        let writing = File::create(&path).map_err(disk)?;
        let reading = File::open(&path).map_err(disk)?;
        let (progress, watching) = watch::channel(Progress::Writing(0));
        let download = Arc::new(Download {
            expected,
            file: Arc::new(reading),
            progress: watching,
        });
        state.entries.insert(expected.file_hash, download.clone());
        state.bytes += expected.size;
        state.writing += 1;
        let writer = Writer {
            file: tokio::fs::File::from_std(writing),
            hasher: Sha256::new(),
            written: 0,
            expected,
            progress,
            downloads: self.clone(),
        };
        Ok((download, Some(writer)))
    }

    /// Makes room for `size` more bytes by removing the oldest finished files.
    fn evict(&self, state: &mut State, size: u64) -> Result<(), DownloadError> {
        while state.bytes + size > self.budget {
            let Some((hash, bytes)) = state.finished.pop_front() else {
                return Err(DownloadError::Full);
            };
            state.entries.remove(&hash);
            state.bytes -= bytes;
            let _ = std::fs::remove_file(self.path(&hash));
        }
        Ok(())
    }

    fn ended(&self, expected: Expected, whole: bool) {
        let mut state = self.lock();
        state.writing -= 1;
        if whole {
            state
                .finished
                .push_back((expected.file_hash, expected.size));
            return;
        }
        state.bytes -= expected.size;
        let ours = state
            .entries
            .get(&expected.file_hash)
            .is_some_and(|d| d.expected == expected);
        if ours {
            state.entries.remove(&expected.file_hash);
            let _ = std::fs::remove_file(self.path(&expected.file_hash));
        }
    }
}

impl Writer {
    /// Appends `chunk`; more bytes than expected is an error.
    pub async fn write(&mut self, chunk: &[u8]) -> io::Result<()> {
        let written = self.written + chunk.len() as u64;
        if written > self.expected.size {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("more than the {} bytes expected", self.expected.size),
            ));
        }
        self.file.write_all(chunk).await?;
        // tokio's file hands writes to a thread: flushed, they are in the file readers read.
        self.file.flush().await?;
        self.hasher.update(chunk);
        self.written = written;
        self.progress.send_replace(Progress::Writing(written));
        Ok(())
    }

    pub fn written(&self) -> u64 {
        self.written
    }

    pub fn expected_size(&self) -> u64 {
        self.expected.size
    }

    /// Ends the file: whole if its size and hash are the expected ones.
    pub async fn finish(mut self) -> io::Result<()> {
        self.file.flush().await?;
        let hash: [u8; 32] = std::mem::take(&mut self.hasher).finalize().into();
        if self.written != self.expected.size || NarHash(hash) != self.expected.file_hash {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "got {} bytes hashing to {}, expected {} bytes hashing to {}",
                    self.written,
                    NarHash(hash),
                    self.expected.size,
                    self.expected.file_hash
                ),
            ));
        }
        self.progress.send_replace(Progress::Done);
        Ok(())
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        let whole = *self.progress.borrow() == Progress::Done;
        if !whole {
            self.progress.send_replace(Progress::Failed);
        }
        self.downloads.ended(self.expected, whole);
    }
}

impl Download {
    pub fn size(&self) -> u64 {
        self.expected.size
    }

    /// Whether it failed (a new request should start it again).
    pub fn failed(&self) -> bool {
        *self.progress.borrow() == Progress::Failed
    }

    /// Bytes `start..end`, as they are written; the last byte of the file only once the whole
    /// passed its check, and a range that ends before it only then too (it cannot be checked
    /// alone).
    pub fn read(self: Arc<Self>, start: u64, end: u64) -> ByteStream {
        let (output, chunks) = mpsc::channel(CHUNKS_IN_FLIGHT);
        tokio::spawn(async move {
            if let Err(e) = self.send(start, end, &output).await {
                let _ = output.send(Err(e)).await;
            }
        });
        channel_stream(chunks)
    }

    async fn send(
        &self,
        mut offset: u64,
        end: u64,
        output: &mpsc::Sender<io::Result<Bytes>>,
    ) -> io::Result<()> {
        let mut progress = self.progress.clone();
        while offset < end {
            let readable = match *progress.borrow_and_update() {
                Progress::Done => end,
                Progress::Failed => {
                    return Err(io::Error::other("the pulled file failed its check"))
                }
                Progress::Writing(_) if end < self.expected.size => 0,
                Progress::Writing(written) => written.min(self.expected.size - 1),
            };
            if offset >= readable {
                match tokio::time::timeout(STALL, progress.changed()).await {
                    Ok(Ok(())) => continue,
                    // The writer is gone, and its last word was final (see `Drop`).
                    Ok(Err(_)) if !matches!(*progress.borrow(), Progress::Writing(_)) => continue,
                    Ok(Err(_)) => return Err(io::Error::other("the pulled file was abandoned")),
                    Err(_) => return Err(io::Error::other("the pulled file stalled")),
                }
            }
            let len = (readable - offset).min(CHUNK as u64) as usize;
            let file = self.file.clone();
            let at = offset;
            let chunk = tokio::task::spawn_blocking(move || {
                let mut chunk = vec![0u8; len];
                file.read_exact_at(&mut chunk, at).map(|()| chunk)
            })
            .await
            .map_err(io::Error::other)??;
            offset += len as u64;
            if output.send(Ok(Bytes::from(chunk))).await.is_err() {
                return Ok(());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;

    use super::*;

    fn expected(content: &[u8]) -> Expected {
        Expected {
            file_hash: NarHash(Sha256::digest(content).into()),
            size: content.len() as u64,
        }
    }

    async fn collect(stream: ByteStream) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        let mut stream = stream;
        while let Some(chunk) = stream.next().await {
            out.extend_from_slice(&chunk?);
        }
        Ok(out)
    }

    #[tokio::test]
    async fn readers_follow_the_writer_and_get_the_end_once_it_checks() {
        let dir = tempfile::tempdir().unwrap();
        let downloads = Downloads::open(&dir.path().join("pull"), 1 << 20).unwrap();
        let content: Vec<u8> = (0..600_000u32).map(|i| (i % 251) as u8).collect();
        let (download, writer) = downloads.join_or_start(expected(&content)).unwrap();
        let mut writer = writer.unwrap();
        let early = tokio::spawn(collect(download.clone().read(0, content.len() as u64)));
        for part in content.chunks(100_000) {
            writer.write(part).await.unwrap();
        }
        assert!(!early.is_finished(), "the last byte waits for the check");
        writer.finish().await.unwrap();
        assert_eq!(early.await.unwrap().unwrap(), content);
        let (kept, writer) = downloads.join_or_start(expected(&content)).unwrap();
        assert!(writer.is_none(), "a kept file is read, not fetched again");
        assert_eq!(collect(kept.read(10, 20)).await.unwrap(), &content[10..20]);
    }

    #[tokio::test]
    async fn a_wrong_file_never_reaches_a_reader_whole() {
        let dir = tempfile::tempdir().unwrap();
        let downloads = Downloads::open(&dir.path().join("pull"), 1 << 20).unwrap();
        let content = vec![7u8; 1000];
        let (download, writer) = downloads.join_or_start(expected(&content)).unwrap();
        let mut writer = writer.unwrap();
        let reader = tokio::spawn(collect(download.clone().read(0, 1000)));
        writer.write(&[8u8; 1000]).await.unwrap();
        assert!(writer.finish().await.is_err());
        assert!(reader.await.unwrap().is_err());
        let (_, again) = downloads.join_or_start(expected(&content)).unwrap();
        assert!(again.is_some(), "a failed file is fetched again");
    }

    #[tokio::test]
    async fn finished_files_leave_oldest_first_within_the_budget() {
        let dir = tempfile::tempdir().unwrap();
        let downloads = Downloads::open(&dir.path().join("pull"), 2500).unwrap();
        let files: Vec<Vec<u8>> = (0..3u8).map(|i| vec![i; 1000]).collect();
        for content in &files {
            let (_, writer) = downloads.join_or_start(expected(content)).unwrap();
            let mut writer = writer.unwrap();
            writer.write(content).await.unwrap();
            writer.finish().await.unwrap();
        }
        assert_eq!(downloads.kept(), (2, 2000), "the oldest left");
        let (_, kept) = downloads.join_or_start(expected(&files[2])).unwrap();
        assert!(kept.is_none());
        let too_big = vec![9u8; 3000];
        assert!(matches!(
            downloads.join_or_start(expected(&too_big)),
            Err(DownloadError::Full)
        ));
    }
}
