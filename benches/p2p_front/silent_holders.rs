//! Narinfos through B when most holders are silent: three of four holders of every path are
//! frozen (SIGSTOP: laptops asleep with their connections open), one answers. The baseline is a
//! fresh B with the honest holder alone, same run; the two alternate over the rounds. Every
//! request is a first-time one (a fresh B each time), so B must ask a holder for each.

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::process::Command;
use std::time::{Duration, Instant};

use tokio::runtime::Runtime;

use crate::fixture::Fixture;
use crate::holder::{spawn_signing_holder, Keys};
use crate::load::{each_once, NarinfoMeasurement, Targets};
use crate::peer_addr::loopback_p2p_addr;
use crate::scan_wait::{get_status, wait_until_scanned};
use crate::servers::{spawn_peerix, ServerProcess};
use crate::{BenchResult, ADDR_TIMEOUT, COLD_CONNECTIONS, LOOPBACK_TCP};

/// Paths asked for in one pass: enough for a p99, few enough that a serial lookup behind silent
/// holders (seconds per request) still ends in a reasonable time.
const PATHS: usize = 100;
const SILENT: usize = 3;
/// How long B may take to learn every holder's paths.
const HOLDERS_TIMEOUT: Duration = Duration::from_secs(30);
pub(crate) const TARGET_P99_MS: f64 = 20.0;

#[derive(Clone, Copy)]
pub(crate) enum Holders {
    HonestAlone,
    SilentAndHonest,
}

impl Holders {
    fn name(self) -> &'static str {
        match self {
            Self::HonestAlone => "one honest holder (baseline)",
            Self::SilentAndHonest => "three silent holders and one honest",
        }
    }

    fn silent(self) -> usize {
        match self {
            Self::HonestAlone => 0,
            Self::SilentAndHonest => SILENT,
        }
    }
}

/// Every round's measurement of each configuration, in `Holders` order.
#[derive(Default)]
pub(crate) struct SilentHoldersResults {
    pub(crate) rounds: [Vec<NarinfoMeasurement>; 2],
    pub(crate) failures: Vec<String>,
}

pub(crate) fn round(
    runtime: &Runtime,
    fixture: &Fixture,
    keys: &Keys,
    round: usize,
    results: &mut SilentHoldersResults,
) {
    let mut order = [Holders::HonestAlone, Holders::SilentAndHonest];
    if round % 2 == 1 {
        order.reverse();
    }
    for holders in order {
        eprintln!(
            "p2p_front: silent holders, round {}, {}",
            round + 1,
            holders.name()
        );
        match measure(runtime, fixture, keys, holders) {
            Ok(measurement) => {
                eprintln!(
                    "  narinfo cold hits: p50 {:.2} ms, p99 {:.2} ms, {} errors, {} wrong status",
                    measurement.p50_ms,
                    measurement.p99_ms,
                    measurement.errors,
                    measurement.wrong_status
                );
                results.rounds[holders as usize].push(measurement);
            }
            Err(e) => {
                eprintln!("  {e}");
                let failure = format!("round {}, {}: {e}", round + 1, holders.name());
                results.failures.push(failure);
            }
        }
    }
}

