//! Pull-through narinfo benchmark: what Nix waits for a narinfo of a path no peer holds, asked
//! of a node with `--pull-through` (which asks the upstream cache), against asking the same
//! upstream directly, same run. The issue's target: no more than asking upstream directly.
//!
//! The upstream is a stand-in on 127.0.0.1 (an in-process HTTP server answering any narinfo
//! with a synthetic, unsigned one, as a binary cache would: Peerix passes upstream's narinfo on
//! unchecked, Nix checks it), so both sides see the same server. Every hash is asked once (a
//! client meeting a new closure), over `CONNECTIONS` keep-alive connections; the two sides
//! alternate over `ROUNDS` rounds with fresh hashes each, and every round is printed. Only
//! loopback is used: the node runs with `--offline`. Run:
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

use axum::extract::Path;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;

use bench_env::{load_average, machine_line, write_report};
use load::{each_once, NarinfoMeasurement, Targets};
use servers::spawn_peerix;

type BenchResult<T> = Result<T, Box<dyn Error + Send + Sync>>;

/// Used by the shared load generator and fixture (this bench builds no fixture store).
const SMALL_PATHS: usize = 0;
const BIG_NAR_BYTES: u64 = 0;
const CONNECTIONS: usize = 8;
const WARM_UP: Duration = Duration::from_millis(500);
const MEASURED: Duration = Duration::from_secs(3);
const NAR_FETCHES: u32 = 1;

/// Narinfos asked per side and round, each once.
const PATHS: usize = 2000;
const ROUNDS: usize = 3;
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// A stand-in binary cache: `/nix-cache-info`, and a narinfo for any store hash.
async fn upstream() -> BenchResult<SocketAddr> {
    let app = Router::new()
        .route(
            "/nix-cache-info",
            get(|| async { "StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 40\n" }),
        )
        .route("/{file}", get(narinfo));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(addr)
}

async fn narinfo(Path(file): Path<String>) -> Result<String, StatusCode> {
    let hash = file.strip_suffix(".narinfo").ok_or(StatusCode::NOT_FOUND)?;
    let zeros = "0".repeat(52);
    Ok(format!(
        "StorePath: /nix/store/{hash}-bench-path\nURL: nar/{zeros}.nar.xz\nCompression: xz\n\
         FileHash: sha256:{zeros}\nFileSize: 4096\nNarHash: sha256:{zeros}\nNarSize: 8192\n\
         References: \n"
    ))
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

#[derive(Clone, Copy)]
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

fn main() -> BenchResult<()> {
    let load_at_start = load_average();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let upstream_addr = runtime.block_on(upstream())?;
    let store = tempfile::tempdir()?;
    let url = format!("http://{upstream_addr}");
    let flags = ["--pull-through", "--upstream-cache", &url];
    let flags: Vec<&OsStr> = flags.iter().map(OsStr::new).collect();
    let node = spawn_peerix("peerix", store.path(), &flags)?;
    // Ready once upstream answers it: a narinfo then comes back 200.
    let probe = Targets::narinfos(&hashes(ROUNDS * 2, 1));
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
    let mut rows: Vec<(usize, Side, NarinfoMeasurement)> = Vec::new();
    for round in 0..ROUNDS {
        let mut order = [Side::Direct, Side::PullThrough];
        if round % 2 == 1 {
            order.reverse();
        }
        for (i, side) in order.into_iter().enumerate() {
            let targets = Targets::narinfos(&hashes(round * 2 + i, PATHS));
            let addr = match side {
                Side::Direct => upstream_addr,
                Side::PullThrough => node.addr,
            };
            let stats = runtime.block_on(each_once(addr, targets, CONNECTIONS));
            let measured = NarinfoMeasurement::from_stats(&stats, 200);
            eprintln!(
                "round {}: {}: p50 {:.3} ms, p99 {:.3} ms, {:.0} req/s, {} errors, {} not 200",
                round + 1,
                side.name(),
                measured.p50_ms,
                measured.p99_ms,
                measured.requests_per_s,
                measured.errors,
                measured.wrong_status
            );
            rows.push((round + 1, side, measured));
        }
    }
    let mut report = String::from("# pull_through\n\n");
    report.push_str(&machine_line(&load_at_start));
    let _ = writeln!(
        report,
        "- {PATHS} first-time narinfos per side and round over {CONNECTIONS} keep-alive connections\n"
    );
    report.push_str("| round | asked | p50 (ms) | p99 (ms) | req/s | not 200 |\n|---|---|---:|---:|---:|---:|\n");
    for (round, side, m) in &rows {
        let _ = writeln!(
            report,
            "| {round} | {} | {:.3} | {:.3} | {:.0} | {} |",
            side.name(),
            m.p50_ms,
            m.p99_ms,
            m.requests_per_s,
            m.wrong_status + m.errors
        );
    }
    let median = |side: usize, f: fn(&NarinfoMeasurement) -> f64| {
        let mut values: Vec<f64> = rows
            .iter()
            .filter(|(_, s, _)| *s as usize == side)
            .map(|(_, _, m)| f(m))
            .collect();
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    let (p50, p99) = (
        |m: &NarinfoMeasurement| m.p50_ms,
        |m: &NarinfoMeasurement| m.p99_ms,
    );
    let _ = writeln!(
        report,
        "\nMedian of the rounds: p50 {:.3} ms through Peerix vs {:.3} ms directly (extra {:.3} ms); \
         p99 {:.3} vs {:.3} ms. Target: no more than asking upstream directly (plus the hop).",
        median(1, p50),
        median(0, p50),
        median(1, p50) - median(0, p50),
        median(1, p99),
        median(0, p99)
    );
    println!("{report}");
    let file = write_report("bench-pull_through.md", &report)?;
    eprintln!("written to {}", file.display());
    drop(node);
    Ok(())
}
