//! Peer-to-peer front benchmark: what a Nix client sees from a node whose store is empty and
//! which substitutes everything from a peer, next to that peer's own front, same run, same store.
//!
//! Node A serves the fixture store (signing with a key made by `peerix keygen`); node B starts
//! with an empty store, knows only A's loopback address (`--bootstrap-peers`) and trusts only A's
//! key. B learns A's paths over libp2p and answers narinfo requests by asking A
//! (/peerix/narinfo/1.0.0) and NAR requests by streaming from A (/peerix/nar/1.0.0, hash-checked;
//! with A the only holder, B never spreads a NAR over Bitswap).
//!
//! Measured over real HTTP/1.1 on 127.0.0.1, on A's front (the baseline: a local store) and on
//! B's front (the same paths, through B):
//! 1. narinfo hits: requests/s and p50/p99, round-robin over the 1000 small paths;
//! 2. narinfo misses: valid nixbase32 hashes neither node holds (404s);
//! 3. one 256 MiB NAR over one connection, in MB/s (1e6 bytes/s); plus the peak RSS (VmHWM) of
//!    each serving process before and after it.
//!
//! The load generator and fixture are http_front's (`#[path]` modules below). Every round starts
//! a fresh A and B and waits for A's publication scan to finish; the two fronts alternate (AB,
//! BA, AB) over 3 rounds and the best round of each is compared. The targets for B are reported,
//! not asserted. Only 127.0.0.1 is used: both nodes run with `--offline` and listen on loopback
//! only. Run:
//!
//! ```text
//! cargo bench --bench p2p_front
//! ```
//!
//! Then, in the same run, its own rounds (multi_source.rs): the 256 MiB NAR through a fresh B from
//! one holder vs from two (multi-source Bitswap, every holder capped at 50 MB/s), and the
//! publication scan's rate vs `sha256sum` of the same NAR.
//!
//! Last, its own rounds too (silent_holders.rs): first-time narinfos through B when three of four
//! holders are frozen, against B with the honest holder alone.
//!
//! Then (wan_mode.rs): first-time narinfos and misses through B in `--mode wan`, with a tracker
//! on loopback, against B in `--mode libp2p`.
//!
//! Then (bulk.rs): the NAR through B and `peerix ipfs cat` through the CLI, each against one
//! core's `openssl speed -evp sha256` in the same rounds.
//!
//! `PEERIX_BENCH_SECTIONS` (comma-separated: `fronts`, `multi`, `silent`, `wan`, `bulk`; default
//! all) runs only some of these.
//!
//! The markdown tables are printed and written to `target/bench-p2p_front.md`.

#![forbid(unsafe_code)]

// Shared with http_front, which uses the parts this benchmark does not (harmonia, store layout).
#[path = "../http_front/bench_env.rs"]
mod bench_env;
#[allow(dead_code)]
#[path = "../http_front/fixture.rs"]
mod fixture;
#[path = "../http_front/http_client.rs"]
mod http_client;
#[path = "../http_front/load.rs"]
mod load;
#[allow(dead_code)]
#[path = "../http_front/servers.rs"]
mod servers;
#[path = "../../tests/common/tracker_process.rs"]
mod tracker_process;

mod bulk;
mod holder;
mod multi_source;
mod multi_source_report;
mod peer_addr;
mod report;
mod scan_wait;
mod silent_holders;
mod wan_mode;

use std::collections::HashSet;
use std::error::Error;
use std::ffi::OsStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::runtime::Runtime;

use bench_env::{load_average, write_report};
use fixture::{miss_hashes, Fixture};
use holder::{spawn_signing_holder, Keys};
use http_client::HttpConnection;
use load::{each_once, nar_target, nar_throughput, narinfo_load, NarinfoMeasurement, Targets};
use multi_source::{MultiSource, MultiSourceResults};
use peer_addr::loopback_p2p_addr;
use report::{environment_facts, render_report};
use scan_wait::wait_until_scanned;
use servers::{spawn_peerix, ServerProcess};
use silent_holders::SilentHoldersResults;
use wan_mode::WanResults;