fn measure(
    runtime: &Runtime,
    fixture: &Fixture,
    keys: &Keys,
    holders: Holders,
) -> BenchResult<NarinfoMeasurement> {
    let mut nodes = Vec::new();
    let mut addrs = Vec::new();
    for _ in 0..=holders.silent() {
        let mut holder = spawn_signing_holder("peerix holder", fixture, keys)?;
        holder.wait_until_serving(runtime, &fixture.big_hash)?;
        addrs.push(loopback_p2p_addr(&holder, ADDR_TIMEOUT)?);
        nodes.push(holder);
    }
    // Scans hash every NAR once: measuring while they run would charge it to the lookups.
    for holder in &nodes {
        wait_until_scanned(runtime, holder)?;
    }
    let b_store = tempfile::Builder::new()
        .prefix("peerix-bench-silent-b-")
        .tempdir()?;
    let mut args = vec![
        OsStr::new("--listen-addrs"),
        OsStr::new(LOOPBACK_TCP),
        OsStr::new("--trusted-public-key"),
        OsStr::new(&keys.public),
    ];
    for addr in &addrs {
        args.extend([OsStr::new("--bootstrap-peers"), OsStr::new(addr)]);
    }
    let b = spawn_peerix("peerix B", b_store.path(), &args)?;
    wait_for_holders(runtime, &b, nodes.len())?;
    // The first holder stays awake; the others freeze with their connections open.
    for holder in &nodes[1..] {
        signal(holder, "STOP")?;
    }
    let targets = Targets::narinfos(&fixture.small_hashes[..PATHS]);
    let stats = runtime.block_on(each_once(b.addr, targets, COLD_CONNECTIONS));
    Ok(NarinfoMeasurement::from_stats(&stats, 200))
}

/// Polls B's `/status` until `count` peers have announced paths to it.
fn wait_for_holders(runtime: &Runtime, b: &ServerProcess, count: usize) -> BenchResult<()> {
    let deadline = Instant::now() + HOLDERS_TIMEOUT;
    loop {
        let status = get_status(runtime, b)?.ok_or("B has no GET /status")?;
        let holders = status["peers"]["holders"].as_u64().unwrap_or(0);
        if holders >= count as u64 {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(
                format!("B knew {holders} of {count} holders after {HOLDERS_TIMEOUT:?}").into(),
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn signal(node: &ServerProcess, name: &str) -> BenchResult<()> {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(node.pid().to_string())
        .status()?;
    if !status.success() {
        return Err(format!("kill -{name} failed: {status}").into());
    }
    Ok(())
}

/// The section of the report: every round of both configurations.
pub(crate) fn render(results: &SilentHoldersResults) -> String {
    let mut text = String::from("\n## Narinfos through B with silent holders\n\n");
    let _ = writeln!(
        text,
        "- holders: peerix nodes on the fixture store signing with A's key; B: a fresh empty \
         store per measurement, `--bootstrap-peers` every holder, asked only once it knows all \
         of them; then all holders but one get SIGSTOP; {PATHS} first-time narinfos over \
         {COLD_CONNECTIONS} connections (5 s client timeout per request)"
    );
    let _ = writeln!(
        text,
        "\n| holders | round | p50 (ms) | p99 (ms) | errors | 404s |"
    );
    let _ = writeln!(text, "| --- | ---: | ---: | ---: | ---: | ---: |");
    for holders in [Holders::HonestAlone, Holders::SilentAndHonest] {
        for (round, m) in results.rounds[holders as usize].iter().enumerate() {
            let _ = writeln!(
                text,
                "| {} | {} | {:.2} | {:.2} | {} | {} |",
                holders.name(),
                round + 1,
                m.p50_ms,
                m.p99_ms,
                m.errors,
                m.wrong_status
            );
        }
    }
    let silent = &results.rounds[Holders::SilentAndHonest as usize];
    let worst = silent.iter().map(|m| m.p99_ms).reduce(f64::max);
    let failed = silent
        .iter()
        .filter(|m| m.errors + m.wrong_status > 0)
        .count();
    if let Some(worst) = worst {
        // A round with failed requests has no p99 worth the name: it misses the target.
        let met = if worst < TARGET_P99_MS && failed == 0 {
            "met"
        } else {
            "not met"
        };
        let _ = writeln!(
            text,
            "\nTarget: p99 under {TARGET_P99_MS} ms with three silent holders, in every round, \
             and no failed request: worst p99 {worst:.2} ms, {failed} round(s) with failures, \
             {met}."
        );
    }
    for failure in &results.failures {
        let _ = writeln!(text, "- failed: {failure}");
    }
    text
}
