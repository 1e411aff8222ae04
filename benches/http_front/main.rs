//! HTTP front benchmark: Peerix next to a baseline binary cache (harmonia), same run, same store.
//!
//! Measures, over real HTTP/1.1 on 127.0.0.1:
//! 1. narinfo hits, unsigned: requests/s and p50/p99 latency, round-robin over 1000 store paths;
//! 2. narinfo misses: valid nixbase32 hashes that are not in the store (404s);
//! 3. narinfo hits, signed: both servers sign with the same `bench-1` key;
//! 4. NAR streaming of one 256 MiB path over one connection, in MB/s (1e6 bytes/s), page cache
//!    warm; plus the servers' peak RSS (VmHWM) before and after it, to show memory stays flat.
//!
//! The load generator is part of this benchmark (`load.rs`, `http_client.rs`): 32 keep-alive
//! connections on a 2-thread tokio runtime, speaking a minimal hand-written HTTP/1.1 client,
//! latencies in an HdrHistogram. Each narinfo measurement is 0.5 s of warm-up and 3 s measured.
//! The servers alternate (ABA, BAB, ABA) over 3 rounds; the best round of each is compared, and
//! every round is listed below the table. Nothing is asserted, it is not a test.
//!
//! The baseline is harmonia 3.2, built from its source outside this repository; its binary is
//! taken only from the `HARMONIA_BIN` environment variable (never built or fetched here). An
//! earlier build of Peerix given as `PEERIX_BASELINE_BIN` is the baseline instead, to compare two
//! versions in one run. Without either, Peerix is measured alone. Run:
//!
//! ```text
//! HARMONIA_BIN=/path/to/harmonia-cache cargo bench --bench http_front
//! PEERIX_BASELINE_BIN=/path/to/older/peerix cargo bench --bench http_front
//! ```
//!
//! The fixture (a chroot Nix store `local?root=DIR` made with the installed `nix-store`) is built
//! afresh in a temporary directory on every run, never cached: its paths carry a per-run nonce, so
//! a server that is not ours cannot answer the readiness probe for them. The markdown table is
//! printed and written to `target/bench-http_front.md`.

#![forbid(unsafe_code)]

mod bench_env;
mod fixture;
mod http_client;
// Shared with the p2p benchmarks; the first-time pass (`each_once`) is theirs.
#[allow(dead_code)]
mod load;
mod report;
mod servers;
mod session;

use std::error::Error;
use std::path::PathBuf;
use std::time::Duration;

use bench_env::{load_average, write_report};
use fixture::Fixture;
use report::{environment_facts, render_report};
use servers::ServerKind;
use session::{ServerResults, Session};

type BenchResult<T> = Result<T, Box<dyn Error + Send + Sync>>;

const SMALL_PATHS: usize = 1000;
const BIG_NAR_BYTES: u64 = 256 * 1024 * 1024;

const ROUNDS: usize = 3;
const CONNECTIONS: usize = 32;
const LOAD_THREADS: usize = 2;
const WARM_UP: Duration = Duration::from_millis(500);
const MEASURED: Duration = Duration::from_secs(3);
const NAR_FETCHES: u32 = 4;

fn main() -> BenchResult<()> {
    let baseline = match (
        std::env::var_os("PEERIX_BASELINE_BIN"),
        std::env::var_os("HARMONIA_BIN"),
    ) {
        (Some(bin), _) => Some(ServerKind::PeerixBaseline(PathBuf::from(bin))),
        (None, Some(bin)) => Some(ServerKind::Harmonia(PathBuf::from(bin))),
        (None, None) => None,
    };
    let load_at_start = load_average();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(LOAD_THREADS)
        .enable_all()
        .build()?;

    eprintln!("http_front: building the fixture store ...");
    let fixture = Fixture::build()?;
    let servers: Vec<ServerKind> = std::iter::once(ServerKind::Peerix)
        .chain(baseline)
        .collect();

    let mut results: Vec<ServerResults> = servers.iter().map(|_| Default::default()).collect();
    for round in 0..ROUNDS {
        for index in round_order(servers.len(), round) {
            let server = &servers[index];
            eprintln!(
                "http_front: round {}/{ROUNDS}, {}",
                round + 1,
                server.name()
            );
            let session = Session {
                runtime: &runtime,
                fixture: &fixture,
                kind: server,
            };
            session.measure_all(&mut results[index])?;
        }
    }

    let report = render_report(
        &environment_facts(&fixture, servers.get(1), &load_at_start),
        servers.get(1).map_or("baseline", ServerKind::name),
        &results,
    );
    println!("{report}");
    let written = write_report("bench-http_front.md", &report)?;
    eprintln!("http_front: table written to {}", written.display());
    Ok(())
}

/// ABA, BAB, ABA, ...: neither server always runs first.
fn round_order(servers: usize, round: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..servers).collect();
    if round % 2 == 1 {
        order.reverse();
    }
    order
}
