//! `--cache-size`: NARs fetched from peers, kept on disk (`STATE_DIR/nar-cache`) so that repeats
//! are served without asking anyone. Only whole NARs that passed the NarHash check are kept; the
//! least recently used go first when the cache is full. A fill takes its room when it starts, so
//! what is kept and what is being written stay within `--cache-size` together.
//!
//! One fill per NAR at a time: a second reader while one fills streams from the peers without
//! filling. Each fill writes a temp file of its own, renamed into place once complete and
//! durable; a killed fill leaves only a temp file, which is never served and is removed at the
//! next start. Every chunk is checked against the checksums kept in the file (`file.rs`) before it
//! is sent: a damaged file cuts its response short, is dropped, and the next request refetches.

mod file;

use std::collections::HashMap;
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use bytes::Bytes;
use peerix_http::{channel_stream, ByteStream, NarHash, NarSource};
use tokio::sync::mpsc;

use file::{read_size, CachedFileError, Reader, Writer};

/// Chunks buffered between the reading thread and the response.
const CHUNKS_IN_FLIGHT: usize = 4;
const SUFFIX: &str = ".nar";

struct Entry {
    size: u64,
    used: SystemTime,
}

/// What fills, readers and the cache share.
struct Shared {
    dir: PathBuf,
    capacity: u64,
    entries: Mutex<HashMap<NarHash, Entry>>,
    /// NARs being written now, and their sizes: at most one fill each.
    filling: Mutex<HashMap<NarHash, u64>>,
    /// Makes every temp file name unique within this process.
    next_part: AtomicU64,
}

pub struct NarCache(Arc<Shared>);

impl NarCache {
    /// Opens the cache in `dir` (created when missing), keeping at most `capacity` bytes. Whole
    /// NARs left by an earlier run are kept, oldest first to go; anything else there (temp files
    /// of fills that were killed, files with a bad header) is removed.
    pub fn open(dir: &Path, capacity: u64) -> io::Result<Self> {
        fs::create_dir_all(dir)?;
        let mut entries = HashMap::new();
        for file in fs::read_dir(dir)? {
            let file = file?;
            match kept_entry(&file.path()) {
                Some((hash, entry)) => {
                    entries.insert(hash, entry);
                }
                None => {
                    tracing::debug!(file = %file.path().display(), "removing from the NAR cache");
                    let _ = fs::remove_file(file.path());
                }
            }
        }
        let cache = Self(Arc::new(Shared {
            dir: dir.to_owned(),
            capacity,
            entries: Mutex::new(entries),
            filling: Mutex::new(HashMap::new()),
            next_part: AtomicU64::new(0),
        }));
        cache.0.evict(0);
        Ok(cache)
    }

    /// The cached NAR `hash`, if it is here, as a source of checked byte ranges.
    pub fn get(&self, hash: &NarHash) -> Option<(u64, Box<dyn NarSource>)> {
        let size = {
            let mut entries = self.0.entries.lock().ok()?;
            let entry = entries.get_mut(hash)?;
            entry.used = SystemTime::now();
            entry.size
        };
        let file = File::open(self.0.path(hash)).ok()?;
        let source = CachedNar {
            shared: self.0.clone(),
            hash: *hash,
            size,
            file,
        };
        Some((size, Box::new(source)))
    }

    /// A writer for the NAR `hash` being fetched, unless it does not fit beside the fills under
    /// way, is cached already, or another fill of it runs; nothing is kept unless it is
    /// finished. The least recently used NARs make room for it now.
    pub fn start(&self, hash: NarHash, size: u64) -> Option<Filling> {
        if self.0.entries.lock().ok()?.contains_key(&hash) {
            return None;
        }
        let being_written = {
            let mut filling = self.0.filling.lock().ok()?;
            let being_written = filling.values().sum::<u64>().saturating_add(size);
            if filling.contains_key(&hash) || being_written > self.0.capacity {
                return None;
            }
            filling.insert(hash, size);
            being_written
        };
        self.0.evict(being_written);
        let n = self.0.next_part.fetch_add(1, Ordering::Relaxed);
        let part = self.0.dir.join(format!(
            "{}.part-{}-{n}",
            hash.to_base32(),
            std::process::id()
        ));
        let mut filling = Filling {
            shared: self.0.clone(),
            hash,
            size,
            part: Some(part),
            writer: None,
        };
        let file = File::options()
            .write(true)
            .create_new(true)
            .open(filling.part.as_ref()?);
        match file {
            Ok(file) => filling.writer = Some(Writer::new(file, size)),
            Err(e) => {
                tracing::warn!(nar = %hash, error = %e, "cannot start caching a NAR");
                return None;
            }
        }
        Some(filling)
    }
}

