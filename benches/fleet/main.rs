//! Fleet benchmark: one holder and fifteen fetchers on one LAN (network namespaces on a bridge,
//! every node's upload capped at 10 MB/s), one signed 64 MiB path wanted by all of them at once.
//! The figure is the time until all fifteen have it, against one fetcher alone measured in the
//! same run: one server alone would take about 15×; the target is at most 3×.
//!
//! Rounds alternate, "one" then "fleet", `FLEET_ROUNDS` pairs (default 2). Every round starts
//! fresh fetchers on fresh stores; each runs `nix copy --from` its own Peerix inside its
//! namespace with `require-sigs = true` and only the holder's key trusted, into the store its
//! Peerix serves. A round records each copy's time, the holder's upload (its node's `bytes_out`)
//! and each fetcher's, and checks every fetcher's NAR against the holder's (SHA-256 of
//! `nix-store --dump`). See `lab.rs` for the nodes.
//!
//! Needs root (network namespaces `fb-*`, removed at the end and, when a killed run left them,
//! at the start) and real Nix; prints "skipped" without root. Nothing leaves the lab. Run:
//!
//! ```text
//! cargo bench --bench fleet
//! ```
//!
//! Each round is printed as it ends; the markdown report is printed and written to
//! `target/bench-fleet.md`.

#![forbid(unsafe_code)]

#[path = "../http_front/bench_env.rs"]
mod bench_env;
#[path = "../../tests/common/mod.rs"]
mod common;
#[path = "../../tests/lan_lab/mod.rs"]
mod lan_lab;

mod lab;
mod report;

use std::error::Error;
use std::fmt;
use std::time::Duration;

use bench_env::{load_average, peerix_bin, write_report};
use lab::{Copies, Lab, MAX_FETCHERS};
use report::render_report;

type BenchResult<T> = Result<T, Box<dyn Error + Send + Sync>>;

/// Pairs of rounds (one, fleet), unless `FLEET_ROUNDS` says otherwise.
const DEFAULT_PAIRS: usize = 2;
const PAIRS_ENV: &str = "FLEET_ROUNDS";
/// The fleet's time against one fetcher's that the issue asks for at most.
pub(crate) const TARGET_RATIO: f64 = 3.0;

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    One,
    Fleet,
}

impl Kind {
    fn fetchers(self) -> usize {
        match self {
            Kind::One => 1,
            Kind::Fleet => MAX_FETCHERS,
        }
    }
}

/// One round: its fetchers' copies and what they had around them.
pub(crate) struct Round {
    pub(crate) pair: usize,
    pub(crate) kind: Kind,
    pub(crate) copies: Copies,
    /// The fewest peers a fetcher was connected to at the start (all: the fetchers).
    pub(crate) fewest_connected: usize,
    pub(crate) nar_size: u64,
}

impl Round {
    pub(crate) fn fetchers(&self) -> usize {
        self.copies.each.len()
    }

    /// `bytes` in NARs of the path.
    pub(crate) fn nars(&self, bytes: u64) -> f64 {
        bytes as f64 / self.nar_size as f64
    }

    pub(crate) fn fetchers_upload(&self) -> u64 {
        self.copies.fetcher_uploads.iter().sum()
    }
}

pub(crate) fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// The middle value (the mean of the two middle ones for an even count); 0 for none.
pub(crate) fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

impl fmt::Display for Round {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let each: Vec<f64> = self.copies.each.iter().copied().map(secs).collect();
        let (first, last) = (
            each.iter().copied().fold(f64::INFINITY, f64::min),
            each.iter().copied().fold(0.0, f64::max),
        );
        match self.kind {
            Kind::One => write!(f, "round {}, one fetcher: {:.2} s", self.pair, secs(self.copies.all))?,
            Kind::Fleet => write!(
                f,
                "round {}, {} fetchers at once: all done in {:.2} s (first {first:.2}, median {:.2}, \
                 last {last:.2}); fewest peers connected at the start: {} of {}",
                self.pair,
                self.fetchers(),
                secs(self.copies.all),
                median(&each),
                self.fewest_connected,
                self.fetchers(),
            )?,
        }
        let uploads = &self.copies.fetcher_uploads;
        write!(
            f,
            "\n  holder uploaded {:.1} MB ({:.2} NARs); fetchers {:.1} MB ({:.2} NARs, most by one \
             {:.2}); NAR equal to the holder's: {}/{}; fetched with the swarm: {}/{}",
            self.copies.holder_upload as f64 / 1e6,
            self.nars(self.copies.holder_upload),
            self.fetchers_upload() as f64 / 1e6,
            self.nars(self.fetchers_upload()),
            self.nars(uploads.iter().copied().max().unwrap_or(0)),
            self.copies.equal_nars,
            self.fetchers(),
            self.copies.swarmed,
            self.fetchers(),
        )
    }
}

fn run_round(lab: &Lab, pair: usize, kind: Kind) -> BenchResult<Round> {
    let fetchers = lab.fetchers(kind.fetchers())?;
    let copies = lab.copy_all(&fetchers)?;
    Ok(Round {
        pair,
        kind,
        copies,
        fewest_connected: fetchers.fewest_connected,
        nar_size: lab.nar_size,
    })
}

fn pairs() -> BenchResult<usize> {
    match std::env::var(PAIRS_ENV) {
        Ok(text) => match text.parse() {
            Ok(pairs) if pairs >= 1 => Ok(pairs),
            _ => Err(format!("{PAIRS_ENV}={text:?}: want a number of pairs, 1 or more").into()),
        },
        Err(_) => Ok(DEFAULT_PAIRS),
    }
}

fn main() -> BenchResult<()> {
    let pairs = pairs()?;
    let load_at_start = load_average();
    eprintln!("fleet: starting the lab and the holder");
    let Some(lab) = Lab::start(&peerix_bin())? else {
        println!("fleet: skipped, the lab needs root for network namespaces");
        return Ok(());
    };
    eprintln!(
        "fleet: {} ({} bytes of NAR), {pairs} pairs of rounds",
        lab.path, lab.nar_size
    );
    let mut rounds = Vec::with_capacity(2 * pairs);
    for pair in 1..=pairs {
        for kind in [Kind::One, Kind::Fleet] {
            let round = run_round(&lab, pair, kind)?;
            println!("{round}");
            rounds.push(round);
        }
        let (one, fleet) = (&rounds[rounds.len() - 2], &rounds[rounds.len() - 1]);
        println!(
            "pair {pair}: fleet / one = {:.2}x",
            secs(fleet.copies.all) / secs(one.copies.all)
        );
    }
    let report = render_report(&rounds, &load_at_start);
    println!("{report}");
    let file = write_report("bench-fleet.md", &report)?;
    eprintln!("fleet: report written to {}", file.display());
    Ok(())
}