type BenchResult<T> = Result<T, Box<dyn Error + Send + Sync>>;

// The names the shared modules read from the crate root; the same values as http_front.
const SMALL_PATHS: usize = 1000;
const BIG_NAR_BYTES: u64 = 256 * 1024 * 1024;
const CONNECTIONS: usize = 32;
const WARM_UP: Duration = Duration::from_millis(500);
const MEASURED: Duration = Duration::from_secs(3);
const NAR_FETCHES: u32 = 4;
/// Concurrent connections of the cold pass: Nix's default `http-connections`.
const COLD_CONNECTIONS: usize = 25;

const ROUNDS: usize = 3;
const LOAD_THREADS: usize = 2;
/// Five whole 256 MiB NARs through B; generous, so a slow path shows as a number, not an error.
const NAR_TIMEOUT: Duration = Duration::from_secs(300);
/// How long A's node may take to report a loopback TCP listen address.
const ADDR_TIMEOUT: Duration = Duration::from_secs(10);
const LOOPBACK_TCP: &str = "/ip4/127.0.0.1/tcp/0";
const KEY_NAME: &str = "p2p-bench-a-1";

/// Targets for the front through B (reported, not asserted).
const TARGET_NAR_MB_PER_S: f64 = 400.0;
const TARGET_HIT_P99_MS: f64 = 20.0;
const TARGET_MISS_P99_MS: f64 = 5.0;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Front {
    /// A's own front, answering from its local store.
    Baseline,
    /// B's front, answering from A over libp2p.
    ThroughB,
}

impl Front {
    const BOTH: [Self; 2] = [Self::Baseline, Self::ThroughB];

    fn name(self) -> &'static str {
        match self {
            Self::Baseline => "baseline (A, local store)",
            Self::ThroughB => "through B (from A over libp2p)",
        }
    }
}

/// One front's best results over all rounds, and what went wrong on the way.
#[derive(Default)]
struct FrontResults {
    /// Every small path asked once, first thing in a round: B has to ask A for each.
    cold_hits: Option<NarinfoMeasurement>,
    hits: Option<NarinfoMeasurement>,
    misses: Option<NarinfoMeasurement>,
    nar_mb_per_s: Option<f64>,
    /// Peak RSS (VmHWM, KiB) of the serving process after the narinfo scenarios, highest over
    /// the rounds.
    rss_before_nar_kib: Option<u64>,
    /// Peak RSS (VmHWM, KiB) after the NAR fetches, highest over the rounds.
    rss_after_nar_kib: Option<u64>,
    /// Failed narinfo requests plus failed NAR measurements.
    errors: u64,
    /// 404s for paths A holds, and the hits answered in all (for their share).
    hit_404s: u64,
    hits_answered: u64,
    /// 200s for hashes nobody holds.
    miss_200s: u64,
    /// A narinfo without A's `Sig:` (B must pass on the signature its trust rests on).
    signature_missing: bool,
    /// Anything else that went wrong, one line each.
    failures: Vec<String>,
    /// Every round's figures, in the order run.
    rounds: Vec<RoundFigures>,
}

/// One round of one front, as the report lists them all.
#[derive(Clone, Copy)]
struct RoundFigures {
    cold_p99_ms: f64,
    hits_per_s: f64,
    hits_p99_ms: f64,
    misses_p99_ms: f64,
    nar_mb_per_s: Option<f64>,
}

impl FrontResults {
    fn record_narinfo(slot: &mut Option<NarinfoMeasurement>, measurement: NarinfoMeasurement) {
        if slot.is_none_or(|best| measurement.requests_per_s > best.requests_per_s) {
            *slot = Some(measurement);
        }
    }

