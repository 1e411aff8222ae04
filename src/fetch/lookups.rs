//! Narinfo lookups by the place they were tried, hit or miss, in the order a lookup tries them:
//! this machine's store, the holders peers' indexes name, the tracker (when no known peer holds
//! the path), the LAN's old peers (when no Peerix node does), then the upstream cache
//! (`--pull-through`, when no peer has it). Each place tried counts one
//! outcome, so a path found by the tracker's holders is a `peer` miss and a `tracker` hit.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use serde_json::{json, Map, Value};

/// Where a narinfo lookup was tried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LookupSource {
    /// This machine's store.
    Local,
    /// The peers whose indexes say they hold the path.
    Peer,
    /// The holders the tracker names (`--tracker-url`).
    Tracker,
    /// Machines on the LAN running the old program (`--mode lan`, `both`).
    OldPeer,
    /// The upstream cache, for a path no peer has (`--pull-through`).
    Upstream,
}

impl LookupSource {
    pub const ALL: [Self; 5] = [
        Self::Local,
        Self::Peer,
        Self::Tracker,
        Self::OldPeer,
        Self::Upstream,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Peer => "peer",
            Self::Tracker => "tracker",
            Self::OldPeer => "old_peer",
            Self::Upstream => "upstream",
        }
    }
}

/// The counts, since start.
#[derive(Default)]
pub struct Lookups {
    /// `[hits, misses]` by source.
    counts: [[AtomicU64; 2]; LookupSource::ALL.len()],
}

impl Lookups {
    pub fn record(&self, source: LookupSource, hit: bool) {
        self.counts[source as usize][usize::from(!hit)].fetch_add(1, Relaxed);
    }

    /// `(hits, misses)` of lookups tried at `source`.
    pub fn count(&self, source: LookupSource) -> (u64, u64) {
        let [hits, misses] = &self.counts[source as usize];
        (hits.load(Relaxed), misses.load(Relaxed))
    }

    /// For `/status`: `{"local": {"hit": N, "miss": N}, ...}`.
    pub fn json(&self) -> Value {
        let by_source: Map<String, Value> = LookupSource::ALL
            .iter()
            .map(|&source| {
                let (hit, miss) = self.count(source);
                (
                    source.name().to_owned(),
                    json!({ "hit": hit, "miss": miss }),
                )
            })
            .collect();
        by_source.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_source_counts_its_own_hits_and_misses() {
        let lookups = Lookups::default();
        lookups.record(LookupSource::Local, false);
        lookups.record(LookupSource::Peer, false);
        lookups.record(LookupSource::Tracker, true);
        lookups.record(LookupSource::Local, true);
        assert_eq!(lookups.count(LookupSource::Local), (1, 1));
        assert_eq!(lookups.count(LookupSource::Peer), (0, 1));
        assert_eq!(lookups.count(LookupSource::Tracker), (1, 0));
        assert_eq!(
            lookups.json(),
            json!({
                "local": {"hit": 1, "miss": 1},
                "peer": {"hit": 0, "miss": 1},
                "tracker": {"hit": 1, "miss": 0},
                "old_peer": {"hit": 0, "miss": 0},
                "upstream": {"hit": 0, "miss": 0},
            })
        );
    }
}
