//! The draws of store paths and the `/find` load: concurrent keep-alive clients, each request's
//! latency recorded.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::http_client::HttpConnection;

/// Reproducible random draws (xorshift) of path numbers below a bound.
pub struct Draws {
    state: u64,
    pool: Vec<u32>,
}

impl Draws {
    pub fn new(paths: u32) -> Self {
        Self {
            state: 0x2545_f491_4f6c_dd1d,
            pool: (0..paths).collect(),
        }
    }

    fn next(&mut self) -> u64 {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        self.state
    }

    pub fn below(&mut self, bound: u32) -> u32 {
        (self.next() % u64::from(bound)) as u32
    }

    /// `count` distinct path numbers (a partial Fisher-Yates shuffle).
    pub fn distinct(&mut self, count: usize) -> Vec<u32> {
        let len = self.pool.len();
        for i in 0..count.min(len) {
            let j = i + (self.next() as usize) % (len - i);
            self.pool.swap(i, j);
        }
        self.pool[..count.min(len)].to_vec()
    }
}

pub fn percentile(times: &mut [Duration], q: f64) -> Duration {
    times.sort();
    times
        .get(((times.len().saturating_sub(1)) as f64 * q) as usize)
        .copied()
        .unwrap_or_default()
}

pub struct FindFigures {
    pub per_second: f64,
    pub p50: Duration,
    pub p99: Duration,
}

/// Each client sends its targets one after another on one connection; all run at once.
pub async fn find_load(addr: SocketAddr, targets: Vec<Vec<String>>) -> FindFigures {
    let requests: usize = targets.iter().map(Vec::len).sum();
    let started = Instant::now();
    let clients: Vec<_> = targets
        .into_iter()
        .map(|targets| {
            tokio::spawn(async move {
                let mut connection = HttpConnection::connect(addr).await.expect("a connection");
                let mut latencies = Histogram::<u64>::new(3).expect("a histogram");
                for target in targets {
                    let sent = Instant::now();
                    let (status, _) = connection.get_discarding(&target).await.expect("an answer");
                    assert_eq!(status, 200, "{target}");
                    latencies.saturating_record(sent.elapsed().as_micros() as u64);
                }
                latencies
            })
        })
        .collect();
    let mut all = Histogram::<u64>::new(3).expect("a histogram");
    for client in clients {
        all.add(client.await.expect("a client"))
            .expect("same bounds");
    }
    let elapsed = started.elapsed();
    FindFigures {
        per_second: requests as f64 / elapsed.as_secs_f64(),
        p50: Duration::from_micros(all.value_at_quantile(0.5)),
        p99: Duration::from_micros(all.value_at_quantile(0.99)),
    }
}
