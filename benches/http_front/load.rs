//! The load generator: narinfo requests over many keep-alive connections, their counts and
//! latency histogram, and NAR streaming throughput over one connection.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::http_client::HttpConnection;
use crate::{BenchResult, CONNECTIONS, MEASURED, NAR_FETCHES, WARM_UP};

const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
const ERROR_BACKOFF: Duration = Duration::from_millis(10);

/// Request targets handed out round-robin across all connections.
pub(crate) struct Targets {
    paths: Vec<String>,
    next: AtomicUsize,
}

impl Targets {
    pub(crate) fn narinfos(hashes: &[String]) -> Arc<Self> {
        Arc::new(Self {
            paths: hashes.iter().map(|h| format!("/{h}.narinfo")).collect(),
            next: AtomicUsize::new(0),
        })
    }

    /// Starts the next measurement at the first target again.
    pub(crate) fn rewind(&self) {
        self.next.store(0, Ordering::Relaxed);
    }

    fn next(&self) -> &str {
        let index = self.next.fetch_add(1, Ordering::Relaxed) % self.paths.len();
        &self.paths[index]
    }

    /// The next target not handed out yet, if any (for one pass over them all).
    fn take(&self) -> Option<&str> {
        let index = self.next.fetch_add(1, Ordering::Relaxed);
        self.paths.get(index).map(String::as_str)
    }
}

/// Requests count when they start at or after `measure_from`; no request starts after `end`.
#[derive(Clone, Copy)]
struct Window {
    measure_from: Instant,
    end: Instant,
}

/// Counts and latencies (µs) of the measured requests; only 200 and 404 answers are timed.
pub(crate) struct LoadStats {
    latency_us: Histogram<u64>,
    ok: u64,
    not_found: u64,
    errors: u64,
    /// The time the counted requests were made in.
    measured_for: Duration,
}

impl LoadStats {
    fn new() -> Self {
        Self {
            latency_us: Histogram::new_with_bounds(1, 60_000_000, 3)
                .expect("valid histogram bounds"),
            ok: 0,
            not_found: 0,
            errors: 0,
            measured_for: MEASURED,
        }
    }

    /// One request's outcome: `None` when it failed (I/O error or timeout).
    fn record(&mut self, status: Option<u16>, latency: Duration) {
        match status {
            Some(200) => self.ok += 1,
            Some(404) => self.not_found += 1,
            Some(_) | None => {
                self.errors += 1;
                return;
            }
        }
        self.latency_us.saturating_record(micros(latency));
    }

    fn merge(&mut self, other: &Self) {
        self.latency_us
            .add(&other.latency_us)
            .expect("histograms with equal bounds");
        self.ok += other.ok;
        self.not_found += other.not_found;
        self.errors += other.errors;
    }
}

#[derive(Clone, Copy)]
pub(crate) struct NarinfoMeasurement {
    pub(crate) requests_per_s: f64,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) errors: u64,
    /// Answers with the other valid status: 404 for a hit, 200 for a miss.
    pub(crate) wrong_status: u64,
}

impl NarinfoMeasurement {
    pub(crate) fn from_stats(stats: &LoadStats, expected_status: u16) -> Self {
        let answered = stats.ok + stats.not_found;
        let quantile_ms = |q| stats.latency_us.value_at_quantile(q) as f64 / 1000.0;
        Self {
            requests_per_s: answered as f64 / stats.measured_for.as_secs_f64(),
            p50_ms: quantile_ms(0.50),
            p99_ms: quantile_ms(0.99),
            errors: stats.errors,
            wrong_status: if expected_status == 200 {
                stats.not_found
            } else {
                stats.ok
            },
        }
    }
}

/// `CONNECTIONS` keep-alive connections hammering `targets` for warm-up + measured time.
pub(crate) async fn narinfo_load(addr: SocketAddr, targets: Arc<Targets>) -> LoadStats {
    let started = Instant::now();
    let window = Window {
        measure_from: started + WARM_UP,
        end: started + WARM_UP + MEASURED,
    };
    let tasks: Vec<_> = (0..CONNECTIONS)
        .map(|_| tokio::spawn(drive_connection(addr, targets.clone(), window)))
        .collect();
    merged(tasks).await
}

