//! Pull-through narinfo benchmark: what Nix waits for a narinfo of a path no peer holds, asked
//! of a node with `--pull-through` (which asks the upstream cache), against asking the same
//! upstream directly, same run. The issue's target: no more than asking upstream directly.
//!
//! The upstream is a stand-in on 127.0.0.1 (an in-process HTTP server answering any narinfo
//! with a synthetic, unsigned one, as a binary cache would: Peerix passes upstream's narinfo on
//! unchecked, Nix checks it), so both sides see the same server. Two stand-ins run, each with
//! a node of its own: one answering at once, which shows all Peerix adds, and one answering
//! after [`FAR`], as a cache across the internet would. Every hash is asked once (a client
//! meeting a new closure) over keep-alive connections; the two sides alternate over `ROUNDS`
//! rounds with fresh hashes each, and every round is printed with the ratio through Peerix /
//! directly. Only loopback is used: the nodes run with `--offline`. Run:
//!
//! ```text
//! cargo bench --bench pull_through
//! ```
//!
//! The markdown table is printed and written to `target/bench-pull_through.md`.

#![forbid(unsafe_code)]

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
#[allow(dead_code)]
#[path = "../http_front/servers.rs"]
mod servers;

use std::error::Error;
use std::ffi::OsStr;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;

use bench_env::{load_average, machine_line, write_report};
use load::{each_once, NarinfoMeasurement, Targets};
use servers::{spawn_peerix, ServerProcess};

type BenchResult<T> = Result<T, Box<dyn Error + Send + Sync>>;

/// Used by the shared load generator and fixture (this bench builds no fixture store).
const SMALL_PATHS: usize = 0;
const BIG_NAR_BYTES: u64 = 0;
const CONNECTIONS: usize = 8;
const WARM_UP: Duration = Duration::from_millis(500);
const MEASURED: Duration = Duration::from_secs(3);
const NAR_FETCHES: u32 = 1;

/// The far stand-in's answer time, a cache some way across the internet.
const FAR: Duration = Duration::from_millis(20);
const ROUNDS: usize = 5;
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// One way of asking: which stand-in, over how many connections, how many narinfos a side.
struct Scenario {
    name: &'static str,
    delay: Duration,
    connections: usize,
    paths: usize,
}

const SCENARIOS: [Scenario; 3] = [
    Scenario {
        name: "at once, 8 connections",
        delay: Duration::ZERO,
        connections: CONNECTIONS,
        paths: 2000,
    },
    Scenario {
        name: "at once, 1 connection",
        delay: Duration::ZERO,
        connections: 1,
        paths: 1000,
    },
    Scenario {
        name: "after 20 ms, 8 connections",
        delay: FAR,
        connections: CONNECTIONS,
        paths: 400,
    },
];

/// A stand-in binary cache answering after `delay`: `/nix-cache-info`, and a narinfo for any
/// store hash.
async fn upstream(delay: Duration) -> BenchResult<SocketAddr> {
    let app = Router::new()
        .route("/nix-cache-info", get(cache_info))
        .route("/{file}", get(narinfo))
        .with_state(delay);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(addr)
}

async fn cache_info(State(delay): State<Duration>) -> &'static str {
    far_away(delay).await;
    "StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 40\n"
}

async fn narinfo(
    State(delay): State<Duration>,
    Path(file): Path<String>,
) -> Result<String, StatusCode> {
    let hash = file.strip_suffix(".narinfo").ok_or(StatusCode::NOT_FOUND)?;
    far_away(delay).await;
    let zeros = "0".repeat(52);
    Ok(format!(
        "StorePath: /nix/store/{hash}-bench-path\nURL: nar/{zeros}.nar.xz\nCompression: xz\n\
         FileHash: sha256:{zeros}\nFileSize: 4096\nNarHash: sha256:{zeros}\nNarSize: 8192\n\
         References: \n"
    ))
}

/// Waits `delay`, if any: even a zero sleep waits for the timer's next millisecond tick.
async fn far_away(delay: Duration) {
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
}

/// `count` valid store hashes, distinct for every `seed`.
fn hashes(seed: usize, count: usize) -> Vec<String> {
    const ALPHABET: &[u8] = b"0123456789abcdfghijklmnpqrsvwxyz";
    (0..count)
        .map(|i| {
            let mut n = (seed as u64).wrapping_mul(1_000_003).wrapping_add(i as u64);
            (0..32)
                .map(|_| {
                    let c = ALPHABET[(n % 32) as usize] as char;
                    n = n / 32 + 0x9e37_79b9;
                    c
                })
                .collect()
        })
        .collect()
}

#[derive(Clone, Copy, PartialEq)]
enum Side {
    Direct,
    PullThrough,
}

impl Side {
    fn name(self) -> &'static str {
        match self {
            Self::Direct => "upstream directly (baseline)",
            Self::PullThrough => "through Peerix --pull-through",
        }
    }
}

/// A stand-in and the node pulling through from it.
struct Pair {
    upstream: SocketAddr,
    node: ServerProcess,
}

