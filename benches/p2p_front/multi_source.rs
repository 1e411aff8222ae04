//! Two more measurements of the same run, after the front rounds:
//!
//! 1. Multi-source: the 256 MiB NAR through a fresh B when one holder has it and when two
//!    holders have it, every holder capped with `--bandwidth-limit 50M` (B is not capped). With
//!    two connected holders whose narinfo answers carry the NAR's CID, B reads the NAR over
//!    Bitswap from both at once; with one, it streams it from that one (/peerix/nar/1.0.0). Holder
//!    1 serves the fixture store, holder 2 a second chroot store holding just the big path (`nix
//!    copy --no-check-sigs`), both signing with A's key. Every holder's publication scan has
//!    finished before B starts; B is measured after it answers the narinfo, is connected to every
//!    holder and has had [`INDEX_SETTLE`] for the holders' indexes. The whole NAR is fetched once
//!    per configuration and round (fresh holders and B each time) and its SHA-256 compared with
//!    `sha256sum` of the NAR dumped from the fixture, so a broken fetch is never reported as fast.
//! 2. Publication scan vs `sha256sum`: holder 1 starts alone on the fixture store (1,000 small
//!    paths + the big one) in every configuration; its scan's rate as `GET /status` reports it,
//!    and its NAR bytes over the time from spawning the process to `GET /status` showing the scan
//!    finished, against `sha256sum` of the big NAR's file (page cache warm) in the same round.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::runtime::Runtime;

use crate::fixture::Fixture;
use crate::holder::Keys;
use crate::http_client::HttpConnection;
use crate::peer_addr::loopback_p2p_addr;
use crate::scan_wait::wait_until_scanned;
use crate::servers::{spawn_peerix, ServerProcess};
use crate::{BenchResult, ADDR_TIMEOUT, LOOPBACK_TCP};

/// Every holder's `--bandwidth-limit`: 50e6 bytes/s in each direction.
pub(crate) const BANDWIDTH_LIMIT: &str = "50M";
pub(crate) const BANDWIDTH_LIMIT_MB_PER_S: f64 = 50.0;
/// Two holders against one (reported, not asserted).
pub(crate) const TARGET_SPEEDUP: f64 = 1.8;
/// The scan's rate against `sha256sum`'s (reported, not asserted).
pub(crate) const TARGET_SCAN_RATIO: f64 = 0.6;
/// A whole NAR at well under a tenth of one holder's cap still finishes.
const FETCH_TIMEOUT: Duration = Duration::from_secs(120);
/// How long B may take to be connected to every holder.
const PEERS_TIMEOUT: Duration = Duration::from_secs(10);
/// After B answers the narinfo: time for every holder's index to reach it.
pub(crate) const INDEX_SETTLE: Duration = Duration::from_secs(1);
const NIX_CONFIG: &str = "experimental-features = nix-command\nsubstituters =";
const READ_BUFFER: usize = 256 * 1024;

/// What every round shares: the second holder's store and the NAR's file and hash.
pub(crate) struct MultiSource {
    _dir: tempfile::TempDir,
    /// A chroot store holding just the big path.
    pub(crate) second_store: PathBuf,
    /// `nix-store --dump` of the big path, for `sha256sum`.
    pub(crate) nar_file: PathBuf,
    pub(crate) nar_sha256: String,
    pub(crate) nar_bytes: u64,
}

/// One whole NAR through B.
pub(crate) struct Fetch {
    pub(crate) mb_per_s: f64,
    /// Bytes B received from each holder during the fetch (libp2p traffic), in holder order.
    pub(crate) bytes_from: Vec<u64>,
}

/// One publication scan of the fixture store, by holder 1 started alone.
pub(crate) struct ScanSample {
    /// `bytes_per_second` as `GET /status` reports it.
    pub(crate) reported_mb_per_s: f64,
    /// The scan's NAR bytes over the time from spawning the process to the finished scan.
    pub(crate) from_start_mb_per_s: f64,
    pub(crate) from_start: Duration,
    pub(crate) bytes: u64,
}

#[derive(Default)]
pub(crate) struct MultiSourceResults {
    /// Index 0: one holder, 1: two holders.
    pub(crate) fetches: [Vec<Fetch>; 2],
    pub(crate) scans: Vec<ScanSample>,
    /// Holder 2's scans (just the big path), for comparison.
    pub(crate) big_only_scans: Vec<ScanSample>,
    pub(crate) sha256sum_mb_per_s: Vec<f64>,
    pub(crate) failures: Vec<String>,
}

