//! Counters exported at `/metrics` in the Prometheus text format.
//!
//! The front's counters of Nix's requests are their own shared struct, [`FrontCounters`], so that
//! the application's status reads the very numbers `/metrics` renders without holding the
//! [`Metrics`] (which holds the application's families, which hold its status sources).

use std::fmt::Write as _;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::request_counts::{CountRequestsLayer, RequestCounts};

/// Upper bounds, in seconds, of the narinfo latency histogram.
const BUCKETS: [f64; 8] = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.05, 0.25, 1.0];

/// Families the application renders itself (from the counters its status reports), appended
/// to the front's own at each scrape.
pub trait MoreMetrics: Send + Sync {
    fn render(&self) -> Pin<Box<dyn Future<Output = String> + Send + '_>>;
}

#[derive(Default)]
pub struct Metrics {
    more: Option<Arc<dyn MoreMetrics>>,
    front: Arc<FrontCounters>,
    requests: Arc<RequestCounts>,
}

/// What the binary-cache routes counted of Nix's requests.
#[derive(Default)]
pub struct FrontCounters {
    narinfo_hits: AtomicU64,
    narinfo_misses: AtomicU64,
    nar_requests: AtomicU64,
    nar_bytes: AtomicU64,
    bad_requests: AtomicU64,
    errors: AtomicU64,
    narinfo_seconds_buckets: [AtomicU64; BUCKETS.len()],
    narinfo_seconds_sum_micros: AtomicU64,
    narinfo_seconds_count: AtomicU64,
}

pub(crate) enum Outcome {
    Hit,
    Miss,
    BadRequest,
    Error,
}

impl Metrics {
    /// `front`'s counters, requests by route, and `more` at each scrape.
    pub fn new(front: Arc<FrontCounters>, more: Option<Arc<dyn MoreMetrics>>) -> Self {
        Self {
            more,
            front,
            requests: Arc::default(),
        }
    }

    /// The layer that counts every request of a router by route and status, into these
    /// metrics' `peerix_http_requests_total`.
    pub fn count_requests(&self) -> CountRequestsLayer {
        CountRequestsLayer::new(self.requests.clone())
    }

    pub(crate) fn front(&self) -> &Arc<FrontCounters> {
        &self.front
    }

    /// Everything `/metrics` shows: the front's counters, requests by route, then the
    /// application's families.
    pub async fn render_all(&self) -> String {
        let mut text = self.front.render();
        self.requests.render(&mut text);
        if let Some(more) = &self.more {
            text.push_str(&more.render().await);
        }
        text
    }
}

impl FrontCounters {
    pub(crate) fn narinfo(&self, outcome: Outcome, elapsed: Duration) {
        let counter = match outcome {
            Outcome::Hit => &self.narinfo_hits,
            Outcome::Miss => &self.narinfo_misses,
            Outcome::BadRequest => &self.bad_requests,
            Outcome::Error => &self.errors,
        };
        counter.fetch_add(1, Relaxed);
        let seconds = elapsed.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|&b| seconds <= b) {
            self.narinfo_seconds_buckets[i].fetch_add(1, Relaxed);
        }
        self.narinfo_seconds_sum_micros
            .fetch_add(elapsed.as_micros() as u64, Relaxed);
        self.narinfo_seconds_count.fetch_add(1, Relaxed);
    }

    pub(crate) fn nar_started(&self) {
        self.nar_requests.fetch_add(1, Relaxed);
    }

    pub(crate) fn nar_bytes(&self, bytes: usize) {
        self.nar_bytes.fetch_add(bytes as u64, Relaxed);
    }

    pub(crate) fn request_failed(&self, bad_request: bool) {
        let counter = if bad_request {
            &self.bad_requests
        } else {
            &self.errors
        };
        counter.fetch_add(1, Relaxed);
    }

    /// For the application's status, under the names the dashboard reads.
    pub fn json(&self) -> Value {
        let count = |counter: &AtomicU64| counter.load(Relaxed);
        json!({
            "narinfo_hits": count(&self.narinfo_hits),
            "narinfo_misses": count(&self.narinfo_misses),
            "nar_requests": count(&self.nar_requests),
            "nar_bytes": count(&self.nar_bytes),
            "bad_requests": count(&self.bad_requests),
            "errors": count(&self.errors),
        })
    }

    fn render(&self) -> String {
        let mut out = String::with_capacity(2048);
        let mut counter = |name: &str, help: &str, value: &AtomicU64| {
            let _ = writeln!(
                out,
                "# HELP peerix_{name} {help}\n# TYPE peerix_{name} counter"
            );
            let _ = writeln!(out, "peerix_{name} {}", value.load(Relaxed));
        };
        counter(
            "narinfo_hits_total",
            "narinfo requests answered 200.",
            &self.narinfo_hits,
        );
        counter(
            "narinfo_misses_total",
            "narinfo requests answered 404.",
            &self.narinfo_misses,
        );
        counter(
            "nar_requests_total",
            "NAR requests that started a body.",
            &self.nar_requests,
        );
        counter(
            "nar_bytes_total",
            "NAR body bytes sent, before transport compression.",
            &self.nar_bytes,
        );
        counter(
            "bad_requests_total",
            "Requests refused as malformed.",
            &self.bad_requests,
        );
        counter(
            "errors_total",
            "Requests that failed inside the cache.",
            &self.errors,
        );
        let name = "peerix_narinfo_duration_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Time to answer a narinfo request.\n# TYPE {name} histogram"
        );
        let mut cumulative = 0;
        for (bound, count) in BUCKETS.iter().zip(&self.narinfo_seconds_buckets) {
            cumulative += count.load(Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let total = self.narinfo_seconds_count.load(Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {total}");
        let sum = self.narinfo_seconds_sum_micros.load(Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {total}");
        out
    }
}