    /// Cold passes are short, so the best is the one with the lowest p99, not the most req/s.
    fn record_cold(&mut self, measurement: NarinfoMeasurement) {
        if self
            .cold_hits
            .is_none_or(|best| measurement.p99_ms < best.p99_ms)
        {
            self.cold_hits = Some(measurement);
        }
    }
}

/// A on the fixture and B on an empty store, connected over loopback; both killed on drop.
struct Nodes {
    a: ServerProcess,
    b: ServerProcess,
    _b_store: tempfile::TempDir,
    /// From B reporting its HTTP address to B serving the probe narinfo.
    b_ready_after: Duration,
    /// From A reporting its HTTP address to the end of its publication scan, if it has one.
    a_scanned_after: Option<Duration>,
}

impl Nodes {
    fn start(runtime: &Runtime, fixture: &Fixture, keys: &Keys) -> BenchResult<Self> {
        let mut a = spawn_signing_holder("peerix A", fixture, keys)?;
        let a_started = Instant::now();
        a.wait_until_serving(runtime, &fixture.big_hash)?;
        let a_p2p = loopback_p2p_addr(&a, ADDR_TIMEOUT)?;

        let b_store = tempfile::Builder::new()
            .prefix("peerix-bench-p2p-empty-store-")
            .tempdir()?;
        let mut b = spawn_peerix(
            "peerix B",
            b_store.path(),
            &[
                OsStr::new("--listen-addrs"),
                OsStr::new(LOOPBACK_TCP),
                OsStr::new("--bootstrap-peers"),
                OsStr::new(&a_p2p),
                OsStr::new("--trusted-public-key"),
                OsStr::new(&keys.public),
            ],
        )?;
        let started = Instant::now();
        // Bounded (servers.rs): B's index of A's paths arrives shortly after they connect.
        b.wait_until_serving(runtime, &fixture.big_hash)
            .map_err(|e| format!("B never served A's big path: {e}"))?;
        let b_ready_after = started.elapsed();
        // The scan reads and hashes every NAR once after start: measuring while it runs would
        // charge whichever front goes first with it.
        let a_scanned = wait_until_scanned(runtime, &a)?.map(|_| a_started.elapsed());
        Ok(Self {
            a,
            b,
            _b_store: b_store,
            b_ready_after,
            a_scanned_after: a_scanned,
        })
    }

    fn server(&self, front: Front) -> &ServerProcess {
        match front {
            Front::Baseline => &self.a,
            Front::ThroughB => &self.b,
        }
    }
}

struct Bench<'a> {
    runtime: &'a Runtime,
    fixture: &'a Fixture,
    hit_targets: Arc<Targets>,
    miss_targets: Arc<Targets>,
}

