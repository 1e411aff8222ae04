//! Throughput over the last minutes, for the dashboard's graph: bytes per second served to Nix and
//! over peer-to-peer connections in each direction, sampled from the same counters as `/status`
//! and `/metrics`. Kept on the node so a page opened now shows the minutes before it.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use peerix_node::NodeHandle;
use serde_json::{json, Value};

use crate::fetch::{Served, Source};

/// Time between samples.
pub const INTERVAL: Duration = Duration::from_secs(2);
/// Samples kept: ten minutes.
pub const KEPT: usize = 300;

#[derive(Clone, Copy, Default)]
struct Totals {
    to_nix: u64,
    p2p_in: u64,
    p2p_out: u64,
}

struct Sample {
    at: Instant,
    /// Bytes per second over the interval that ends at `at`.
    to_nix: f64,
    p2p_in: f64,
    p2p_out: f64,
}

#[derive(Default)]
pub struct Throughput {
    samples: Mutex<VecDeque<Sample>>,
}

impl Throughput {
    /// A record kept current every [`INTERVAL`] while someone holds it.
    pub fn watch(served: Arc<Served>, node: NodeHandle) -> Arc<Self> {
        let throughput = Arc::new(Self::default());
        let kept = Arc::downgrade(&throughput);
        tokio::spawn(sample(kept, served, node));
        throughput
    }

    fn record(&self, before: (Instant, Totals), now: (Instant, Totals)) {
        let seconds = now.0.duration_since(before.0).as_secs_f64();
        if seconds <= 0.0 {
            return;
        }
        let rate = |after: u64, before: u64| after.saturating_sub(before) as f64 / seconds;
        let (b, a) = (before.1, now.1);
        let sample = Sample {
            at: now.0,
            to_nix: rate(a.to_nix, b.to_nix),
            p2p_in: rate(a.p2p_in, b.p2p_in),
            p2p_out: rate(a.p2p_out, b.p2p_out),
        };
        if let Ok(mut samples) = self.samples.lock() {
            if samples.len() >= KEPT {
                samples.pop_front();
            }
            samples.push_back(sample);
        }
    }

    /// The samples, oldest first, in bytes per second.
    pub fn json(&self) -> Value {
        let samples: Vec<Value> = self.samples.lock().map_or_else(
            |_| Vec::new(),
            |samples| {
                samples
                    .iter()
                    .map(|s| {
                        json!({
                            "seconds_ago": s.at.elapsed().as_secs_f64(),
                            "to_nix": s.to_nix,
                            "p2p_in": s.p2p_in,
                            "p2p_out": s.p2p_out,
                        })
                    })
                    .collect()
            },
        );
        json!({
            "interval_seconds": INTERVAL.as_secs(),
            "samples": samples,
        })
    }
}

async fn sample(kept: Weak<Throughput>, served: Arc<Served>, node: NodeHandle) {
    let totals = || async {
        let to_nix = Source::ALL.iter().map(|s| served.nar_bytes(*s)).sum();
        let (p2p_in, p2p_out) = node
            .status()
            .await
            .map_or((0, 0), |s| (s.bytes_in, s.bytes_out));
        (
            Instant::now(),
            Totals {
                to_nix,
                p2p_in,
                p2p_out,
            },
        )
    };
    let mut ticks = tokio::time::interval(INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    let mut before = totals().await;
    loop {
        ticks.tick().await;
        let now = totals().await;
        let Some(throughput) = kept.upgrade() else {
            return;
        };
        throughput.record(before, now);
        before = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_per_second_over_each_interval_and_only_the_latest_are_kept() {
        let throughput = Throughput::default();
        let start = Instant::now();
        let totals = |n: u64| Totals {
            to_nix: 1000 * n,
            p2p_in: 500 * n,
            p2p_out: 0,
        };
        for n in 0..(KEPT as u64 + 10) {
            let at = |n: u64| start + Duration::from_secs(2 * n);
            throughput.record((at(n), totals(n)), (at(n + 1), totals(n + 1)));
        }
        let json = throughput.json();
        let samples = json["samples"].as_array().unwrap();
        assert_eq!(samples.len(), KEPT);
        assert_eq!(samples[0]["to_nix"], 500.0);
        assert_eq!(samples[0]["p2p_in"], 250.0);
        assert_eq!(samples[0]["p2p_out"], 0.0);
    }
}