impl MultiSourceResults {
    pub(crate) fn failures_push(&mut self, failure: String) {
        self.failures.push(failure);
    }
}

impl MultiSource {
    /// Dumps the big path's NAR, hashes it (which also warms the page cache) and copies the path
    /// into a second store.
    pub(crate) fn prepare(fixture: &Fixture) -> BenchResult<Self> {
        let dir = tempfile::Builder::new()
            .prefix("peerix-bench-p2p-second-")
            .tempdir()?;
        let store_dir = fixture.nix_store_dir();
        let big_name = std::fs::read_dir(&store_dir)?
            .filter_map(Result::ok)
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .find(|name| name.starts_with(&fixture.big_hash) && !name.ends_with(".lock"))
            .ok_or("the big path is not in the fixture store")?;

        let nar_file = dir.path().join("big.nar");
        let output = nix_command("nix-store")
            .arg("--dump")
            .arg(store_dir.join(&big_name))
            .stdout(std::fs::File::create(&nar_file)?)
            .output()?;
        check_success("nix-store --dump", &output)?;
        let nar_bytes = std::fs::metadata(&nar_file)?.len();
        let (nar_sha256, _) = sha256sum(&nar_file)?;

        let second_store = dir.path().join("root");
        let output = nix_command("nix")
            .args(["copy", "--no-check-sigs", "--from"])
            .arg(format!("local?root={}", fixture.store_root.display()))
            .arg("--to")
            .arg(format!("local?root={}", second_store.display()))
            .arg(format!("/nix/store/{big_name}"))
            .output()?;
        check_success("nix copy", &output)?;
        Ok(Self {
            _dir: dir,
            second_store,
            nar_file,
            nar_sha256,
            nar_bytes,
        })
    }

    /// One round: one holder and two holders (alternating which goes first), then `sha256sum`.
    pub(crate) fn round(
        &self,
        runtime: &Runtime,
        fixture: &Fixture,
        keys: &Keys,
        round: usize,
        results: &mut MultiSourceResults,
    ) {
        let order = if round % 2 == 1 { [2, 1] } else { [1, 2] };
        for holders in order {
            eprintln!(
                "p2p_front: multi-source round {}, {holders} holder(s)",
                round + 1
            );
            match self.through_b(runtime, fixture, keys, holders, results) {
                Ok(fetch) => {
                    eprintln!(
                        "  NAR through B: {:.1} MB/s; bytes from each holder: {:?}",
                        fetch.mb_per_s, fetch.bytes_from
                    );
                    results.fetches[holders - 1].push(fetch);
                }
                Err(e) => {
                    eprintln!("  {e}");
                    let failure = format!("round {}, {holders} holder(s): {e}", round + 1);
                    results.failures.push(failure);
                }
            }
        }
        match self.sha256sum_rate() {
            Ok(mb_per_s) => {
                eprintln!("  sha256sum of the NAR: {mb_per_s:.0} MB/s");
                results.sha256sum_mb_per_s.push(mb_per_s);
            }
            Err(e) => results
                .failures
                .push(format!("round {}: sha256sum: {e}", round + 1)),
        }
    }