/// The connections' stats together; a connection task that died counts as one error.
async fn merged(tasks: Vec<tokio::task::JoinHandle<LoadStats>>) -> LoadStats {
    let mut total = LoadStats::new();
    for task in tasks {
        match task.await {
            Ok(stats) => total.merge(&stats),
            Err(_) => total.errors += 1,
        }
    }
    total
}

/// Every target once, over `connections` keep-alive connections, every request measured: what
/// a client asking for paths the server has not been asked for before sees.
pub(crate) async fn each_once(
    addr: SocketAddr,
    targets: Arc<Targets>,
    connections: usize,
) -> LoadStats {
    let started = Instant::now();
    let tasks: Vec<_> = (0..connections)
        .map(|_| {
            let targets = targets.clone();
            tokio::spawn(async move {
                let (mut stats, mut connection) = (LoadStats::new(), None);
                while let Some(target) = targets.take() {
                    let started = Instant::now();
                    let request = request(&mut connection, addr, target);
                    let status = tokio::time::timeout(REQUEST_TIMEOUT, request).await;
                    let status = status.ok().and_then(Result::ok);
                    stats.record(status, started.elapsed());
                    if status.is_none() {
                        connection = None;
                    }
                }
                stats
            })
        })
        .collect();
    let mut total = merged(tasks).await;
    total.measured_for = started.elapsed();
    total
}

async fn drive_connection(addr: SocketAddr, targets: Arc<Targets>, window: Window) -> LoadStats {
    let mut stats = LoadStats::new();
    let mut connection = None;
    loop {
        let started = Instant::now();
        if started >= window.end {
            return stats;
        }
        let request = request(&mut connection, addr, targets.next());
        let status = match tokio::time::timeout(REQUEST_TIMEOUT, request).await {
            Ok(Ok(status)) => Some(status),
            Ok(Err(_)) | Err(_) => None,
        };
        let latency = started.elapsed();
        if started >= window.measure_from {
            stats.record(status, latency);
        }
        if status.is_none() {
            // Broken, or abandoned mid-response: start over on a new connection.
            connection = None;
            tokio::time::sleep(ERROR_BACKOFF).await;
        }
    }
}

/// One GET on the connection in `slot`, (re)connecting first when it is empty.
async fn request(
    slot: &mut Option<HttpConnection>,
    addr: SocketAddr,
    target: &str,
) -> io::Result<u16> {
    let connection = match slot.take() {
        Some(connection) => connection,
        None => HttpConnection::connect(addr).await?,
    };
    let connection = slot.insert(connection);
    Ok(connection.get_discarding(target).await?.0)
}

fn micros(elapsed: Duration) -> u64 {
    u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX)
}

pub(crate) struct NarTarget {
    url: String,
    size: u64,
}

/// The NAR URL and size from the narinfo of `hash`, as the server itself advertises them.
pub(crate) async fn nar_target(addr: SocketAddr, hash: &str) -> BenchResult<NarTarget> {
    let mut connection = HttpConnection::connect(addr).await?;
    let narinfo = connection.get_text(&format!("/{hash}.narinfo")).await?;
    if narinfo.status != 200 {
        return Err(format!("narinfo of the big path: HTTP {}", narinfo.status).into());
    }
    let field = |name: &str| {
        narinfo
            .body
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .map(str::trim)
            .ok_or_else(|| format!("narinfo without {name}"))
    };
    Ok(NarTarget {
        url: format!("/{}", field("URL:")?),
        size: field("NarSize:")?.parse()?,
    })
}

/// MB/s (1e6 bytes/s) of `NAR_FETCHES` whole-NAR GETs on one connection, after one untimed GET.
pub(crate) async fn nar_throughput(addr: SocketAddr, target: &NarTarget) -> BenchResult<f64> {
    let mut connection = HttpConnection::connect(addr).await?;
    fetch_nar(&mut connection, target).await?;
    let started = Instant::now();
    for _ in 0..NAR_FETCHES {
        fetch_nar(&mut connection, target).await?;
    }
    let bytes = target.size * u64::from(NAR_FETCHES);
    Ok(bytes as f64 / started.elapsed().as_secs_f64() / 1e6)
}

async fn fetch_nar(connection: &mut HttpConnection, target: &NarTarget) -> BenchResult<()> {
    let (status, bytes) = connection.get_discarding(&target.url).await?;
    if status != 200 || bytes != target.size {
        return Err(format!("NAR: HTTP {status}, {bytes} of {} bytes", target.size).into());
    }
    Ok(())
}
