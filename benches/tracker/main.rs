//! Tracker benchmark (issue 11, "Speed"): a release `peerix tracker` filled with signed writes
//! at 10 peers × 10,000 paths and at 1,000 peers × 10,000 paths, both drawn from 50,000
//! distinct paths, measured in alternating rounds (10 peers, then 1,000, then 10 again...) so
//! both see the same machine.
//!
//! Each round measures, per tracker:
//! - a full announce (`/packages/batch` of 10,000 new draws) from 20 of its peers: latency;
//! - 50 deltas (100 added, 100 removed): latency;
//! - `/find` of random paths from 8 keep-alive HTTP/1.1 clients: requests/s, p50, p99;
//! - `/membership` whole and as the delta since the round began: size and latency;
//! - the tracker's RSS (VmHWM, VmRSS).
//!
//! The issue's targets at 1,000 peers: `/find` p99 ≤ 2 ms and ≤ 2× the 10-peer figure, RSS
//! ≤ 1 GiB, a full announce of 10,000 hashes ≤ 100 ms (reported, not asserted). Run:
//!
//! ```text
//! cargo bench --bench tracker
//! PEERIX_TRACKER_BENCH_ROUNDS=1 cargo bench --bench tracker
//! ```
//!
//! The markdown table is printed and written to `target/bench-tracker.md`.
#![forbid(unsafe_code)]

#[allow(dead_code)]
#[path = "../http_front/bench_env.rs"]
mod bench_env;
#[allow(dead_code)]
#[path = "../http_front/http_client.rs"]
mod http_client;
#[allow(dead_code)]
#[path = "../../tests/common/proc_stats.rs"]
mod proc_stats;
#[path = "../../tests/common/tracker_process.rs"]
mod tracker_process;

mod load;

use std::time::{Duration, Instant};

use bench_env::{load_average, machine_line, peerix_bin, write_report};
use load::{find_load, percentile, Draws, FindFigures};
use peerix::wire::tracker::{parse_answer, MembershipAnswer, WritePayload};
use proc_stats::status_field;
use tracker_process::{store_hash, TestPeer, TrackerProcess};

const PATHS: u32 = 50_000;
const PER_PEER: usize = 10_000;
const ANNOUNCES_PER_ROUND: usize = 20;
const DELTAS_PER_ROUND: usize = 50;
const DELTA_SIZE: usize = 100;
const FIND_CLIENTS: usize = 8;
const FINDS_PER_CLIENT: usize = 2_500;

/// One tracker under test and the peers that fill it.
struct Scale {
    tracker: TrackerProcess,
    peers: Vec<TestPeer>,
    _dir: tempfile::TempDir,
}

impl Scale {
    fn fill(count: usize, draws: &mut Draws) -> Scale {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let unlimited = [
            "--ip-rate",
            "1e9",
            "--ip-burst",
            "1e9",
            "--peer-rate",
            "1e9",
        ];
        let tracker = TrackerProcess::start_binary(
            &peerix_bin(),
            &dir.path().join("tracker.redb"),
            &[&unlimited[..], &["--peer-burst", "1e9", "--ttl", "100000"]].concat(),
        );
        let started = Instant::now();
        let peers: Vec<TestPeer> = (0..count as u64)
            .map(|n| TestPeer::new(1_000 + n))
            .collect();
        for (n, peer) in peers.iter().enumerate() {
            tracker.write_ok(peer, announce(n));
            tracker.write_ok(peer, full_set(draws));
        }
        eprintln!(
            "filled {count} peers × {PER_PEER} paths in {:.1?}",
            started.elapsed()
        );
        Scale {
            tracker,
            peers,
            _dir: dir,
        }
    }
}

fn announce(n: usize) -> WritePayload {
    let port = 20_000 + (n % 40_000) as u16;
    WritePayload::Announce {
        port,
        addrs: vec![
            format!("/ip4/10.0.{}.{}/tcp/{port}", n / 250, n % 250 + 1)
                .parse()
                .expect("an address"),
            format!("/ip4/10.0.{}.{}/udp/{port}/quic-v1", n / 250, n % 250 + 1)
                .parse()
                .expect("an address"),
        ],
    }
}

fn full_set(draws: &mut Draws) -> WritePayload {
    WritePayload::PackagesBatch {
        hashes: draws
            .distinct(PER_PEER)
            .into_iter()
            .map(store_hash)
            .collect(),
    }
}