    /// Starts `holders` holders and a fresh B, and fetches the big NAR through B once.
    fn through_b(
        &self,
        runtime: &Runtime,
        fixture: &Fixture,
        keys: &Keys,
        holders: usize,
        results: &mut MultiSourceResults,
    ) -> BenchResult<Fetch> {
        let (first, first_addr, scan) =
            start_holder(runtime, "holder 1", &fixture.store_root, keys)?;
        eprintln!(
            "  holder 1's scan: {:.0} MB/s reported, {} bytes {:.2?} after spawning ({:.0} MB/s)",
            scan.reported_mb_per_s, scan.bytes, scan.from_start, scan.from_start_mb_per_s
        );
        results.scans.push(scan);
        let mut running = vec![first];
        let mut addrs = vec![first_addr];
        if holders == 2 {
            let (second, addr, scan) = start_holder(runtime, "holder 2", &self.second_store, keys)?;
            results.big_only_scans.push(scan);
            running.push(second);
            addrs.push(addr);
        }

        let b_store = tempfile::Builder::new()
            .prefix("peerix-bench-p2p-empty-store-")
            .tempdir()?;
        let mut flags = vec![OsStr::new("--listen-addrs"), OsStr::new(LOOPBACK_TCP)];
        for addr in &addrs {
            flags.extend([OsStr::new("--bootstrap-peers"), OsStr::new(addr)]);
        }
        flags.extend([OsStr::new("--trusted-public-key"), OsStr::new(&keys.public)]);
        let mut b = spawn_peerix("peerix B (multi-source)", b_store.path(), &flags)?;
        b.wait_until_serving(runtime, &fixture.big_hash)
            .map_err(|e| format!("B never served the big path: {e}"))?;
        let holder_ids: Vec<&str> = addrs
            .iter()
            .map(|addr| addr.rsplit("/p2p/").next().unwrap_or(addr))
            .collect();
        wait_until_connected(&b, &holder_ids)?;
        std::thread::sleep(INDEX_SETTLE);

        let before = bytes_in_by_peer(&b)?;
        let measured = runtime.block_on(async {
            let url = nar_url(b.addr, &fixture.big_hash).await?;
            let started = Instant::now();
            let fetched = tokio::time::timeout(FETCH_TIMEOUT, fetch_hashing(b.addr, &url))
                .await
                .map_err(|_| format!("the NAR took over {FETCH_TIMEOUT:?}"))??;
            BenchResult::Ok((fetched, started.elapsed()))
        });
        let after = bytes_in_by_peer(&b)?;
        let (fetched, elapsed) = measured?;
        if fetched.status != 200
            || fetched.read != fetched.length
            || fetched.length != self.nar_bytes
            || fetched.sha256 != self.nar_sha256
        {
            return Err(format!(
                "wrong NAR through B: HTTP {}, {} of {} bytes (the NAR has {}), sha256 {} (the \
                 NAR's: {})",
                fetched.status,
                fetched.read,
                fetched.length,
                self.nar_bytes,
                fetched.sha256,
                self.nar_sha256
            )
            .into());
        }
        let bytes_from = holder_ids
            .iter()
            .map(|id| {
                let got = |counts: &HashMap<String, u64>| counts.get(*id).copied().unwrap_or(0);
                got(&after).saturating_sub(got(&before))
            })
            .collect();
        Ok(Fetch {
            mb_per_s: fetched.read as f64 / elapsed.as_secs_f64() / 1e6,
            bytes_from,
        })
    }

    /// `sha256sum` of the NAR's file, in MB/s; the hash must be the one seen before.
    fn sha256sum_rate(&self) -> BenchResult<f64> {
        let (hash, elapsed) = sha256sum(&self.nar_file)?;
        if hash != self.nar_sha256 {
            return Err(format!("sha256sum gave {hash}, before {}", self.nar_sha256).into());
        }
        Ok(self.nar_bytes as f64 / elapsed.as_secs_f64() / 1e6)
    }
}

/// A holder on `store` with the bandwidth cap, signing with A's key, after its scan finished;
/// with its p2p address and how its scan went.
fn start_holder(
    runtime: &Runtime,
    name: &'static str,
    store: &Path,
    keys: &Keys,
) -> BenchResult<(ServerProcess, String, ScanSample)> {
    let spawned = Instant::now();
    let holder = spawn_peerix(
        name,
        store,
        &[
            OsStr::new("--listen-addrs"),
            OsStr::new(LOOPBACK_TCP),
            OsStr::new("--private-key"),
            keys.secret.as_os_str(),
            OsStr::new("--bandwidth-limit"),
            OsStr::new(BANDWIDTH_LIMIT),
        ],
    )?;
    let status = wait_until_scanned(runtime, &holder)?
        .ok_or_else(|| format!("{name} has no GET /status"))?;
    let from_start = spawned.elapsed();
    let scan = &status["scan"];
    let bytes = scan["bytes"].as_u64().unwrap_or(0);
    let sample = ScanSample {
        reported_mb_per_s: scan["bytes_per_second"].as_f64().unwrap_or(0.0) / 1e6,
        from_start_mb_per_s: bytes as f64 / from_start.as_secs_f64() / 1e6,
        from_start,
        bytes,
    };
    let addr = loopback_p2p_addr(&holder, ADDR_TIMEOUT)?;
    Ok((holder, addr, sample))
}

