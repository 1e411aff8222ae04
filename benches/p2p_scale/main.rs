//! Scale benchmark: Peerix with 100,000 indexed store paths, next to a baseline of 1,000 paths
//! measured in the same run.
//!
//! Building 100k real paths with Nix is too slow, so each store is synthetic: a chroot Nix store
//! (`<root>/nix/store/<hash>-p<i>`, every path the same tiny regular file) with a Nix database
//! (`ValidPaths`, `Refs`) whose rows carry the real NAR hash and size of that file. Store hashes
//! are distinct, valid nixbase32 and random per run.
//!
//! For each store size, node A serves the store (`--offline`, libp2p on loopback); the benchmark
//! waits until `GET /status` reports every path indexed and the publication scan finished. Node B
//! starts on an empty store, knows only A's loopback address (`--bootstrap-peers`) and accepts
//! unsigned narinfos (`--no-verify`, the synthetic paths are unsigned); B then holds A's store
//! hashes in memory (index protocol). Measured over real HTTP/1.1 on 127.0.0.1 with 32 keep-alive
//! connections (http_front's load generator):
//! 1. narinfo misses on B (valid nixbase32 hashes nobody holds): req/s, p50/p99;
//! 2. narinfo misses on A (its own store) for comparison;
//! 3. narinfo hits on B (A's paths, fetched from A over libp2p): first each once over 25
//!    connections (cold: B asks A for every one), then under load (warm);
//! 4. peak RSS (VmHWM) of A and of B.
//!
//! Targets with 100k paths (reported, not asserted): peak RSS under 200 MiB, B's miss p99 under
//! 5 ms. Run:
//!
//! ```text
//! cargo bench --bench p2p_scale
//! ```
//!
//! The markdown table is printed and written to `target/bench-p2p_scale.md`.

#![forbid(unsafe_code)]

// Shared with http_front; servers.rs needs the fixture type, which this benchmark does not build.
#[path = "../http_front/bench_env.rs"]
mod bench_env;
#[allow(dead_code)]
#[path = "../http_front/fixture.rs"]
mod fixture;
#[path = "../http_front/http_client.rs"]
mod http_client;
#[allow(dead_code)]
#[path = "../http_front/load.rs"]
mod load;
#[path = "../p2p_front/peer_addr.rs"]
mod peer_addr;
#[allow(dead_code)]
#[path = "../p2p_front/scan_wait.rs"]
mod scan_wait;
#[allow(dead_code)]
#[path = "../http_front/servers.rs"]
mod servers;

#[allow(dead_code)] // The bench registers no path after generating.
#[path = "../../tests/common/synthetic_store.rs"]
mod synthetic_store;

mod report;

use std::collections::HashSet;
use std::error::Error;
use std::ffi::OsStr;
use std::time::{Duration, Instant};

use tokio::runtime::Runtime;

use bench_env::{load_average, write_report};
use fixture::miss_hashes;
use http_client::HttpConnection;
use load::{each_once, narinfo_load, NarinfoMeasurement, Targets};
use peer_addr::loopback_p2p_addr;
use report::render_report;
use scan_wait::{get_status, scan_finished};
use servers::{spawn_peerix, ServerProcess};
use synthetic_store::SyntheticStore;
pub(crate) use synthetic_store::{nar_of_file, FILE_CONTENTS};

type BenchResult<T> = Result<T, Box<dyn Error + Send + Sync>>;

// The names the shared modules read from the crate root (fixture.rs and the NAR part of load.rs
// are not used here).
const SMALL_PATHS: usize = 1000;
const BIG_NAR_BYTES: u64 = 256 * 1024 * 1024;
const NAR_FETCHES: u32 = 4;
const CONNECTIONS: usize = 32;
/// Concurrent connections of the cold pass: Nix's default `http-connections`.
const COLD_CONNECTIONS: usize = 25;
const WARM_UP: Duration = Duration::from_millis(500);
const MEASURED: Duration = Duration::from_secs(3);

/// The baseline first, then the store under test.
const STORE_SIZES: [usize; 2] = [1_000, 100_000];
const LOAD_THREADS: usize = 2;
/// Distinct miss hashes and hit hashes the load generator cycles through.
const MISS_TARGETS: usize = 10_000;
const HIT_TARGETS: usize = 1_000;
const ADDR_TIMEOUT: Duration = Duration::from_secs(10);
/// How long A may take to index and scan the largest store.
const SCAN_TIMEOUT: Duration = Duration::from_secs(540);
const SCAN_POLL: Duration = Duration::from_millis(100);
/// How long B may take to learn every probe hash of A's after it serves the first.
const INDEX_TIMEOUT: Duration = Duration::from_secs(120);
const LOOPBACK_TCP: &str = "/ip4/127.0.0.1/tcp/0";

