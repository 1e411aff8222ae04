//! What this node answered its peers since start: narinfo requests (found or not) and NAR
//! requests with the bytes sent, for `/status` and `/metrics`.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use serde_json::{json, Value};

#[derive(Default)]
pub struct Answered {
    narinfos_found: AtomicU64,
    narinfos_not_found: AtomicU64,
    nars: AtomicU64,
    nar_bytes: AtomicU64,
}

impl Answered {
    pub fn narinfo(&self, found: bool) {
        let counter = match found {
            true => &self.narinfos_found,
            false => &self.narinfos_not_found,
        };
        counter.fetch_add(1, Relaxed);
    }

    /// A NAR range sent whole.
    pub fn nar(&self, bytes: u64) {
        self.nars.fetch_add(1, Relaxed);
        self.nar_bytes.fetch_add(bytes, Relaxed);
    }

    /// `(found, not found)` narinfo requests.
    pub fn narinfos(&self) -> (u64, u64) {
        (
            self.narinfos_found.load(Relaxed),
            self.narinfos_not_found.load(Relaxed),
        )
    }

    /// `(requests, bytes)` of NARs sent whole.
    pub fn nars(&self) -> (u64, u64) {
        (self.nars.load(Relaxed), self.nar_bytes.load(Relaxed))
    }

    pub fn json(&self) -> Value {
        let (found, not_found) = self.narinfos();
        let (nars, bytes) = self.nars();
        json!({
            "narinfos_found": found,
            "narinfos_not_found": not_found,
            "nars": nars,
            "nar_bytes": bytes,
        })
    }
}
