//! Bulk transfer node to node against one core's SHA-256 (`openssl speed -evp sha256`, one
//! core), all in the same rounds: the 256 MiB NAR through B from A (target ≥ 0.5×), and
//! `peerix ipfs cat` of the same 256 MiB file held by another node, through the real CLI with its
//! stdout on /dev/null (target ≥ 0.4×). Two fresh `peerix serve --offline` pairs on 127.0.0.1 per
//! round; the three measurements alternate their order from round to round, and every round is
//! printed.

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::fs::File;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

use tokio::runtime::Runtime;

#[path = "../common/openssl_speed.rs"]
mod openssl_speed;

use crate::fixture::Fixture;
use crate::holder::Keys;
use crate::load::{nar_target, nar_throughput};
use crate::peer_addr::loopback_p2p_addr;
use crate::servers::{spawn_peerix, ServerProcess};
use crate::{BenchResult, Nodes, ADDR_TIMEOUT, BIG_NAR_BYTES, LOOPBACK_TCP, NAR_TIMEOUT, ROUNDS};

pub(crate) const TARGET_NAR_RATIO: f64 = 0.5;
pub(crate) const TARGET_CAT_RATIO: f64 = 0.4;

/// One round's figures in MB/s; `None` where the measurement failed (said on stderr).
#[derive(Clone, Copy, Default)]
pub(crate) struct BulkRound {
    pub(crate) sha256: Option<f64>,
    pub(crate) nar: Option<f64>,
    pub(crate) cat: Option<f64>,
    /// What the sending and the receiving node used per 256 MiB NAR transfer.
    pub(crate) nar_used: Option<(Used, Used)>,
    /// The same for `peerix ipfs cat` (holder, reader; the CLI's own is not included).
    pub(crate) cat_used: Option<(Used, Used)>,
}

/// What one node used for one transfer.
#[derive(Clone, Copy, Default)]
pub(crate) struct Used {
    cpu_seconds: f64,
    page_faults: f64,
}

impl Used {
    fn of(node: &ServerProcess) -> Option<Self> {
        Some(Self {
            cpu_seconds: node.cpu_seconds()?,
            page_faults: node.page_faults()? as f64,
        })
    }

    /// What was used from `self` to `later`, per transfer of `transfers`.
    fn until(self, later: Self, transfers: f64) -> Self {
        Self {
            cpu_seconds: (later.cpu_seconds - self.cpu_seconds) / transfers,
            page_faults: (later.page_faults - self.page_faults) / transfers,
        }
    }
}

#[derive(Default)]
pub(crate) struct BulkResults {
    pub(crate) rounds: Vec<BulkRound>,
    pub(crate) failures: Vec<String>,
}

/// Which figure of a round a table row shows.
type Pick = fn(&BulkRound) -> Option<f64>;

#[derive(Clone, Copy)]
enum Measurement {
    Sha256,
    Nar,
    Cat,
}

/// A node holding the fixture's big file under a CID and a second node connected to it.
struct CatPair {
    holder: ServerProcess,
    reader: ServerProcess,
    _stores: [tempfile::TempDir; 2],
    cid: String,
}

impl CatPair {
    fn start(fixture: &Fixture) -> BenchResult<Self> {
        let stores = [empty_store()?, empty_store()?];
        let listen = [OsStr::new("--listen-addrs"), OsStr::new(LOOPBACK_TCP)];
        let holder = spawn_peerix("cat holder", stores[0].path(), &listen)?;
        let reader = spawn_peerix("cat reader", stores[1].path(), &listen)?;
        let output = ipfs(
            &holder,
            &[OsStr::new("add"), big_file(fixture)?.as_os_str()],
        )?;
        let cid = String::from_utf8(output)?.trim().to_owned();
        let holder_addr = loopback_p2p_addr(&holder, ADDR_TIMEOUT)?;
        ipfs(&reader, &[OsStr::new("connect"), OsStr::new(&holder_addr)])?;
        Ok(Self {
            holder,
            reader,
            _stores: stores,
            cid,
        })
    }

