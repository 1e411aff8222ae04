//! NAT traversal benchmark, in the emulated internet of tests/nat_lab: two homes behind
//! port-restricted cone NATs, 20 ms of round trip added between them (half between each home and
//! the internet), a relay and a second public node on the internet. A holds the fixture (its
//! 100 MiB path is the NAR measured), B starts empty; both know only the two public nodes.
//!
//! Measured, in the same run:
//! 1. the time from starting B to B's first direct connection to A (found through the relay's
//!    DHT, reached through the relay, upgraded by hole punching), and to B serving A's narinfo;
//! 2. the 100 MiB NAR fetched by curl in home 2 from B's front (B streams it from A over the
//!    punched connection, hash-checked), against the baseline: the same NAR fetched by curl in
//!    home 2 from A's own front over plain HTTP, through a port forward on A's router, i.e. the
//!    same emulated path with no libp2p in it. Rounds alternate the two, best of each shown.
//!
//! Needs root (network namespaces, nftables). Nothing leaves the lab's namespaces. Run:
//!
//! ```text
//! cargo bench --bench nat_path
//! ```
//!
//! The markdown table is printed and written to `target/bench-nat_path.md`.

#![forbid(unsafe_code)]

// The NAT lab starts the binary itself; `peerix_bin` is the other benches'.
#[allow(dead_code)]
#[path = "http_front/bench_env.rs"]
mod bench_env;
#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/nat_lab/mod.rs"]
mod nat_lab;

use std::error::Error;
use std::fmt::Write as _;
use std::process::Output;
use std::time::{Duration, Instant};

use bench_env::{load_average, machine_line, write_report};
use common::{hash_part, Fixture};
use nat_lab::peerix::{connection_to, get, node_status, peer_id, world_with_rtt, World};
use nat_lab::{Host, NatKind, Router};

type BenchResult<T> = Result<T, Box<dyn Error + Send + Sync>>;

const RTT: Duration = Duration::from_millis(20);
const ROUNDS: usize = 3;
/// How long B may take to connect to A directly.
const DIRECT_TIMEOUT: Duration = Duration::from_secs(90);
const POLL: Duration = Duration::from_millis(20);
/// A's front port, forwarded on its router for the baseline.
const A_FRONT_PORT: u16 = 12304;

/// The NAR's path on a front, from that front's narinfo for `hash`.
fn nar_url(narinfo: &[u8]) -> BenchResult<String> {
    let text = String::from_utf8_lossy(narinfo);
    let url = text
        .lines()
        .find_map(|l| l.strip_prefix("URL: "))
        .ok_or("narinfo without URL")?;
    Ok(url.trim().to_owned())
}