const TARGET_RSS_MIB: f64 = 200.0;
const TARGET_MISS_P99_MS: f64 = 5.0;
const TARGET_HIT_P99_MS: f64 = 20.0;

/// Everything measured on one store size.
struct ScaleResults {
    paths: usize,
    generated_in: Duration,
    /// From A reporting its HTTP address to `indexed_paths` == paths with the scan finished.
    a_scanned_in: Option<Duration>,
    a_status: Option<String>,
    /// From B reporting its HTTP address to B serving every probe hash of A's.
    b_ready_in: Option<Duration>,
    b_misses: Option<NarinfoMeasurement>,
    a_misses: Option<NarinfoMeasurement>,
    /// Each hit target asked once, before any other hit: B asks A for every one.
    b_cold_hits: Option<NarinfoMeasurement>,
    b_hits: Option<NarinfoMeasurement>,
    a_rss_kib: Option<u64>,
    b_rss_kib: Option<u64>,
    /// A's peak RSS once its scan finished, before B connected.
    a_rss_after_scan_kib: Option<u64>,
    failures: Vec<String>,
}

impl ScaleResults {
    fn new(paths: usize) -> Self {
        Self {
            paths,
            generated_in: Duration::ZERO,
            a_scanned_in: None,
            a_status: None,
            b_ready_in: None,
            b_misses: None,
            a_misses: None,
            b_cold_hits: None,
            b_hits: None,
            a_rss_kib: None,
            b_rss_kib: None,
            a_rss_after_scan_kib: None,
            failures: Vec::new(),
        }
    }
}

/// Polls `GET /status` until `indexed_paths` == `paths` and the scan has finished; returns the
/// last answer.
fn wait_until_indexed(
    runtime: &Runtime,
    node: &ServerProcess,
    paths: usize,
) -> BenchResult<serde_json::Value> {
    let deadline = Instant::now() + SCAN_TIMEOUT;
    loop {
        let status = get_status(runtime, node)?.ok_or("GET /status: HTTP 404")?;
        let indexed = status["indexed_paths"].as_u64() == Some(paths as u64);
        if scan_finished(&status) && indexed {
            return Ok(status);
        }
        if Instant::now() >= deadline {
            return Err(format!("A not indexed within {SCAN_TIMEOUT:?}: {status}").into());
        }
        std::thread::sleep(SCAN_POLL);
    }
}