/// Latencies of writes signed beforehand, so only the tracker's time counts.
fn timed_writes(tracker: &TrackerProcess, writes: Vec<(&TestPeer, WritePayload)>) -> Vec<Duration> {
    let bodies: Vec<(&'static str, Vec<u8>)> = writes
        .into_iter()
        .map(|(peer, payload)| (payload.route(), peer.sign(payload)))
        .collect();
    bodies
        .into_iter()
        .map(|(route, body)| {
            let started = Instant::now();
            let reply = tracker.post(route, &body);
            let took = started.elapsed();
            assert_eq!(
                reply.status,
                200,
                "{}",
                String::from_utf8_lossy(&reply.body)
            );
            took
        })
        .collect()
}

struct Round {
    peers: usize,
    announce: Vec<Duration>,
    delta: Vec<Duration>,
    find: FindFigures,
    membership_full: (usize, Duration, usize),
    membership_delta: (usize, Duration, usize, usize),
    hwm_kib: u64,
    rss_kib: u64,
}

fn membership(
    tracker: &TrackerProcess,
    since: Option<(u64, u64)>,
) -> (MembershipAnswer, usize, Duration) {
    let path = match since {
        Some((e, v)) => format!("/membership?since={e}.{v}"),
        None => "/membership".to_owned(),
    };
    let started = Instant::now();
    let reply = tracker.get(&path);
    let took = started.elapsed();
    let answer = parse_answer(&reply.body).expect("a membership answer");
    (answer, reply.body.len(), took)
}

fn round(scale: &Scale, draws: &mut Draws, runtime: &tokio::runtime::Runtime) -> Round {
    let tracker = &scale.tracker;
    let (before, _, _) = membership(tracker, None);
    let announcers = scale.peers.iter().cycle().take(ANNOUNCES_PER_ROUND);
    let announce = timed_writes(
        tracker,
        announcers.map(|peer| (peer, full_set(draws))).collect(),
    );
    let deltas = scale
        .peers
        .iter()
        .cycle()
        .take(DELTAS_PER_ROUND)
        .map(|peer| {
            let added = draws
                .distinct(DELTA_SIZE)
                .into_iter()
                .map(store_hash)
                .collect();
            let removed = draws
                .distinct(DELTA_SIZE)
                .into_iter()
                .map(store_hash)
                .collect();
            (peer, WritePayload::PackagesDelta { added, removed })
        })
        .collect();
    let delta = timed_writes(tracker, deltas);
    let targets: Vec<Vec<String>> = (0..FIND_CLIENTS)
        .map(|_| {
            (0..FINDS_PER_CLIENT)
                .map(|_| format!("/find/{}", store_hash(draws.below(PATHS))))
                .collect()
        })
        .collect();
    let addr = tracker
        .url
        .trim_start_matches("http://")
        .parse()
        .expect("the tracker's address");
    let find = runtime.block_on(find_load(addr, targets));
    let (full, full_bytes, full_took) = membership(tracker, None);
    let (changed, delta_bytes, delta_took) =
        membership(tracker, Some((before.epoch, before.version)));
    assert!(!changed.full, "the log holds a round's changes");
    Round {
        peers: scale.peers.len(),
        announce,
        delta,
        find,
        membership_full: (full.added.len(), full_took, full_bytes),
        membership_delta: (
            changed.added.len() + changed.removed.len(),
            delta_took,
            delta_bytes,
            (full.version - before.version) as usize,
        ),
        hwm_kib: status_field(tracker.pid(), "VmHWM:"),
        rss_kib: status_field(tracker.pid(), "VmRSS:"),
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

fn row(n: usize, r: &mut Round) -> String {
    format!(
        "| {n} | {} | {} / {} / {} | {} / {} | {:.0} | {} / {} | {} h, {} ms, {} KiB | {} ch (v+{}), {} ms, {} KiB | {} / {} |\n",
        r.peers,
        ms(percentile(&mut r.announce, 0.5)),
        ms(percentile(&mut r.announce, 0.99)),
        ms(percentile(&mut r.announce, 1.0)),
        ms(percentile(&mut r.delta, 0.5)),
        ms(percentile(&mut r.delta, 0.99)),
        r.find.per_second,
        ms(r.find.p50),
        ms(r.find.p99),
        r.membership_full.0,
        ms(r.membership_full.1),
        r.membership_full.2 >> 10,
        r.membership_delta.0,
        r.membership_delta.3,
        ms(r.membership_delta.1),
        r.membership_delta.2 >> 10,
        r.hwm_kib >> 10,
        r.rss_kib >> 10,
    )
}

fn main() {
    let load_at_start = load_average();
    let rounds: usize = std::env::var("PEERIX_TRACKER_BENCH_ROUNDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(3);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let mut draws = Draws::new(PATHS);
    let small = Scale::fill(10, &mut draws);
    let big = Scale::fill(1_000, &mut draws);
    let mut report = String::from("# Tracker benchmark\n\n");
    report.push_str(&machine_line(&load_at_start));
    report.push_str(&format!(
        "- {PER_PEER} paths per peer from {PATHS}; per round: {ANNOUNCES_PER_ROUND} full announces, \
         {DELTAS_PER_ROUND} deltas of {DELTA_SIZE}+{DELTA_SIZE}, {FIND_CLIENTS} × {FINDS_PER_CLIENT} /find \
         over keep-alive connections\n\n"
    ));
    report.push_str(
        "| round | peers | full announce p50 / p99 / max ms | delta p50 / p99 ms | /find req/s | /find p50 / p99 ms | /membership full | /membership delta | VmHWM / VmRSS MiB |\n\
         |---|---|---|---|---|---|---|---|---|\n",
    );
    for n in 1..=rounds {
        for scale in [&small, &big] {
            let mut figures = round(scale, &mut draws, &runtime);
            let line = row(n, &mut figures);
            eprint!("{line}");
            report.push_str(&line);
        }
    }
    report.push_str(&format!(
        "\n- /membership: h = hashes in the whole set; ch = hashes in the delta since the round began, v+ = versions (set changes) since then.\n- load average at end: {}\n",
        load_average()
    ));
    println!("{report}");
    match write_report("bench-tracker.md", &report) {
        Ok(path) => eprintln!("report written to {}", path.display()),
        Err(e) => eprintln!("cannot write the report: {e}"),
    }
}
