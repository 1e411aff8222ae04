//! Narinfos through B in `--mode wan` (A and B know only a tracker on loopback) against B in
//! `--mode libp2p` (B knows A's address), same run, the two alternating: first-time hits (every
//! small path once) and misses (hashes nobody holds). In wan mode a miss must be answered from
//! B's membership set, never by asking the tracker; a first-time hit must cost no more than in
//! libp2p mode plus a few milliseconds.

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::runtime::Runtime;

use crate::fixture::Fixture;
use crate::holder::{spawn_signing_holder, spawn_signing_holder_with, Keys};
use crate::load::{each_once, narinfo_load, NarinfoMeasurement, Targets};
use crate::peer_addr::loopback_p2p_addr;
use crate::scan_wait::{get_status, wait_until_scanned};
use crate::servers::{spawn_peerix, ServerProcess};
use crate::tracker_process::TrackerProcess;
use crate::{BenchResult, ADDR_TIMEOUT, COLD_CONNECTIONS, LOOPBACK_TCP};

/// How long B may take to learn A's paths.
const HOLDER_TIMEOUT: Duration = Duration::from_secs(60);
pub(crate) const TARGET_MISS_P99_MS: f64 = 5.0;
/// Over the libp2p mode's first-time hit p99.
pub(crate) const TARGET_COLD_EXTRA_MS: f64 = 5.0;

#[derive(Clone, Copy)]
pub(crate) enum Discovery {
    Libp2p,
    Wan,
}

impl Discovery {
    fn name(self) -> &'static str {
        match self {
            Self::Libp2p => "libp2p (B knows A's address; baseline)",
            Self::Wan => "wan (A and B know only the tracker)",
        }
    }
}

#[derive(Clone, Copy)]
pub(crate) struct WanFigures {
    pub(crate) cold: NarinfoMeasurement,
    pub(crate) misses: NarinfoMeasurement,
}

/// Every round of each mode, in `Discovery` order.
#[derive(Default)]
pub(crate) struct WanResults {
    pub(crate) rounds: [Vec<WanFigures>; 2],
    pub(crate) failures: Vec<String>,
}

/// A `peerix tracker` on loopback with its database in a directory of its own.
fn spawn_tracker() -> BenchResult<(TrackerProcess, tempfile::TempDir)> {
    let db = tempfile::Builder::new()
        .prefix("peerix-bench-tracker-")
        .tempdir()?;
    let bin = crate::bench_env::peerix_bin();
    let tracker = TrackerProcess::start_binary(&bin, &db.path().join("tracker.redb"), &[]);
    Ok((tracker, db))
}

pub(crate) fn round(
    runtime: &Runtime,
    fixture: &Fixture,
    keys: &Keys,
    misses: &Arc<Targets>,
    round: usize,
    results: &mut WanResults,
) {
    let mut order = [Discovery::Libp2p, Discovery::Wan];
    if round % 2 == 1 {
        order.reverse();
    }
    for discovery in order {
        eprintln!(
            "p2p_front: discovery, round {}, {}",
            round + 1,
            discovery.name()
        );
        match measure(runtime, fixture, keys, misses, discovery) {
            Ok(figures) => {
                eprintln!(
                    "  first-time hits p99 {:.2} ms; misses p99 {:.2} ms ({} errors)",
                    figures.cold.p99_ms,
                    figures.misses.p99_ms,
                    figures.cold.errors + figures.misses.errors
                );
                results.rounds[discovery as usize].push(figures);
            }
            Err(e) => {
                eprintln!("  {e}");
                let failure = format!("round {}, {}: {e}", round + 1, discovery.name());
                results.failures.push(failure);
            }
        }
    }
}