/// The entry a file in the cache directory stands for, if it is a whole cached NAR.
fn kept_entry(path: &Path) -> Option<(NarHash, Entry)> {
    let name = path.file_name()?.to_str()?;
    let hash = NarHash::from_base32(name.strip_suffix(SUFFIX)?).ok()?;
    let file = File::open(path).ok()?;
    let size = read_size(&file).ok()?;
    let used = file
        .metadata()
        .and_then(|m| m.modified())
        .unwrap_or(SystemTime::UNIX_EPOCH);
    Some((hash, Entry { size, used }))
}

impl Shared {
    fn path(&self, hash: &NarHash) -> PathBuf {
        self.dir.join(format!("{}{SUFFIX}", hash.to_base32()))
    }

    /// Removes least recently used NARs until `incoming` more bytes fit.
    fn evict(&self, incoming: u64) {
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        let mut total: u64 = entries.values().map(|e| e.size).sum();
        while total + incoming > self.capacity {
            let Some(oldest) = entries.iter().min_by_key(|(_, e)| e.used).map(|(h, _)| *h) else {
                return;
            };
            if let Some(entry) = entries.remove(&oldest) {
                total -= entry.size;
                let _ = fs::remove_file(self.path(&oldest));
            }
        }
    }

    /// Drops a cached NAR found damaged, if `file` is still the one in place (a fill may have
    /// replaced it since).
    fn discard(&self, hash: &NarHash, file: &File) {
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        let path = self.path(hash);
        let same = match (file.metadata(), fs::metadata(&path)) {
            (Ok(ours), Ok(current)) => ours.ino() == current.ino() && ours.dev() == current.dev(),
            _ => false,
        };
        if same {
            entries.remove(hash);
            let _ = fs::remove_file(&path);
        }
    }
}

/// A NAR being written to the cache as it streams to Nix; dropped unfinished, it leaves nothing.
pub struct Filling {
    shared: Arc<Shared>,
    hash: NarHash,
    size: u64,
    /// The temp file, until it is renamed into place.
    part: Option<PathBuf>,
    writer: Option<Writer>,
}

impl Filling {
    pub fn write(&mut self, chunk: &[u8]) -> io::Result<()> {
        match &mut self.writer {
            Some(writer) => writer.write(chunk),
            None => Err(io::Error::other("NAR cache file closed")),
        }
    }

    /// Keeps a NAR whose every byte was checked: made durable, then renamed into place, after
    /// making room.
    pub fn finish(mut self) -> io::Result<()> {
        let (Some(writer), Some(part)) = (self.writer.take(), self.part.clone()) else {
            return Err(io::Error::other("NAR cache file closed"));
        };
        writer.finish()?;
        self.shared.evict(self.size);
        fs::rename(&part, self.shared.path(&self.hash))?;
        self.part = None;
        if let Ok(mut entries) = self.shared.entries.lock() {
            let used = SystemTime::now();
            let size = self.size;
            entries.insert(self.hash, Entry { size, used });
        }
        Ok(())
    }
}

impl Drop for Filling {
    fn drop(&mut self) {
        if let Some(part) = self.part.take() {
            let _ = fs::remove_file(part);
        }
        if let Ok(mut filling) = self.shared.filling.lock() {
            filling.remove(&self.hash);
        }
    }
}

struct CachedNar {
    shared: Arc<Shared>,
    hash: NarHash,
    size: u64,
    file: File,
}