fn start_pair(
    runtime: &tokio::runtime::Runtime,
    delay: Duration,
    seed: usize,
) -> BenchResult<Pair> {
    let upstream_addr = runtime.block_on(upstream(delay))?;
    let store = tempfile::tempdir()?;
    let url = format!("http://{upstream_addr}");
    let flags = ["--pull-through", "--upstream-cache", &url];
    let flags: Vec<&OsStr> = flags.iter().map(OsStr::new).collect();
    let node = spawn_peerix("peerix", store.path(), &flags)?;
    // Ready once upstream answers it: a narinfo then comes back 200.
    let probe = Targets::narinfos(&hashes(seed, 1));
    let started = Instant::now();
    loop {
        probe.rewind();
        let stats = runtime.block_on(each_once(node.addr, probe.clone(), 1));
        let measured = NarinfoMeasurement::from_stats(&stats, 200);
        if measured.wrong_status == 0 && measured.errors == 0 {
            break;
        }
        if started.elapsed() > READY_TIMEOUT {
            return Err("the node never answered from upstream".into());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(Pair {
        upstream: upstream_addr,
        node,
    })
}

struct Row {
    scenario: usize,
    round: usize,
    side: Side,
    measured: NarinfoMeasurement,
}

fn main() -> BenchResult<()> {
    let load_at_start = load_average();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut seeds = 0..;
    let mut next_seed = || seeds.next().unwrap_or_default();
    let near = start_pair(&runtime, Duration::ZERO, next_seed())?;
    let far = start_pair(&runtime, FAR, next_seed())?;
    let mut rows = Vec::new();
    for round in 1..=ROUNDS {
        for (s, scenario) in SCENARIOS.iter().enumerate() {
            let pair = if scenario.delay.is_zero() {
                &near
            } else {
                &far
            };
            let mut order = [Side::Direct, Side::PullThrough];
            if round % 2 == 0 {
                order.reverse();
            }
            let mut p50 = [0.0; 2];
            let mut p99 = [0.0; 2];
            for side in order {
                let targets = Targets::narinfos(&hashes(next_seed(), scenario.paths));
                let addr = match side {
                    Side::Direct => pair.upstream,
                    Side::PullThrough => pair.node.addr,
                };
                let stats = runtime.block_on(each_once(addr, targets, scenario.connections));
                let measured = NarinfoMeasurement::from_stats(&stats, 200);
                eprintln!(
                    "round {round}: {}: {}: p50 {:.3} ms, p99 {:.3} ms, {:.0} req/s, {} errors, {} not 200",
                    scenario.name,
                    side.name(),
                    measured.p50_ms,
                    measured.p99_ms,
                    measured.requests_per_s,
                    measured.errors,
                    measured.wrong_status
                );
                p50[side as usize] = measured.p50_ms;
                p99[side as usize] = measured.p99_ms;
                rows.push(Row {
                    scenario: s,
                    round,
                    side,
                    measured,
                });
            }
            eprintln!(
                "round {round}: {}: through / directly: p50 {:.2}x, p99 {:.2}x",
                scenario.name,
                p50[1] / p50[0],
                p99[1] / p99[0]
            );
        }
    }
    let report = report(&load_at_start, &rows);
    println!("{report}");
    let file = write_report("bench-pull_through.md", &report)?;
    eprintln!("written to {}", file.display());
    drop((near, far));
    Ok(())
}

fn report(load_at_start: &str, rows: &[Row]) -> String {
    let mut report = String::from("# pull_through\n\n");
    report.push_str(&machine_line(load_at_start));
    let _ = writeln!(
        report,
        "- first-time narinfos, each asked once, keep-alive connections; the far stand-in \
         answers after {FAR:?}\n"
    );
    report.push_str(
        "| upstream | round | asked | p50 (ms) | p99 (ms) | req/s | not 200 |\n\
         |---|---:|---|---:|---:|---:|---:|\n",
    );
    for row in rows {
        let m = &row.measured;
        let _ = writeln!(
            report,
            "| {} | {} | {} | {:.3} | {:.3} | {:.0} | {} |",
            SCENARIOS[row.scenario].name,
            row.round,
            row.side.name(),
            m.p50_ms,
            m.p99_ms,
            m.requests_per_s,
            m.wrong_status + m.errors
        );
    }
    report.push_str(
        "\n| upstream | p50 through (ms) | p50 directly (ms) | p50 ratio | p99 through (ms) | \
         p99 directly (ms) | p99 ratio |\n|---|---:|---:|---:|---:|---:|---:|\n",
    );
    for (s, scenario) in SCENARIOS.iter().enumerate() {
        let median = |side: Side, f: fn(&NarinfoMeasurement) -> f64| {
            let mut values: Vec<f64> = rows
                .iter()
                .filter(|r| r.scenario == s && r.side == side)
                .map(|r| f(&r.measured))
                .collect();
            values.sort_by(f64::total_cmp);
            values[values.len() / 2]
        };
        let p50 = |m: &NarinfoMeasurement| m.p50_ms;
        let p99 = |m: &NarinfoMeasurement| m.p99_ms;
        let (t50, d50) = (median(Side::PullThrough, p50), median(Side::Direct, p50));
        let (t99, d99) = (median(Side::PullThrough, p99), median(Side::Direct, p99));
        let _ = writeln!(
            report,
            "| {} | {t50:.3} | {d50:.3} | {:.2}x | {t99:.3} | {d99:.3} | {:.2}x |",
            scenario.name,
            t50 / d50,
            t99 / d99
        );
    }
    report.push_str(
        "\nMedians of the rounds. Target: no more than asking upstream directly (plus the hop).\n",
    );
    report
}
