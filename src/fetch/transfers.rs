//! The latest NAR transfers to Nix, for the dashboard: which NAR, from where, how far along. Each
//! transfer's bytes are counted as the reader takes them; it ends when its body stream is
//! dropped (finished, or Nix went away).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use peerix_http::NarHash;
use serde_json::{json, Value};

use super::source::Source;

/// Transfers kept (the newest); the oldest is dropped first.
pub const KEPT: usize = 32;

#[derive(Default)]
pub struct Transfers {
    latest: Mutex<VecDeque<Arc<Transfer>>>,
}

pub struct Transfer {
    nar_hash: NarHash,
    source: Source,
    /// Bytes asked for (the whole NAR, or a range of it).
    wanted: u64,
    sent: AtomicU64,
    started: Instant,
    ended: OnceLock<Instant>,
}

impl Transfer {
    pub fn sent(&self, bytes: usize) {
        self.sent.fetch_add(bytes as u64, Relaxed);
    }

    fn to_json(&self) -> Value {
        let sent = self.sent.load(Relaxed);
        let end = self.ended.get().copied().unwrap_or_else(Instant::now);
        let seconds = end.duration_since(self.started).as_secs_f64();
        json!({
            "nar_hash": self.nar_hash.to_base32(),
            "source": self.source.name(),
            "bytes_wanted": self.wanted,
            "bytes_sent": sent,
            "seconds": seconds,
            "bytes_per_second": if seconds > 0.0 { sent as f64 / seconds } else { 0.0 },
            "running": self.ended.get().is_none(),
            "seconds_ago": self.started.elapsed().as_secs(),
        })
    }
}

/// Ends its transfer when dropped, with the body stream that holds it.
pub struct Ending(Arc<Transfer>);

impl Ending {
    pub fn transfer(&self) -> &Transfer {
        &self.0
    }
}

impl Drop for Ending {
    fn drop(&mut self) {
        let _ = self.0.ended.set(Instant::now());
    }
}

impl Transfers {
    /// A transfer that starts now; it ends when the returned guard is dropped.
    pub fn start(&self, nar_hash: NarHash, source: Source, wanted: u64) -> Ending {
        let transfer = Arc::new(Transfer {
            nar_hash,
            source,
            wanted,
            sent: AtomicU64::new(0),
            started: Instant::now(),
            ended: OnceLock::new(),
        });
        if let Ok(mut latest) = self.latest.lock() {
            if latest.len() >= KEPT {
                latest.pop_front();
            }
            latest.push_back(transfer.clone());
        }
        Ending(transfer)
    }

    /// The latest transfers, newest first.
    pub fn json(&self) -> Vec<Value> {
        let Ok(latest) = self.latest.lock() else {
            return Vec::new();
        };
        latest.iter().rev().map(|t| t.to_json()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(byte: u8) -> NarHash {
        NarHash([byte; 32])
    }

    #[test]
    fn a_transfer_runs_until_its_guard_is_dropped_and_only_the_latest_are_kept() {
        let transfers = Transfers::default();
        let ending = transfers.start(hash(1), Source::Peer, 100);
        ending.transfer().sent(60);
        let running = &transfers.json()[0];
        assert_eq!(running["running"], true);
        assert_eq!(running["bytes_sent"], 60);
        assert_eq!(running["source"], "peer");
        drop(ending);
        assert_eq!(transfers.json()[0]["running"], false);

        for i in 0..(KEPT + 5) {
            drop(transfers.start(hash(i as u8), Source::Local, 1));
        }
        let kept = transfers.json();
        assert_eq!(kept.len(), KEPT);
        assert_eq!(kept[0]["nar_hash"], hash((KEPT + 4) as u8).to_base32());
    }
}
