//! `--mode lan` benchmark: node B's narinfo latency on its Nix front, in
//! the LAN lab's network namespaces, every node with its defaults. Two labs, kept up for the
//! whole run, their rounds alternated:
//! 1. Peerix peers only: A holds a synthetic store of a few thousand paths, B and C start
//!    empty. B's misses (random valid hashes nobody holds) are answered from memory; first-time
//!    hits (each of A's paths asked once, distinct per round) are fetched from A over libp2p.
//!    Targets: miss p99 < 5 ms, hit p99 < 20 ms.
//! 2. The same hosts plus an old peer (`tests/lan_lab/old_peer.py`) serving on a fourth host,
//!    heard by B through one request of its own: each miss now costs one broadcast wait,
//!    bounded by `--timeout`; the same misses asked again are remembered (30 s) and cost what
//!    case 1's do; hits still come from A.
//! 3. The baseline, in the same run: the old program's documented broadcast timeout (50 ms,
//!    too short in practice; its NixOS module used 10 s) next to the `--timeout` B reports, and
//!    the old peer script's own wait for a broadcast miss with `--timeout-ms 50`, timed inside
//!    its process.
//!
//! The client runs inside B's namespace (the front listens on B's loopback): this binary runs
//! itself there in client mode, over one keep-alive connection per batch. B in lab 1 never
//! hears an old peer, which the report checks (no broadcast query, nobody heard).
//!
//! Needs root (network namespaces); prints "skipped" otherwise. Nothing leaves the labs. Run:
//!
//! ```text
//! cargo bench --bench lan_mode
//! ```
//!
//! Each round's figures are printed as they come; the markdown report is printed and written to
//! `target/bench-lan_mode.md`.

#![forbid(unsafe_code)]

#[path = "../http_front/bench_env.rs"]
mod bench_env;
#[path = "../../tests/common/mod.rs"]
mod common;
#[allow(dead_code)]
#[path = "../http_front/http_client.rs"]
mod http_client;
#[path = "../../tests/lan_lab/mod.rs"]
mod lan_lab;

mod client;
mod labs;
mod report;

use std::error::Error;
use std::path::Path;

use bench_env::{load_average, peerix_bin, write_report};
use client::{narinfos_in, Measured, TARGETS_ENV};
use common::front_latency::Percentiles;
use labs::{Lab, Link, B};
use report::render_report;

type BenchResult<T> = Result<T, Box<dyn Error + Send + Sync>>;

const ROUNDS: usize = 3;
/// Misses per round with Peerix peers only (each answered from memory).
const MISSES_PEERIX_ONLY: usize = 1_000;
/// Misses per round with an old peer on the link: each waits `--timeout` (150 ms).
const MISSES_WITH_OLD_PEER: usize = 50;
/// First-time hits per round and lab.
const HITS: usize = 500;
/// The old peer script's broadcast misses per round, and the wait each is given.
const OLD_PEER_ASKS: usize = 20;
const OLD_PROGRAM_TIMEOUT_MS: u64 = 50;
/// The old program's NixOS module's timeout.
const OLD_MODULE_TIMEOUT_MS: u64 = 10_000;

const TARGET_MISS_P99_MS: f64 = 5.0;
const TARGET_HIT_P99_MS: f64 = 20.0;
/// A miss that waited for a broadcast may take this much beyond `--timeout`.
const TIMEOUT_SLACK_MS: f64 = 20.0;

/// One round of one lab.
pub(crate) struct Round {
    pub(crate) number: usize,
    pub(crate) link: Link,
    pub(crate) misses: Measured,
    /// The same misses again (lab 2 only): remembered, so asked of nobody.
    pub(crate) repeated_misses: Option<Measured>,
    pub(crate) hits: Measured,
    /// Broadcast queries B sent during the round, and the old peers it had heard at its end.
    pub(crate) queries: u64,
    pub(crate) old_peers_heard: usize,
    /// The old peer script's own waits for broadcast misses (lab 2 only).
    pub(crate) old_peer_waits: Option<Percentiles>,
}