impl NarSource for CachedNar {
    fn stream(self: Box<Self>, start: u64, end: u64) -> ByteStream {
        let (output, chunks) = mpsc::channel::<io::Result<Bytes>>(CHUNKS_IN_FLIGHT);
        tokio::task::spawn_blocking(move || {
            let Self {
                shared,
                hash,
                size,
                file,
            } = *self;
            let reader = Reader::new(file, size);
            let read = reader.read_range(start, end, |chunk| {
                output.blocking_send(Ok(Bytes::from(chunk))).is_ok()
            });
            let Err(e) = read else {
                return;
            };
            if let CachedFileError::Damaged(_) = e {
                tracing::error!(nar = %hash, error = %e, "cached NAR damaged: dropped, to be fetched again");
                shared.discard(&hash, reader.file());
            } else {
                tracing::warn!(nar = %hash, error = %e, "cannot read a cached NAR");
            }
            let _ = output.blocking_send(Err(e.into()));
        });
        channel_stream(chunks)
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::FileExt;

    use super::*;
    use futures_util::StreamExt;

    async fn read_all(source: Box<dyn NarSource>, start: u64, end: u64) -> io::Result<Vec<u8>> {
        let mut stream = source.stream(start, end);
        let mut out = Vec::new();
        while let Some(chunk) = stream.next().await {
            out.extend_from_slice(&chunk?);
        }
        Ok(out)
    }

    fn put(cache: &NarCache, n: u8, size: usize) {
        let mut filling = cache.start(NarHash([n; 32]), size as u64).unwrap();
        filling.write(&vec![n; size]).unwrap();
        filling.finish().unwrap();
    }

    fn files(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|f| f.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[tokio::test]
    async fn keeps_finished_nars_and_evicts_the_least_recently_used() {
        let dir = tempfile::tempdir().unwrap();
        let cache = NarCache::open(dir.path(), 250).unwrap();
        put(&cache, 1, 100);
        put(&cache, 2, 100);
        let (size, source) = cache.get(&NarHash([1; 32])).unwrap();
        assert_eq!(size, 100);
        assert_eq!(read_all(source, 10, 20).await.unwrap(), vec![1; 10]);
        // 1 was used after 2: 2 goes to make room.
        put(&cache, 3, 100);
        assert!(cache.get(&NarHash([2; 32])).is_none());
        assert!(cache.get(&NarHash([1; 32])).is_some());

        // An unfinished NAR is not kept; one larger than the cache is not even started.
        let mut partial = cache.start(NarHash([4; 32]), 50).unwrap();
        partial.write(&[4; 10]).unwrap();
        assert!(partial.finish().is_err());
        assert!(cache.get(&NarHash([4; 32])).is_none());
        assert!(cache.start(NarHash([5; 32]), 251).is_none());

        // A new run finds what the last one kept.
        drop(cache);
        let cache = NarCache::open(dir.path(), 250).unwrap();
        assert!(cache.get(&NarHash([3; 32])).is_some());
    }

    #[test]
    fn fills_under_way_take_their_room_in_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let cache = NarCache::open(dir.path(), 100).unwrap();
        put(&cache, 1, 60);
        let second = cache.start(NarHash([2; 32]), 60).unwrap();
        // What is kept and what is being written stay within the capacity.
        assert!(
            cache.get(&NarHash([1; 32])).is_none(),
            "the kept one made room"
        );
        assert!(
            cache.start(NarHash([3; 32]), 50).is_none(),
            "no room beside the fill"
        );
        drop(second);
        assert!(cache.start(NarHash([3; 32]), 50).is_some());
    }

    #[test]
    fn one_fill_at_a_time_and_dropped_fills_leave_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let cache = NarCache::open(dir.path(), 1000).unwrap();
        let hash = NarHash([1; 32]);
        let first = cache.start(hash, 10).unwrap();
        assert!(cache.start(hash, 10).is_none(), "a second fill of one NAR");
        let other = cache.start(NarHash([2; 32]), 10).unwrap();
        assert_eq!(files(dir.path()).len(), 2, "one temp file per fill");
        drop(first);
        drop(other);
        assert!(files(dir.path()).is_empty());
        // Once the first fill is gone, another may start; a finished NAR is not filled again.
        put(&cache, 1, 10);
        assert!(cache.start(hash, 10).is_none());
    }

    #[tokio::test]
    async fn temp_and_bad_files_of_an_earlier_run_are_removed_and_damage_is_never_served() {
        let dir = tempfile::tempdir().unwrap();
        let cache = NarCache::open(dir.path(), 1 << 20).unwrap();
        let size = 600 * 1024;
        put(&cache, 1, size);
        // What a killed fill and an older format leave behind.
        let stale = cache.start(NarHash([2; 32]), 10).unwrap();
        std::mem::forget(stale);
        fs::write(
            dir.path()
                .join(format!("{}.nar", NarHash([3; 32]).to_base32())),
            b"old",
        )
        .unwrap();
        drop(cache);
        let cache = NarCache::open(dir.path(), 1 << 20).unwrap();
        let kept = format!("{}.nar", NarHash([1; 32]).to_base32());
        assert_eq!(files(dir.path()), std::slice::from_ref(&kept));

        // A byte flipped on disk: the response ends in an error, short of the whole NAR, and
        // the entry is gone so that the next request fetches it again.
        let path = dir.path().join(&kept);
        let file = File::options().write(true).open(&path).unwrap();
        let at = file.metadata().unwrap().len() - 10;
        file.write_all_at(&[0], at).unwrap();
        let (_, source) = cache.get(&NarHash([1; 32])).unwrap();
        let mut stream = source.stream(0, size as u64);
        let mut got = 0;
        let mut failed = false;
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(chunk) => got += chunk.len(),
                Err(_) => failed = true,
            }
        }
        assert!(
            failed && got < size,
            "{got} bytes of a damaged NAR were served"
        );
        assert!(cache.get(&NarHash([1; 32])).is_none());
        assert!(!path.exists());
        put(&cache, 1, size);
        let (_, source) = cache.get(&NarHash([1; 32])).unwrap();
        assert_eq!(
            read_all(source, 0, size as u64).await.unwrap(),
            vec![1; size]
        );
    }
}
