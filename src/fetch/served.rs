//! What this node served Nix, by where it came from: narinfos, and NAR bytes as they stream.
//! Every byte counted here, but pulled-through ones, is one Nix did not have to fetch from
//! upstream. The latest transfers
//! are kept too, for the dashboard.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use futures_util::StreamExt;
use peerix_http::{ByteStream, NarHash, NarSource};
use serde_json::{json, Value};

use super::source::Source;
use super::transfers::Transfers;

#[derive(Default)]
pub struct Served {
    narinfos: [AtomicU64; Source::ALL.len()],
    nar_bytes: [AtomicU64; Source::ALL.len()],
    pub transfers: Transfers,
}

impl Served {
    pub fn narinfo(&self, source: Source) {
        self.narinfos[source.index()].fetch_add(1, Relaxed);
    }

    pub fn narinfos(&self, source: Source) -> u64 {
        self.narinfos[source.index()].load(Relaxed)
    }

    pub fn nar_bytes(&self, source: Source) -> u64 {
        self.nar_bytes[source.index()].load(Relaxed)
    }

    /// `inner`, the NAR `nar_hash`, its bytes counted under `source` as the reader takes them.
    pub fn counting(
        self: &Arc<Self>,
        source: Source,
        nar_hash: NarHash,
        inner: Box<dyn NarSource>,
    ) -> Box<dyn NarSource> {
        Box::new(Counted {
            served: self.clone(),
            source,
            nar_hash,
            inner,
        })
    }

    /// For `/status`: counts by source, and the bytes Nix did not fetch from upstream.
    pub fn json(&self) -> Value {
        let by_source = |count: &dyn Fn(Source) -> u64| -> Value {
            Source::ALL
                .iter()
                .map(|s| (s.name().to_owned(), json!(count(*s))))
                .collect::<serde_json::Map<_, _>>()
                .into()
        };
        // Pulled-through bytes crossed the uplink once for the LAN, but they did come from upstream.
        let not_from_upstream: u64 = Source::ALL
            .iter()
            .filter(|s| **s != Source::PullThrough)
            .map(|s| self.nar_bytes(*s))
            .sum();
        json!({
            "narinfos": by_source(&|s| self.narinfos(s)),
            "nar_bytes": by_source(&|s| self.nar_bytes(s)),
            "bytes_not_from_upstream": not_from_upstream,
        })
    }
}

struct Counted {
    served: Arc<Served>,
    source: Source,
    nar_hash: NarHash,
    inner: Box<dyn NarSource>,
}

impl NarSource for Counted {
    fn stream(self: Box<Self>, start: u64, end: u64) -> ByteStream {
        let Counted {
            served,
            source,
            nar_hash,
            inner,
        } = *self;
        let transfer = served
            .transfers
            .start(nar_hash, source, end.saturating_sub(start));
        Box::pin(inner.stream(start, end).inspect(move |chunk| {
            if let Ok(bytes) = chunk {
                served.nar_bytes[source.index()].fetch_add(bytes.len() as u64, Relaxed);
                transfer.transfer().sent(bytes.len());
            }
        }))
    }
}