/// `peerix ipfs status` of `node`: bytes received from each connected peer.
fn bytes_in_by_peer(node: &ServerProcess) -> BenchResult<HashMap<String, u64>> {
    let output = Command::new(crate::bench_env::peerix_bin())
        .args(["ipfs", "--api", &format!("http://{}", node.addr), "status"])
        .output()?;
    check_success("peerix ipfs status", &output)?;
    let status: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    let mut counts = HashMap::new();
    for peer in status["node"]["peers"].as_array().into_iter().flatten() {
        if let Some(id) = peer["peer_id"].as_str() {
            *counts.entry(id.to_owned()).or_default() += peer["bytes_in"].as_u64().unwrap_or(0);
        }
    }
    Ok(counts)
}

fn wait_until_connected(node: &ServerProcess, peers: &[&str]) -> BenchResult<()> {
    let deadline = Instant::now() + PEERS_TIMEOUT;
    loop {
        let connected = bytes_in_by_peer(node)?;
        if peers.iter().all(|peer| connected.contains_key(*peer)) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            let connected: Vec<&String> = connected.keys().collect();
            return Err(format!(
                "B not connected to every holder within {PEERS_TIMEOUT:?}: holders {peers:?}, \
                 connected {connected:?}"
            )
            .into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The NAR URL from the narinfo of `hash`, as the node advertises it.
async fn nar_url(addr: SocketAddr, hash: &str) -> BenchResult<String> {
    let mut connection = HttpConnection::connect(addr).await?;
    let narinfo = connection.get_text(&format!("/{hash}.narinfo")).await?;
    if narinfo.status != 200 {
        return Err(format!("narinfo of the big path: HTTP {}", narinfo.status).into());
    }
    let url = narinfo
        .body
        .lines()
        .find_map(|line| line.strip_prefix("URL:"))
        .ok_or("narinfo without URL:")?;
    Ok(format!("/{}", url.trim()))
}

struct Fetched {
    status: u16,
    length: u64,
    read: u64,
    sha256: String,
}

/// One GET on a new connection, hashing the body as it arrives.
async fn fetch_hashing(addr: SocketAddr, target: &str) -> BenchResult<Fetched> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let mut stream = BufReader::with_capacity(READ_BUFFER, stream);
    let request = format!("GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    stream.get_mut().write_all(request.as_bytes()).await?;
    let mut line = String::new();
    stream.read_line(&mut line).await?;
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("bad status line {line:?}"))?;
    let mut length = None;
    loop {
        line.clear();
        if stream.read_line(&mut line).await? == 0 {
            return Err("the response ended in its head".into());
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        let Some((name, value)) = header.split_once(':') else {
            return Err(format!("bad header line {header:?}").into());
        };
        if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(format!("unsupported {header:?}").into());
        }
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(value.trim().parse::<u64>()?);
        }
    }
    let length = length.ok_or("response without Content-Length")?;
    let mut body = stream.take(length);
    let mut hasher = Sha256::new();
    let mut read = 0;
    loop {
        let chunk = body.fill_buf().await?;
        if chunk.is_empty() {
            break;
        }
        hasher.update(chunk);
        let n = chunk.len();
        read += n as u64;
        body.consume(n);
    }
    Ok(Fetched {
        status,
        length,
        read,
        sha256: hex(&hasher.finalize()),
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut text, byte| {
        let _ = write!(text, "{byte:02x}");
        text
    })
}

/// `sha256sum FILE`: the hex digest and how long the command took.
fn sha256sum(file: &Path) -> BenchResult<(String, Duration)> {
    let started = Instant::now();
    let output = Command::new("sha256sum")
        .arg(file)
        .stdin(Stdio::null())
        .output()?;
    let elapsed = started.elapsed();
    check_success("sha256sum", &output)?;
    let stdout = String::from_utf8(output.stdout)?;
    let hash = stdout
        .split_whitespace()
        .next()
        .ok_or("sha256sum printed nothing")?;
    Ok((hash.to_owned(), elapsed))
}

fn nix_command(program: &str) -> Command {
    let mut command = Command::new(program);
    command.env("NIX_CONFIG", NIX_CONFIG).stdin(Stdio::null());
    command
}

fn check_success(what: &str, output: &std::process::Output) -> BenchResult<()> {
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    Err(format!("{what} failed ({}): {stderr}", output.status).into())
}
