//! Narinfo latencies on a node's HTTP front as Nix sees them: one request after another, each
//! over a fresh connection (a minimal HTTP/1.1 client on 127.0.0.1), and their percentiles.
//! Included by `tests/common` and `benches/nar_flood`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// The bound on the front's narinfo p99 while peers flood the node.
pub const NARINFO_P99_LIMIT_MS: f64 = 5.0;
/// A single answer may take this long before the client gives up.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// One GET of `path` over a fresh connection to `127.0.0.1:port`: (status, body).
pub fn get(port: u16, path: &str) -> (u16, Vec<u8>) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete response");
    let head = String::from_utf8_lossy(&raw[..split]);
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status");
    (status, raw[split + 4..].to_vec())
}

/// Latencies of narinfo requests for the paths of `hashes` in turn, for as long as `keep_going`
/// holds (at least one request); panics on any answer but 200.
pub fn narinfo_latencies(
    port: u16,
    hashes: &[String],
    keep_going: impl Fn() -> bool,
) -> Vec<Duration> {
    let mut latencies = Vec::new();
    for hash in hashes.iter().cycle() {
        let asked = Instant::now();
        let (status, _) = get(port, &format!("/{hash}.narinfo"));
        assert_eq!(status, 200, "narinfo of {hash}");
        latencies.push(asked.elapsed());
        if !keep_going() {
            break;
        }
    }
    latencies
}

/// True for the next `duration`.
pub fn for_the_next(duration: Duration) -> impl Fn() -> bool + Send + 'static {
    let end = Instant::now() + duration;
    move || Instant::now() < end
}

#[derive(Clone, Copy, Debug)]
pub struct Percentiles {
    pub count: usize,
    pub p50: f64,
    pub p99: f64,
}

impl Percentiles {
    pub fn of(latencies: &mut [Duration]) -> Self {
        Self {
            count: latencies.len(),
            p50: percentile_ms(latencies, 0.5),
            p99: percentile_ms(latencies, 0.99),
        }
    }

    /// The bound on the p99; on a machine so loaded (other builds sharing its cores)
    /// that the front alone (`self`) misses it, twice the p99 it had alone in the same run.
    pub fn p99_limit_ms(&self) -> f64 {
        NARINFO_P99_LIMIT_MS.max(2.0 * self.p99)
    }
}

impl std::fmt::Display for Percentiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} narinfos, p50 {:.2} ms, p99 {:.2} ms",
            self.count, self.p50, self.p99
        )
    }
}

fn percentile_ms(latencies: &mut [Duration], p: f64) -> f64 {
    if latencies.is_empty() {
        return 0.0;
    }
    latencies.sort_unstable();
    let at = ((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len()) - 1;
    latencies[at].as_secs_f64() * 1000.0
}

/// Measures the front on a blocking thread while `keep_going` holds, so the async workers of
/// the caller (a flooding peer, say) are not held up by the client.
pub async fn front_percentiles(
    port: u16,
    hashes: Vec<String>,
    keep_going: impl Fn() -> bool + Send + 'static,
) -> Percentiles {
    tokio::task::spawn_blocking(move || {
        Percentiles::of(&mut narinfo_latencies(port, &hashes, keep_going))
    })
    .await
    .unwrap()
}