impl Bench<'_> {
    /// Hits, misses, then the NAR, on one front of running nodes.
    fn measure(&self, front: Front, nodes: &Nodes, results: &mut FrontResults) {
        let server = nodes.server(front);
        // Before anything else asks for a small path (the signature probe included).
        self.hit_targets.rewind();
        let stats = self.runtime.block_on(each_once(
            server.addr,
            self.hit_targets.clone(),
            COLD_CONNECTIONS,
        ));
        let cold = NarinfoMeasurement::from_stats(&stats, 200);
        eprintln!(
            "  narinfo cold hits: p50 {:.2} ms, p99 {:.2} ms, {} errors, {} wrong status",
            cold.p50_ms, cold.p99_ms, cold.errors, cold.wrong_status
        );
        results.errors += cold.errors;
        results.hit_404s += cold.wrong_status;
        results.record_cold(cold);
        if !self.serves_signature(server) {
            results.signature_missing = true;
        }
        let (hits, answered) = self.narinfo("narinfo hits", server, &self.hit_targets, 200);
        results.errors += hits.errors;
        results.hit_404s += hits.wrong_status;
        results.hits_answered += answered;
        FrontResults::record_narinfo(&mut results.hits, hits);
        let (misses, _) = self.narinfo("narinfo misses", server, &self.miss_targets, 404);
        results.errors += misses.errors;
        results.miss_200s += misses.wrong_status;
        FrontResults::record_narinfo(&mut results.misses, misses);
        results.rss_before_nar_kib = results.rss_before_nar_kib.max(server.peak_rss_kib());
        let nar_mb_per_s = self.nar(server, results);
        results.rss_after_nar_kib = results.rss_after_nar_kib.max(server.peak_rss_kib());
        results.rounds.push(RoundFigures {
            cold_p99_ms: cold.p99_ms,
            hits_per_s: hits.requests_per_s,
            hits_p99_ms: hits.p99_ms,
            misses_p99_ms: misses.p99_ms,
            nar_mb_per_s,
        });
    }

    fn narinfo(
        &self,
        label: &str,
        server: &ServerProcess,
        targets: &Arc<Targets>,
        expected_status: u16,
    ) -> (NarinfoMeasurement, u64) {
        targets.rewind();
        let stats = self
            .runtime
            .block_on(narinfo_load(server.addr, targets.clone()));
        let measurement = NarinfoMeasurement::from_stats(&stats, expected_status);
        eprintln!(
            "  {label}: {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, {} errors, {} wrong status",
            measurement.requests_per_s,
            measurement.p50_ms,
            measurement.p99_ms,
            measurement.errors,
            measurement.wrong_status,
        );
        // `from_stats` divides the answered requests by the measured time.
        let answered = (measurement.requests_per_s * MEASURED.as_secs_f64()).round() as u64;
        (measurement, answered)
    }

    /// The NAR's rate, also kept in `results` if it is the best.
    fn nar(&self, server: &ServerProcess, results: &mut FrontResults) -> Option<f64> {
        let started = Instant::now();
        let measured = self.runtime.block_on(async {
            let target = nar_target(server.addr, &self.fixture.big_hash).await?;
            tokio::time::timeout(NAR_TIMEOUT, nar_throughput(server.addr, &target))
                .await
                .map_err(|_| format!("NAR streaming took over {NAR_TIMEOUT:?}"))?
        });
        match measured {
            Ok(mb_per_s) => {
                eprintln!("  NAR: {mb_per_s:.0} MB/s");
                results.nar_mb_per_s =
                    Some(results.nar_mb_per_s.map_or(mb_per_s, |b| b.max(mb_per_s)));
                Some(mb_per_s)
            }
            Err(e) => {
                eprintln!("  NAR: error after {:?}: {e}", started.elapsed());
                results.errors += 1;
                results
                    .failures
                    .push(format!("NAR failed after {:.1?}: {e}", started.elapsed()));
                None
            }
        }
    }

    /// Whether a hit's narinfo carries A's signature.
    fn serves_signature(&self, server: &ServerProcess) -> bool {
        let probe = format!("/{}.narinfo", self.fixture.small_hashes[0]);
        let narinfo = self.runtime.block_on(async {
            HttpConnection::connect(server.addr)
                .await?
                .get_text(&probe)
                .await
        });
        let marker = format!("Sig: {KEY_NAME}:");
        narinfo.is_ok_and(|n| n.status == 200 && n.body.lines().any(|l| l.starts_with(&marker)))
    }
}

