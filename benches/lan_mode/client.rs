//! The client that measures B's front from inside B's namespace, where the front listens on
//! loopback: the bench binary runs itself there (`ip netns exec`) in client mode, which asks for
//! every target of a file in turn over one keep-alive connection and prints each answer's status
//! and latency as JSON. One process per batch, so process start-up is never measured.

use std::fs;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::common::front_latency::Percentiles;
use crate::http_client::HttpConnection;
use crate::lan_lab::{Host, LanLab};
use crate::BenchResult;

/// Set to a file of targets (one request target a line), it makes the bench binary the client.
pub(crate) const TARGETS_ENV: &str = "PEERIX_LAN_BENCH_TARGETS";
/// B's front, as its own namespace reaches it.
const FRONT: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 12304);
/// The longest one answer may take before the client gives up on it (and reconnects).
const ANSWER_LIMIT: Duration = Duration::from_secs(10);

/// One request's outcome: its HTTP status (0 when it failed) and how long it took.
#[derive(Clone, Copy, Serialize, Deserialize)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) micros: u64,
}

/// A batch's figures: percentiles of every answer, and how many had another status.
#[derive(Clone, Copy)]
pub(crate) struct Measured {
    pub(crate) latency: Percentiles,
    pub(crate) unexpected: usize,
}

impl Measured {
    fn of(answers: &[Answer], expected: u16) -> Measured {
        let mut latencies: Vec<Duration> = answers
            .iter()
            .map(|a| Duration::from_micros(a.micros))
            .collect();
        Measured {
            latency: Percentiles::of(&mut latencies),
            unexpected: answers.iter().filter(|a| a.status != expected).count(),
        }
    }
}

impl std::fmt::Display for Measured {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}, {} unexpected", self.latency, self.unexpected)
    }
}

/// Asks B's front in `host` for the narinfo of each of `hashes` in turn, from a client in that
/// host's namespace; every answer should have `expected` status.
pub(crate) fn narinfos_in(
    lab: &LanLab,
    host: Host,
    hashes: &[String],
    expected: u16,
) -> BenchResult<Measured> {
    let mut targets = tempfile::NamedTempFile::new()?;
    for hash in hashes {
        std::io::Write::write_all(&mut targets, format!("/{hash}.narinfo\n").as_bytes())?;
    }
    let out = lab
        .command(host, std::env::current_exe()?)
        .env(TARGETS_ENV, targets.path())
        .stdin(Stdio::null())
        .output()?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(format!("the client in {host:?} failed: {stderr}").into());
    }
    let answers: Vec<Answer> = serde_json::from_slice(&out.stdout)?;
    if answers.len() != hashes.len() {
        let count = answers.len();
        return Err(format!("the client answered {count} of {} targets", hashes.len()).into());
    }
    Ok(Measured::of(&answers, expected))
}

/// Client mode: every target of `targets_file` in turn; the answers as JSON on stdout.
pub(crate) fn run(targets_file: &Path) -> BenchResult<()> {
    let targets = fs::read_to_string(targets_file)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let answers = runtime.block_on(ask_each(targets.lines()))?;
    println!("{}", serde_json::to_string(&answers)?);
    Ok(())
}

async fn ask_each<'a>(targets: impl Iterator<Item = &'a str>) -> BenchResult<Vec<Answer>> {
    let mut connection = HttpConnection::connect(FRONT).await?;
    let mut answers = Vec::new();
    for target in targets {
        let asked = Instant::now();
        let answer = tokio::time::timeout(ANSWER_LIMIT, connection.get_discarding(target)).await;
        let micros = u64::try_from(asked.elapsed().as_micros()).unwrap_or(u64::MAX);
        let status = match answer {
            Ok(Ok((status, _))) => status,
            failed => {
                eprintln!("lan_mode client: {target}: {failed:?}");
                connection = HttpConnection::connect(FRONT).await?;
                0
            }
        };
        answers.push(Answer { status, micros });
    }
    Ok(answers)
}
