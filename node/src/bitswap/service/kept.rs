//! Blocks this node received while fetching a file together with others (a swarm), kept so
//! that it can pass them on while its own fetch goes on and a little after. Every block was
//! verified against its CID on arrival. Bounded in bytes and in age: the oldest go first, and
//! none outlives [`KEPT_FOR`].

use std::sync::Mutex;
use std::time::{Duration, Instant};

use cid::Cid;
use hashlink::LinkedHashMap;

/// Bytes of swarm blocks held at most: four 64 MiB NARs in flight at once.
pub const KEPT_BYTES: usize = 256 << 20;
/// How long a block stays after it arrived: long enough for the slowest member of a swarm that
/// started with this node, short enough that a finished fetch soon gives its memory back.
pub const KEPT_FOR: Duration = Duration::from_secs(120);

struct Kept {
    data: Vec<u8>,
    at: Instant,
}

#[derive(Default)]
struct Inner {
    /// Oldest first.
    blocks: LinkedHashMap<Cid, Kept>,
    bytes: usize,
}

impl Inner {
    fn pop_oldest(&mut self) {
        if let Some((_, kept)) = self.blocks.pop_front() {
            self.bytes -= kept.data.len();
        }
    }

    fn expire(&mut self, now: Instant) {
        while self
            .blocks
            .front()
            .is_some_and(|(_, kept)| now.duration_since(kept.at) >= KEPT_FOR)
        {
            self.pop_oldest();
        }
    }
}

pub struct KeptBlocks {
    inner: Mutex<Inner>,
    limit: usize,
}

impl KeptBlocks {
    pub fn new(limit: usize) -> Self {
        Self {
            inner: Mutex::default(),
            limit,
        }
    }

    /// Keeps a verified block, making room by dropping the oldest.
    pub fn insert(&self, cid: Cid, data: Vec<u8>) {
        if data.len() > self.limit {
            return;
        }
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        let now = Instant::now();
        inner.expire(now);
        if let Some(old) = inner.blocks.remove(&cid) {
            inner.bytes -= old.data.len();
        }
        while inner.bytes + data.len() > self.limit {
            inner.pop_oldest();
        }
        inner.bytes += data.len();
        inner.blocks.insert(cid, Kept { data, at: now });
    }

    pub fn get(&self, cid: &Cid) -> Option<Vec<u8>> {
        let mut inner = self.inner.lock().ok()?;
        inner.expire(Instant::now());
        inner.blocks.get(cid).map(|kept| kept.data.clone())
    }

    pub fn has(&self, cid: &Cid) -> bool {
        self.inner.lock().is_ok_and(|mut inner| {
            inner.expire(Instant::now());
            inner.blocks.contains_key(cid)
        })
    }

    /// Blocks and bytes held now.
    pub fn usage(&self) -> (usize, usize) {
        self.inner.lock().map_or((0, 0), |mut inner| {
            inner.expire(Instant::now());
            (inner.blocks.len(), inner.bytes)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::{sha256_multihash, RAW};

    fn block(byte: u8, len: usize) -> (Cid, Vec<u8>) {
        let data = vec![byte; len];
        (Cid::new_v1(RAW, sha256_multihash(&data)), data)
    }

    #[test]
    fn stays_within_its_bytes_dropping_the_oldest() {
        let kept = KeptBlocks::new(1000);
        let blocks: Vec<_> = (0..5).map(|i| block(i, 300)).collect();
        for (cid, data) in &blocks {
            kept.insert(*cid, data.clone());
        }
        assert_eq!(kept.usage(), (3, 900));
        assert!(!kept.has(&blocks[1].0));
        assert_eq!(kept.get(&blocks[4].0), Some(blocks[4].1.clone()));
        let (huge, data) = block(9, 2000);
        kept.insert(huge, data);
        assert!(
            !kept.has(&huge),
            "a block larger than the budget is not kept"
        );
    }
}