fn main() -> BenchResult<()> {
    let load_at_start = load_average();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(LOAD_THREADS)
        .enable_all()
        .build()?;

    eprintln!("p2p_front: building the fixture store ...");
    let fixture = Fixture::build()?;
    let keys = Keys::generate()?;
    let taken: HashSet<&str> = fixture.small_hashes.iter().map(String::as_str).collect();
    let bench = Bench {
        runtime: &runtime,
        fixture: &fixture,
        hit_targets: Targets::narinfos(&fixture.small_hashes),
        miss_targets: Targets::narinfos(&miss_hashes(SMALL_PATHS, &taken)),
    };

    let sections = std::env::var("PEERIX_BENCH_SECTIONS").unwrap_or_default();
    let runs = |section: &str| sections.is_empty() || sections.split(',').any(|s| s == section);
    let mut results: [FrontResults; 2] = Default::default();
    let (mut b_ready_after, mut a_scanned_after) = (Vec::new(), Vec::new());
    for round in (0..ROUNDS).filter(|_| runs("fronts")) {
        eprintln!("p2p_front: round {}/{ROUNDS}, starting A and B", round + 1);
        let nodes = match Nodes::start(&runtime, &fixture, &keys) {
            Ok(nodes) => nodes,
            Err(e) => {
                // Without B this round has nothing to compare; say so and go on.
                eprintln!("  {e}");
                let failure = format!("round {}: {e}", round + 1);
                results[Front::ThroughB as usize].failures.push(failure);
                continue;
            }
        };
        eprintln!(
            "  B served A's big path {:.2?} after it reported its HTTP address",
            nodes.b_ready_after
        );
        b_ready_after.push(nodes.b_ready_after);
        match nodes.a_scanned_after {
            Some(after) => {
                eprintln!("  A's publication scan finished {after:.2?} after it started");
                a_scanned_after.push(after);
            }
            None => eprintln!("  A has no GET /status: no scan to wait for"),
        }
        for front in round_order(round) {
            eprintln!("p2p_front: round {}/{ROUNDS}, {}", round + 1, front.name());
            bench.measure(front, &nodes, &mut results[front as usize]);
        }
    }

    // The multi-source NAR and the publication scan (multi_source.rs), same run, own rounds.
    let mut extra = MultiSourceResults::default();
    let setup = match runs("multi").then(|| MultiSource::prepare(&fixture)) {
        None => None,
        Some(Ok(setup)) => Some(setup),
        Some(Err(e)) => {
            eprintln!("p2p_front: no multi-source rounds: {e}");
            extra.failures_push(format!("setup: {e}"));
            None
        }
    };
    if let Some(setup) = &setup {
        for round in 0..ROUNDS {
            setup.round(&runtime, &fixture, &keys, round, &mut extra);
        }
    }

    // Lookups behind silent holders (silent_holders.rs), same run, own rounds.
    let mut silent = SilentHoldersResults::default();
    for round in (0..ROUNDS).filter(|_| runs("silent")) {
        silent_holders::round(&runtime, &fixture, &keys, round, &mut silent);
    }

    // Discovery through the tracker against libp2p (wan_mode.rs), same run, own rounds.
    let mut wan = WanResults::default();
    for round in (0..ROUNDS).filter(|_| runs("wan")) {
        wan_mode::round(
            &runtime,
            &fixture,
            &keys,
            &bench.miss_targets,
            round,
            &mut wan,
        );
    }

    // Bulk transfer against one core's SHA-256 (bulk.rs), same run, own rounds.
    let mut bulk = bulk::BulkResults::default();
    for round in (0..ROUNDS).filter(|_| runs("bulk")) {
        bulk::round(&runtime, &fixture, &keys, round, &mut bulk);
    }

    let mut report = render_report(
        &environment_facts(&fixture, &load_at_start, &b_ready_after, &a_scanned_after),
        &results,
    );
    report.push_str(&multi_source_report::render(setup.as_ref(), &extra));
    report.push_str(&silent_holders::render(&silent));
    report.push_str(&wan_mode::render(&wan));
    report.push_str(&bulk::render(&bulk));
    println!("{report}");
    let written = write_report("bench-p2p_front.md", &report)?;
    eprintln!("p2p_front: table written to {}", written.display());
    Ok(())
}

/// AB, BA, AB: neither front always runs first.
fn round_order(round: usize) -> [Front; 2] {
    let [a, b] = Front::BOTH;
    if round % 2 == 1 {
        [b, a]
    } else {
        [a, b]
    }
}