    /// `peerix ipfs cat` on the reader, stdout to /dev/null, timed from start to exit.
    fn cat_mb_s(&self) -> BenchResult<f64> {
        let started = Instant::now();
        let status = Command::new(crate::bench_env::peerix_bin())
            .args(["ipfs", "--api", &format!("http://{}", self.reader.addr)])
            .args(["cat", &self.cid])
            .stdout(File::create("/dev/null")?)
            .stderr(Stdio::inherit())
            .status()?;
        let elapsed = started.elapsed();
        if !status.success() {
            return Err(format!("peerix ipfs cat exited with {status}").into());
        }
        Ok(BIG_NAR_BYTES as f64 / elapsed.as_secs_f64() / 1e6)
    }
}

fn empty_store() -> std::io::Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix("peerix-bench-cat-store-")
        .tempdir()
}

/// The big path is one regular file of `BIG_NAR_BYTES`: the store path itself.
fn big_file(fixture: &Fixture) -> BenchResult<PathBuf> {
    let prefix = format!("{}-", fixture.big_hash);
    for entry in std::fs::read_dir(fixture.nix_store_dir())? {
        let path = entry?.path();
        let is_big = path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with(&prefix));
        if is_big {
            return Ok(path);
        }
    }
    Err("the fixture's big path is missing".into())
}

fn ipfs(node: &ServerProcess, args: &[&OsStr]) -> BenchResult<Vec<u8>> {
    let output = Command::new(crate::bench_env::peerix_bin())
        .args(["ipfs", "--api", &format!("http://{}", node.addr)])
        .args(args)
        .output()?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(format!("peerix ipfs {args:?}: {stderr}").into());
    }
    Ok(output.stdout)
}

/// One round: fresh nodes, then the three measurements in this round's order.
pub(crate) fn round(
    runtime: &Runtime,
    fixture: &Fixture,
    keys: &Keys,
    round: usize,
    results: &mut BulkResults,
) {
    eprintln!(
        "p2p_front: bulk round {}/{ROUNDS}, starting nodes",
        round + 1
    );
    let started = Nodes::start(runtime, fixture, keys)
        .and_then(|nodes| Ok((nodes, CatPair::start(fixture)?)));
    let (nodes, cat) = match started {
        Ok(started) => started,
        Err(e) => {
            eprintln!("  {e}");
            results.failures.push(format!("round {}: {e}", round + 1));
            return;
        }
    };
    let order = match round % 3 {
        0 => [Measurement::Sha256, Measurement::Nar, Measurement::Cat],
        1 => [Measurement::Nar, Measurement::Cat, Measurement::Sha256],
        _ => [Measurement::Cat, Measurement::Sha256, Measurement::Nar],
    };
    let mut figures = BulkRound::default();
    for measurement in order {
        let senders = match measurement {
            Measurement::Sha256 => None,
            Measurement::Nar => Some((&nodes.a, &nodes.b)),
            Measurement::Cat => Some((&cat.holder, &cat.reader)),
        };
        let used_before = senders.and_then(used_pair);
        let (name, slot, measured) = match measurement {
            Measurement::Sha256 => (
                "openssl sha256, one core",
                &mut figures.sha256,
                openssl_speed::sha256_mb_s().map_err(Into::into),
            ),
            Measurement::Nar => (
                "NAR through B",
                &mut figures.nar,
                nar(runtime, &nodes, fixture),
            ),
            Measurement::Cat => ("peerix ipfs cat", &mut figures.cat, cat.cat_mb_s()),
        };
        // The NAR measurement fetches it once to warm up, then NAR_FETCHES times.
        let transfers = match measurement {
            Measurement::Nar => f64::from(crate::NAR_FETCHES + 1),
            _ => 1.0,
        };
        let used = used_before
            .zip(senders.and_then(used_pair))
            .map(|(before, after)| {
                (
                    before.0.until(after.0, transfers),
                    before.1.until(after.1, transfers),
                )
            });
        match measured {
            Ok(mb_per_s) => {
                let used_text = used.map_or(String::new(), |(sent, received)| {
                    format!(
                        " (CPU s: sender {:.2}, receiver {:.2}; page faults: sender {:.0}, \
                         receiver {:.0})",
                        sent.cpu_seconds,
                        received.cpu_seconds,
                        sent.page_faults,
                        received.page_faults
                    )
                });
                eprintln!("  {name}: {mb_per_s:.0} MB/s{used_text}");
                *slot = Some(mb_per_s);
                match measurement {
                    Measurement::Nar => figures.nar_used = used,
                    Measurement::Cat => figures.cat_used = used,
                    Measurement::Sha256 => {}
                }
            }
            Err(e) => {
                eprintln!("  {name}: {e}");
                results
                    .failures
                    .push(format!("round {}, {name}: {e}", round + 1));
            }
        }
    }
    results.rounds.push(figures);
}