fn measure(
    runtime: &Runtime,
    fixture: &Fixture,
    keys: &Keys,
    misses: &Arc<Targets>,
    discovery: Discovery,
) -> BenchResult<WanFigures> {
    let tracker = match discovery {
        Discovery::Wan => Some(spawn_tracker()?),
        Discovery::Libp2p => None,
    };
    let wan_args = |url: &str| -> Vec<std::ffi::OsString> {
        ["--mode", "wan", "--tracker-url", url]
            .iter()
            .map(Into::into)
            .collect()
    };
    let mut a = match &tracker {
        Some((tracker, _)) => {
            let mode = wan_args(&tracker.url);
            let mode: Vec<&OsStr> = mode.iter().map(|a| a.as_os_str()).collect();
            spawn_signing_holder_with("peerix A", fixture, keys, &mode)?
        }
        None => spawn_signing_holder("peerix A", fixture, keys)?,
    };
    a.wait_until_serving(runtime, &fixture.big_hash)?;
    wait_until_scanned(runtime, &a)?;
    let b_store = tempfile::Builder::new()
        .prefix("peerix-bench-wan-b-")
        .tempdir()?;
    let mut args: Vec<std::ffi::OsString> = vec![
        "--listen-addrs".into(),
        LOOPBACK_TCP.into(),
        "--trusted-public-key".into(),
        keys.public.clone().into(),
    ];
    match &tracker {
        Some((tracker, _)) => args.extend(wan_args(&tracker.url)),
        None => args.extend([
            "--mode".into(),
            "libp2p".into(),
            "--bootstrap-peers".into(),
            loopback_p2p_addr(&a, ADDR_TIMEOUT)?.into(),
        ]),
    }
    let args: Vec<&OsStr> = args.iter().map(|a| a.as_os_str()).collect();
    let b = spawn_peerix("peerix B", b_store.path(), &args)?;
    wait_for_holder(runtime, &b)?;
    let cold = runtime.block_on(each_once(
        b.addr,
        Targets::narinfos(&fixture.small_hashes),
        COLD_CONNECTIONS,
    ));
    misses.rewind();
    let missed = runtime.block_on(narinfo_load(b.addr, misses.clone()));
    drop(a);
    Ok(WanFigures {
        cold: NarinfoMeasurement::from_stats(&cold, 200),
        misses: NarinfoMeasurement::from_stats(&missed, 404),
    })
}

/// Polls B's `/status` until a peer announced paths to it.
fn wait_for_holder(runtime: &Runtime, b: &ServerProcess) -> BenchResult<()> {
    let deadline = Instant::now() + HOLDER_TIMEOUT;
    loop {
        let status = get_status(runtime, b)?.ok_or("B has no GET /status")?;
        if status["peers"]["paths"].as_u64().unwrap_or(0) > 0 {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!("B learnt no path of A in {HOLDER_TIMEOUT:?}").into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The section of the report: every round of both modes, and the targets.
pub(crate) fn render(results: &WanResults) -> String {
    let mut text = String::from("\n## Narinfos through B: wan mode against libp2p mode\n\n");
    let _ = writeln!(
        text,
        "- A: the fixture store, signing; B: empty, trusting A's key, measured once it knows \
         A's paths; first-time hits: every small path once over {COLD_CONNECTIONS} \
         connections; misses: hashes nobody holds, for the load generator's measured time"
    );
    let _ = writeln!(
        text,
        "\n| mode | round | first-time p50 (ms) | first-time p99 (ms) | misses/s | miss p99 (ms) | errors |"
    );
    let _ = writeln!(text, "| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    for discovery in [Discovery::Libp2p, Discovery::Wan] {
        for (round, f) in results.rounds[discovery as usize].iter().enumerate() {
            let _ = writeln!(
                text,
                "| {} | {} | {:.2} | {:.2} | {:.0} | {:.2} | {} |",
                discovery.name(),
                round + 1,
                f.cold.p50_ms,
                f.cold.p99_ms,
                f.misses.requests_per_s,
                f.misses.p99_ms,
                f.cold.errors + f.cold.wrong_status + f.misses.errors + f.misses.wrong_status
            );
        }
    }
    let worst = |d: Discovery, pick: fn(&WanFigures) -> f64| {
        results.rounds[d as usize].iter().map(pick).reduce(f64::max)
    };
    let wan_miss = worst(Discovery::Wan, |f| f.misses.p99_ms);
    let wan_cold = worst(Discovery::Wan, |f| f.cold.p99_ms);
    let libp2p_cold = worst(Discovery::Libp2p, |f| f.cold.p99_ms);
    let _ = writeln!(
        text,
        "\nTargets (worst round): wan miss p99 < {TARGET_MISS_P99_MS} ms: {}; wan first-time \
         p99 <= libp2p's + {TARGET_COLD_EXTRA_MS} ms: {}",
        wan_miss.map_or("no figure".to_owned(), |m| format!("{m:.2} ms")),
        match (wan_cold, libp2p_cold) {
            (Some(w), Some(l)) => format!("{w:.2} ms vs {l:.2} ms"),
            _ => "no figure".to_owned(),
        }
    );
    for failure in &results.failures {
        let _ = writeln!(text, "- failed: {failure}");
    }
    text
}