/// curl in home 2: (bytes per second, bytes) of one whole GET of `url`.
fn fetch_in_home2(w: &World, url: &str) -> BenchResult<(f64, u64)> {
    let out: Output = w
        .lab
        .command(Host::Home2, "curl")
        .args(["-sS", "--fail", "--max-time", "300", "-o", "/dev/null"])
        .args(["-w", "%{speed_download} %{size_download}"])
        .arg(url)
        .output()?;
    if !out.status.success() {
        return Err(format!("{url}: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let (speed, size) = text.split_once(' ').ok_or("curl printed no speed")?;
    Ok((speed.trim().parse()?, size.trim().parse()?))
}

/// Polls B until `ready`, returning the time since B was started.
fn time_until(w: &World, mut ready: impl FnMut() -> bool) -> BenchResult<Duration> {
    loop {
        if ready() {
            return Ok(w.b_started.elapsed());
        }
        if w.b_started.elapsed() > DIRECT_TIMEOUT {
            return Err(format!("not within {DIRECT_TIMEOUT:?}").into());
        }
        std::thread::sleep(POLL);
    }
}

#[derive(Default)]
struct Results {
    to_direct: Option<Duration>,
    to_narinfo: Option<Duration>,
    /// Bytes per second, per round.
    through_b: Vec<f64>,
    plain_http: Vec<f64>,
    nar_bytes: u64,
    failures: Vec<String>,
}

fn main() -> BenchResult<()> {
    let load_at_start = load_average();
    let f = Fixture::get();
    eprintln!("nat_path: building the lab, {RTT:?} round trip between the homes");
    let cone = (NatKind::PortRestrictedCone, NatKind::PortRestrictedCone);
    let Some(w) = world_with_rtt(cone, RTT, (&[], &[])) else {
        eprintln!("nat_path: skipped, the lab needs root");
        return Ok(());
    };
    let mut results = Results::default();
    let a_id = peer_id(&w.lab, &w.a);
    let direct =
        || connection_to(&node_status(&w.lab, &w.b), &a_id).is_some_and(|c| c["direct"] == true);
    match time_until(&w, direct) {
        Ok(after) => results.to_direct = Some(after),
        Err(e) => results.failures.push(format!("direct connection: {e}")),
    }
    let narinfo = format!("/{}.narinfo", hash_part(&f.big));
    let served = || get(&w.lab, &w.b, &narinfo).is_some_and(|(status, _, _)| status == 200);
    match time_until(&w, served) {
        Ok(after) => results.to_narinfo = Some(after),
        Err(e) => results.failures.push(format!("narinfo: {e}")),
    }
    eprintln!(
        "  B direct to A after {:?}, serving A's narinfo after {:?}",
        results.to_direct, results.to_narinfo
    );

    w.lab.forward_port(Router::Router1, A_FRONT_PORT);
    let a_front = format!("http://{}:{A_FRONT_PORT}", w.lab.addr(Host::Router1));
    let urls = (|| -> BenchResult<(String, String)> {
        let (_, b_narinfo, _) = get(&w.lab, &w.b, &narinfo).ok_or("B's narinfo")?;
        let (_, a_narinfo, _) = get(&w.lab, &w.a, &narinfo).ok_or("A's narinfo")?;
        Ok((
            format!("{}/{}", w.b.front, nar_url(&b_narinfo)?),
            format!("{a_front}/{}", nar_url(&a_narinfo)?),
        ))
    })();
    match urls {
        Ok((through_b, plain)) => {
            for round in 0..ROUNDS {
                let order = if round % 2 == 0 {
                    [(&through_b, true), (&plain, false)]
                } else {
                    [(&plain, false), (&through_b, true)]
                };
                for (url, via_b) in order {
                    let started = Instant::now();
                    match fetch_in_home2(&w, url) {
                        Ok((speed, bytes)) => {
                            let name = if via_b { "through B" } else { "plain HTTP" };
                            eprintln!("  round {}: {name}: {:.1} MB/s", round + 1, speed / 1e6);
                            results.nar_bytes = bytes;
                            let slot = if via_b {
                                &mut results.through_b
                            } else {
                                &mut results.plain_http
                            };
                            slot.push(speed);
                        }
                        Err(e) => results
                            .failures
                            .push(format!("after {:.1?}: {e}", started.elapsed())),
                    }
                }
            }
        }
        Err(e) => results.failures.push(format!("NAR URLs: {e}")),
    }

    let report = render(&results, &load_at_start);
    println!("{report}");
    let file = write_report("bench-nat_path.md", &report)?;
    eprintln!("nat_path: table written to {}", file.display());
    Ok(())
}

fn render(results: &Results, load_at_start: &str) -> String {
    let best = |values: &[f64]| values.iter().copied().reduce(f64::max);
    let mb = |v: Option<f64>| v.map_or("—".to_owned(), |v| format!("{:.1}", v / 1e6));
    let seconds =
        |d: Option<Duration>| d.map_or("—".to_owned(), |d| format!("{:.2}", d.as_secs_f64()));
    let each = |values: &[f64]| {
        let all: Vec<String> = values.iter().map(|v| format!("{:.1}", v / 1e6)).collect();
        all.join(", ")
    };
    let (through_b, plain) = (best(&results.through_b), best(&results.plain_http));
    let ratio = match (through_b, plain) {
        (Some(b), Some(p)) if p > 0.0 => format!("{:.2}", b / p),
        _ => "—".to_owned(),
    };
    let mut text = String::from("# Across two NATs: hole punching and NAR throughput\n\n");
    text.push_str(&machine_line(load_at_start));
    let _ = writeln!(
        text,
        "- tests/nat_lab: two homes behind port-restricted cone NATs (nftables masquerade), \
         {RTT:?} added round trip between them (NFQUEUE delay in the internet namespace); a relay \
         and a second public node; A holds the fixture, B starts empty; both know only the public \
         nodes"
    );
    let _ = writeln!(
        text,
        "- NAR: {} bytes, fetched whole by curl in home 2, {ROUNDS} rounds alternating, best \
         shown; per round (MB/s): through B {}; plain HTTP {}\n",
        results.nar_bytes,
        each(&results.through_b),
        each(&results.plain_http)
    );
    text.push_str("| measurement | Peerix | baseline | ratio |\n| --- | ---: | ---: | ---: |\n");
    let _ = writeln!(
        text,
        "| B's start to its first direct connection to A (s) | {} | — | — |",
        seconds(results.to_direct)
    );
    let _ = writeln!(
        text,
        "| B's start to serving A's narinfo (s) | {} | — | — |",
        seconds(results.to_narinfo)
    );
    let _ = writeln!(
        text,
        "| NAR A→B (MB/s): through B's front over the punched libp2p connection vs plain HTTP \
         from A's front through a port forward | {} | {} | {ratio} |",
        mb(through_b),
        mb(plain)
    );
    if results.failures.is_empty() {
        text.push_str("\nNo failures.\n");
    } else {
        text.push('\n');
        for failure in &results.failures {
            let _ = writeln!(text, "- {failure}");
        }
    }
    text
}
