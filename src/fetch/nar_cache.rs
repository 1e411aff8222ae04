//! `--cache-size`: NARs fetched from peers, kept on disk (`STATE_DIR/nar-cache`) so that repeats
//! are served without asking anyone. Only whole NARs that passed the NarHash check are kept; the
//! least recently used go first when the cache is full.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use bytes::Bytes;
use peerix_http::{ByteStream, NarHash, NarSource};
use tokio::sync::mpsc;

const CHUNK: usize = 256 * 1024;

struct Entry {
    size: u64,
    used: SystemTime,
}

pub struct NarCache {
    dir: PathBuf,
    capacity: u64,
    entries: Mutex<HashMap<NarHash, Entry>>,
}

impl NarCache {
    /// Opens the cache in `dir` (created when missing), keeping at most `capacity` bytes; files
    /// left by an earlier run are kept, oldest first to go.
    pub fn open(dir: &Path, capacity: u64) -> io::Result<Self> {
        fs::create_dir_all(dir)?;
        let mut entries = HashMap::new();
        for file in fs::read_dir(dir)? {
            let file = file?;
            let name = file.file_name();
            let Some(hash) = name.to_str().and_then(|n| n.strip_suffix(".nar")) else {
                // Unfinished downloads of an earlier run.
                let _ = fs::remove_file(file.path());
                continue;
            };
            let Ok(hash) = NarHash::from_base32(hash) else {
                continue;
            };
            let meta = file.metadata()?;
            let used = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
            entries.insert(
                hash,
                Entry {
                    size: meta.len(),
                    used,
                },
            );
        }
        let cache = Self {
            dir: dir.to_owned(),
            capacity,
            entries: Mutex::new(entries),
        };
        cache.evict(0);
        Ok(cache)
    }

    fn path(&self, hash: &NarHash) -> PathBuf {
        self.dir.join(format!("{}.nar", hash.to_base32()))
    }

    /// The cached NAR `hash`, if it is here, as a source of byte ranges.
    pub fn get(&self, hash: &NarHash) -> Option<(u64, Box<dyn NarSource>)> {
        let size = {
            let mut entries = self.entries.lock().ok()?;
            let entry = entries.get_mut(hash)?;
            entry.used = SystemTime::now();
            entry.size
        };
        let file = File::open(self.path(hash)).ok()?;
        Some((size, Box::new(CachedNar(file))))
    }

    /// A writer for the NAR `hash` being fetched; nothing is kept unless it is finished.
    pub fn start(&self, hash: NarHash, size: u64) -> Option<Filling> {
        if size > self.capacity {
            return None;
        }
        let part = self
            .dir
            .join(format!("{}.part-{}", hash.to_base32(), std::process::id()));
        let file = File::create(&part).ok()?;
        Some(Filling {
            hash,
            size,
            written: 0,
            file,
            part,
        })
    }

    /// Keeps a NAR whose every byte was checked; makes room first.
    pub fn finish(&self, filling: Filling) -> io::Result<()> {
        let Filling {
            hash,
            size,
            written,
            file,
            part,
        } = filling;
        if written != size {
            let _ = fs::remove_file(&part);
            return Err(io::Error::other("incomplete NAR not cached"));
        }
        file.sync_all()?;
        self.evict(size);
        fs::rename(&part, self.path(&hash))?;
        if let Ok(mut entries) = self.entries.lock() {
            let used = SystemTime::now();
            entries.insert(hash, Entry { size, used });
        }
        Ok(())
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
}

/// A NAR being written to the cache as it streams to Nix.
pub struct Filling {
    hash: NarHash,
    size: u64,
    written: u64,
    file: File,
    part: PathBuf,
}

impl Filling {
    pub fn write(&mut self, chunk: &[u8]) -> io::Result<()> {
        self.file.write_all(chunk)?;
        self.written += chunk.len() as u64;
        Ok(())
    }

    /// Drops the unfinished file.
    pub fn abandon(self) {
        let _ = fs::remove_file(&self.part);
    }
}

struct CachedNar(File);

impl NarSource for CachedNar {
    fn stream(self: Box<Self>, start: u64, end: u64) -> ByteStream {
        let (output, chunks) = mpsc::channel::<io::Result<Bytes>>(4);
        let file = self.0;
        tokio::task::spawn_blocking(move || {
            let mut offset = start;
            while offset < end {
                let len = CHUNK.min(usize::try_from(end - offset).unwrap_or(CHUNK));
                let mut chunk = vec![0u8; len];
                let read = file
                    .read_exact_at(&mut chunk, offset)
                    .map(|()| Bytes::from(chunk));
                let failed = read.is_err();
                if output.blocking_send(read).is_err() || failed {
                    return;
                }
                offset += len as u64;
            }
        });
        Box::pin(futures_util::stream::unfold(
            chunks,
            |mut chunks| async move { chunks.recv().await.map(|item| (item, chunks)) },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    async fn read_all(source: Box<dyn NarSource>, start: u64, end: u64) -> Vec<u8> {
        let mut stream = source.stream(start, end);
        let mut out = Vec::new();
        while let Some(chunk) = stream.next().await {
            out.extend_from_slice(&chunk.unwrap());
        }
        out
    }

    #[tokio::test]
    async fn keeps_finished_nars_and_evicts_the_least_recently_used() {
        let dir = tempfile::tempdir().unwrap();
        let cache = NarCache::open(dir.path(), 250).unwrap();
        let put = |n: u8, size: usize| {
            let mut filling = cache.start(NarHash([n; 32]), size as u64).unwrap();
            filling.write(&vec![n; size]).unwrap();
            cache.finish(filling).unwrap();
        };
        put(1, 100);
        put(2, 100);
        let (size, source) = cache.get(&NarHash([1; 32])).unwrap();
        assert_eq!(size, 100);
        assert_eq!(read_all(source, 10, 20).await, vec![1; 10]);
        // 1 was used after 2: 2 goes to make room.
        put(3, 100);
        assert!(cache.get(&NarHash([2; 32])).is_none());
        assert!(cache.get(&NarHash([1; 32])).is_some());

        // An unfinished NAR is not kept; one larger than the cache is not even started.
        let mut partial = cache.start(NarHash([4; 32]), 50).unwrap();
        partial.write(&[4; 10]).unwrap();
        assert!(cache.finish(partial).is_err());
        assert!(cache.get(&NarHash([4; 32])).is_none());
        assert!(cache.start(NarHash([5; 32]), 251).is_none());

        // A new run finds what the last one kept.
        drop(cache);
        let cache = NarCache::open(dir.path(), 250).unwrap();
        assert!(cache.get(&NarHash([3; 32])).is_some());
    }
}