/// Waits until B answers 200 for every probe hash.
fn wait_until_known(runtime: &Runtime, node: &ServerProcess, probes: &[&str]) -> BenchResult<()> {
    let deadline = Instant::now() + INDEX_TIMEOUT;
    for probe in probes {
        let target = format!("/{probe}.narinfo");
        loop {
            let status = runtime.block_on(async {
                let mut connection = HttpConnection::connect(node.addr).await.ok()?;
                Some(connection.get_text(&target).await.ok()?.status)
            });
            if status == Some(200) {
                break;
            }
            if Instant::now() >= deadline {
                return Err(format!("B never served {probe} (last: {status:?})").into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    Ok(())
}

fn measure(
    runtime: &Runtime,
    label: &str,
    server: &ServerProcess,
    hashes: &[String],
    expected_status: u16,
) -> NarinfoMeasurement {
    let targets = Targets::narinfos(hashes);
    let stats = runtime.block_on(narinfo_load(server.addr, targets));
    let m = NarinfoMeasurement::from_stats(&stats, expected_status);
    eprintln!(
        "  {label}: {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, {} errors, {} wrong status",
        m.requests_per_s, m.p50_ms, m.p99_ms, m.errors, m.wrong_status
    );
    m
}

fn check(results: &mut ScaleResults, label: &str, m: &NarinfoMeasurement) {
    if m.errors > 0 {
        results
            .failures
            .push(format!("{label}: {} failed requests", m.errors));
    }
    if m.wrong_status > 0 {
        results
            .failures
            .push(format!("{label}: {} wrong statuses", m.wrong_status));
    }
}

/// Generates the store, starts A and B on it and measures; failures end up in the results.
fn run_scale(runtime: &Runtime, paths: usize) -> ScaleResults {
    let mut results = ScaleResults::new(paths);
    if let Err(e) = run_scale_inner(runtime, &mut results) {
        eprintln!("  {paths} paths: {e}");
        results.failures.push(e.to_string());
    }
    results
}

fn run_scale_inner(runtime: &Runtime, results: &mut ScaleResults) -> BenchResult<()> {
    let paths = results.paths;
    eprintln!("p2p_scale: {paths} paths: generating the store");
    let store = SyntheticStore::generate(paths)?;
    results.generated_in = store.generated_in;
    eprintln!("  generated in {:.2?}", store.generated_in);

    let mut a = spawn_peerix(
        "peerix A",
        &store.root,
        &[OsStr::new("--listen-addrs"), OsStr::new(LOOPBACK_TCP)],
    )?;
    let a_started = Instant::now();
    let status = wait_until_indexed(runtime, &a, paths)?;
    results.a_scanned_in = Some(a_started.elapsed());
    results.a_status = Some(status.to_string());
    results.a_rss_after_scan_kib = a.peak_rss_kib();
    eprintln!(
        "  A indexed and scanned in {:.2?}: {status}",
        a_started.elapsed()
    );
    a.wait_until_serving(runtime, &store.hashes[0])?;
    let a_p2p = loopback_p2p_addr(&a, ADDR_TIMEOUT)?;

    let b_store = tempfile::Builder::new()
        .prefix("peerix-bench-p2p-scale-empty-")
        .tempdir()?;
    let b = spawn_peerix(
        "peerix B",
        b_store.path(),
        &[
            OsStr::new("--listen-addrs"),
            OsStr::new(LOOPBACK_TCP),
            OsStr::new("--bootstrap-peers"),
            OsStr::new(&a_p2p),
            OsStr::new("--no-verify"),
        ],
    )?;
    let b_started = Instant::now();
    // The first, middle and last paths: B holds all of A's index once it serves these.
    let probes = [
        store.hashes[0].as_str(),
        store.hashes[paths / 2].as_str(),
        store.hashes[paths - 1].as_str(),
    ];
    wait_until_known(runtime, &b, &probes)?;
    results.b_ready_in = Some(b_started.elapsed());
    eprintln!("  B served A's paths after {:.2?}", b_started.elapsed());

    let taken: HashSet<&str> = store.hashes.iter().map(String::as_str).collect();
    let misses = miss_hashes(MISS_TARGETS, &taken);
    let step = (paths / HIT_TARGETS).max(1);
    let hits: Vec<String> = store.hashes.iter().step_by(step).cloned().collect();

    let m = measure(runtime, "B narinfo misses", &b, &misses, 404);
    check(results, "B narinfo misses", &m);
    results.b_misses = Some(m);
    let m = measure(runtime, "A narinfo misses", &a, &misses, 404);
    check(results, "A narinfo misses", &m);
    results.a_misses = Some(m);
    let stats = runtime.block_on(each_once(
        b.addr,
        Targets::narinfos(&hits),
        COLD_CONNECTIONS,
    ));
    let m = NarinfoMeasurement::from_stats(&stats, 200);
    eprintln!(
        "  B narinfo cold hits: p50 {:.2} ms, p99 {:.2} ms, {} errors, {} wrong status",
        m.p50_ms, m.p99_ms, m.errors, m.wrong_status
    );
    check(results, "B narinfo cold hits", &m);
    results.b_cold_hits = Some(m);
    let m = measure(runtime, "B narinfo hits", &b, &hits, 200);
    check(results, "B narinfo hits", &m);
    results.b_hits = Some(m);

    results.a_rss_kib = a.peak_rss_kib();
    results.b_rss_kib = b.peak_rss_kib();
    eprintln!(
        "  peak RSS: A {:?} KiB, B {:?} KiB",
        results.a_rss_kib, results.b_rss_kib
    );
    drop(b);
    drop(a);
    Ok(())
}

fn main() -> BenchResult<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(LOAD_THREADS)
        .enable_all()
        .build()?;
    let load_at_start = load_average();
    let results: Vec<ScaleResults> = STORE_SIZES
        .iter()
        .map(|&paths| run_scale(&runtime, paths))
        .collect();
    let report = render_report(&results, &load_at_start);
    println!("{report}");
    let file = write_report("bench-p2p_scale.md", &report)?;
    eprintln!("p2p_scale: table written to {}", file.display());
    Ok(())
}