fn used_pair((sender, receiver): (&ServerProcess, &ServerProcess)) -> Option<(Used, Used)> {
    Some((Used::of(sender)?, Used::of(receiver)?))
}

fn nar(runtime: &Runtime, nodes: &Nodes, fixture: &Fixture) -> BenchResult<f64> {
    let b = nodes.b.addr;
    runtime.block_on(async {
        let target = nar_target(b, &fixture.big_hash).await?;
        tokio::time::timeout(NAR_TIMEOUT, nar_throughput(b, &target))
            .await
            .map_err(|_| format!("NAR streaming took over {NAR_TIMEOUT:?}"))?
    })
}

/// The table (best round by ratio) and every round.
pub(crate) fn render(results: &BulkResults) -> String {
    let mut out = String::new();
    if results.rounds.is_empty() && results.failures.is_empty() {
        return out;
    }
    let ratio = |figure: Option<f64>, base: Option<f64>| Some(figure? / base?);
    let best = |pick: Pick| {
        results
            .rounds
            .iter()
            .filter_map(|r| Some((ratio(pick(r), r.sha256)?, *r)))
            .max_by(|a, b| a.0.total_cmp(&b.0))
    };
    let _ = writeln!(
        out,
        "\nBulk transfer against `openssl speed -evp sha256 -bytes 1048576 -seconds 3` (one core), \
         same rounds ({} of {ROUNDS}; the round with the best ratio):\n",
        results.rounds.len()
    );
    let _ = writeln!(
        out,
        "| measurement | Peerix (MB/s) | openssl sha256 (MB/s) | ratio | target |\n\
         | --- | ---: | ---: | ---: | --- |"
    );
    let rows: [(&str, Pick, f64); 2] = [
        (
            "NAR 256 MiB through B from A, one connection",
            |r| r.nar,
            TARGET_NAR_RATIO,
        ),
        (
            "`peerix ipfs cat` 256 MiB from another node, CLI to /dev/null",
            |r| r.cat,
            TARGET_CAT_RATIO,
        ),
    ];
    for (name, pick, target) in rows {
        match best(pick) {
            Some((ratio, round)) => {
                let _ = writeln!(
                    out,
                    "| {name} | {:.0} | {:.0} | {ratio:.2} | ≥ {target} ({}) |",
                    pick(&round).unwrap_or_default(),
                    round.sha256.unwrap_or_default(),
                    if ratio >= target { "met" } else { "not met" }
                );
            }
            None => {
                let _ = writeln!(out, "| {name} | failed | | | ≥ {target} |");
            }
        }
    }
    let show = |v: Option<f64>| v.map_or("failed".to_owned(), |v| format!("{v:.0}"));
    let show_used = |v: Option<(Used, Used)>| {
        v.map_or("?".to_owned(), |(sent, received)| {
            format!(
                "{:.2} + {:.2} s, {:.0} + {:.0} page faults",
                sent.cpu_seconds, received.cpu_seconds, sent.page_faults, received.page_faults
            )
        })
    };
    let _ = writeln!(
        out,
        "\nEvery round (MB/s): openssl sha256 / NAR through B / ipfs cat; then the CPU seconds and \
         page faults the sending + the receiving node used per 256 MiB, for the NAR and for the cat:"
    );
    for (i, r) in results.rounds.iter().enumerate() {
        let _ = writeln!(
            out,
            "- round {}: {} / {} / {}; CPU {} and {}",
            i + 1,
            show(r.sha256),
            show(r.nar),
            show(r.cat),
            show_used(r.nar_used),
            show_used(r.cat_used)
        );
    }
    for failure in &results.failures {
        let _ = writeln!(out, "- failure: {failure}");
    }
    out
}