impl std::fmt::Display for Round {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "round {}, {}:", self.number, self.link)?;
        writeln!(f, "  misses: {}", self.misses)?;
        if let Some(repeated) = &self.repeated_misses {
            writeln!(f, "  the same misses again: {repeated}")?;
        }
        writeln!(f, "  first-time hits: {}", self.hits)?;
        write!(
            f,
            "  B's broadcast queries: {}, old peers heard: {}",
            self.queries, self.old_peers_heard
        )?;
        if let Some(waits) = &self.old_peer_waits {
            write!(
                f,
                "\n  old peer script's wait, --timeout-ms {OLD_PROGRAM_TIMEOUT_MS}: {} asks, \
                 p50 {:.2} ms, p99 {:.2} ms",
                waits.count, waits.p50, waits.p99
            )?;
        }
        Ok(())
    }
}

fn queries(lab: &Lab) -> u64 {
    lab.b_lan()["queries"].as_u64().unwrap_or(0)
}

fn run_round(lab: &mut Lab, number: usize) -> BenchResult<Round> {
    let queries_before = queries(lab);
    let (misses, repeated_misses) = match lab.link {
        Link::PeerixOnly => {
            let hashes = lab.misses(MISSES_PEERIX_ONLY);
            (narinfos_in(&lab.lab, B, &hashes, 404)?, None)
        }
        Link::WithOldPeer => {
            // The old peer's own request keeps it heard, whatever the time since the last.
            lab.old_peer_asks(OLD_PROGRAM_TIMEOUT_MS)?;
            lab.until_b_hears_the_old_peer();
            let hashes = lab.misses(MISSES_WITH_OLD_PEER);
            let first = narinfos_in(&lab.lab, B, &hashes, 404)?;
            let again = narinfos_in(&lab.lab, B, &hashes, 404)?;
            (first, Some(again))
        }
    };
    let hit_hashes = lab.first_time_hits(HITS)?;
    let hits = narinfos_in(&lab.lab, B, &hit_hashes, 200)?;
    let old_peer_waits = match lab.link {
        Link::PeerixOnly => None,
        Link::WithOldPeer => {
            let mut waits = Vec::with_capacity(OLD_PEER_ASKS);
            for _ in 0..OLD_PEER_ASKS {
                let ms = lab.old_peer_asks(OLD_PROGRAM_TIMEOUT_MS)?;
                waits.push(std::time::Duration::from_secs_f64(ms / 1000.0));
            }
            Some(Percentiles::of(&mut waits))
        }
    };
    let lan = lab.b_lan();
    Ok(Round {
        number,
        link: lab.link,
        misses,
        repeated_misses,
        hits,
        queries: queries(lab).saturating_sub(queries_before),
        old_peers_heard: lan["old_peers_heard"].as_array().map_or(0, Vec::len),
        old_peer_waits,
    })
}

fn main() -> BenchResult<()> {
    if let Some(targets) = std::env::var_os(TARGETS_ENV) {
        return client::run(Path::new(&targets));
    }
    let load_at_start = load_average();
    let peerix = peerix_bin();
    eprintln!("lan_mode: starting the two labs");
    let Some(peerix_only) = Lab::start(Link::PeerixOnly, &peerix)? else {
        println!("lan_mode: skipped, the LAN lab needs root");
        return Ok(());
    };
    let Some(with_old_peer) = Lab::start(Link::WithOldPeer, &peerix)? else {
        println!("lan_mode: skipped, the LAN lab needs root");
        return Ok(());
    };
    let timeout_ms = with_old_peer.b_lan()["timeout_ms"]
        .as_u64()
        .ok_or("B's /status names no LAN timeout")?;
    let mut labs = [peerix_only, with_old_peer];
    let mut rounds = Vec::with_capacity(2 * ROUNDS);
    for number in 1..=ROUNDS {
        for lab in &mut labs {
            let round = run_round(lab, number)?;
            println!("{round}");
            rounds.push(round);
        }
    }
    let report = render_report(&rounds, timeout_ms, &load_at_start);
    println!("{report}");
    let file = write_report("bench-lan_mode.md", &report)?;
    eprintln!("lan_mode: report written to {}", file.display());
    Ok(())
}
