//! Third-party IPFS peers (tests/interop/kubo_node.py, tests/interop/helia_node.mjs) driven over
//! their stdin/stdout JSON-lines protocol, and the interop scenarios run against each of them.
//! Also included by benches/kubo_fetch.rs.
#![allow(dead_code)] // Each test binary uses its own subset.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};
use peerix_node::{start, NodeConfig, NodeHandle};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tempfile::TempDir;

/// Longer than the scripts' own 120 s `get` default, so that their timeout error is what shows.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(150);
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(120);

/// tests/interop, found from either crate of the workspace.
pub fn interop_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|dir| dir.join("tests/interop"))
        .find(|dir| dir.join("kubo_node.py").is_file())
        .expect("tests/interop/kubo_node.py above the crate")
}

/// A running peer; quits (or is killed) when dropped.
pub struct Peer {
    name: &'static str,
    child: Child,
    stdin: ChildStdin,
    /// Lines from the peer's stdout, read on their own thread so that every wait has a deadline.
    lines: mpsc::Receiver<String>,
    /// The first line: `peer_id` and `multiaddrs` (with /p2p suffixes).
    pub hello: Value,
}

impl Peer {
    pub fn kubo() -> Self {
        Self::spawn("kubo_node.py", "python3")
    }

    pub fn helia() -> Self {
        assert!(
            interop_dir().join("node_modules/helia").is_dir(),
            "Helia is not installed: run `npm ci --prefix tests/interop` (scripts/test does)"
        );
        Self::spawn("helia_node.mjs", "node")
    }

    fn spawn(name: &'static str, interpreter: &str) -> Self {
        let mut child = Command::new(interpreter)
            .arg(interop_dir().join(name))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{interpreter} runs {name}: {e}"));
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in stdout.lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut peer = Self {
            name,
            child,
            stdin,
            lines,
            hello: Value::Null,
        };
        peer.hello = peer.read_json(REPLY_TIMEOUT);
        assert!(
            peer.hello["peer_id"].is_string(),
            "{name} introduces itself: {}",
            peer.hello
        );
        peer
    }

    fn read_json(&mut self, timeout: Duration) -> Value {
        let line = self
            .lines
            .recv_timeout(timeout)
            .unwrap_or_else(|e| panic!("{}: no answer ({e})", self.name));
        serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("not JSON from {} ({e}): {line:?}", self.name))
    }

    /// Sends one command and returns its answer, which must be `"ok": true`.
    pub fn command(&mut self, line: &str) -> Value {
        self.command_within(line, REPLY_TIMEOUT)
    }

    pub fn command_within(&mut self, line: &str, timeout: Duration) -> Value {
        writeln!(self.stdin, "{line}").unwrap();
        self.stdin.flush().unwrap();
        let answer = self.read_json(timeout);
        assert_eq!(answer["ok"], true, "{}: {line}: {answer}", self.name);
        answer
    }

    /// The peer's first loopback address, with its /p2p suffix.
    pub fn addr(&self) -> Multiaddr {
        self.hello["multiaddrs"][0]
            .as_str()
            .expect("a listen address")
            .parse()
            .unwrap()
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "quit").and_then(|()| self.stdin.flush());
        let _ = self.lines.recv_timeout(Duration::from_secs(10));
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes `len` pseudo-random bytes (a multiple of 8) to `dir/name` in pieces; returns the path
/// and the content's sha256.
pub fn random_file(dir: &Path, name: &str, len: usize) -> (PathBuf, [u8; 32]) {
    let mut state = 0x853c_49e6_748f_ea9b_u64 ^ len as u64 ^ name.len() as u64;
    let path = dir.join(name);
    let mut out = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    let mut hasher = Sha256::new();
    let mut piece = Vec::with_capacity(1 << 20);
    for _ in 0..len / 8 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        piece.extend_from_slice(&state.to_le_bytes());
        if piece.len() == piece.capacity() {
            hasher.update(&piece);
            out.write_all(&piece).unwrap();
            piece.clear();
        }
    }
    hasher.update(&piece);
    out.write_all(&piece).unwrap();
    out.flush().unwrap();
    (path, hasher.finalize().into())
}

pub fn file_sha256(path: &Path) -> [u8; 32] {
    let mut hasher = Sha256::new();
    std::io::copy(&mut std::fs::File::open(path).unwrap(), &mut hasher).unwrap();
    hasher.finalize().into()
}

/// A Peerix node that contacts nothing by itself, listening on loopback only.
pub async fn peerix(state_dir: PathBuf) -> NodeHandle {
    let listen = vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()];
    start(NodeConfig::offline(state_dir, listen)).await.unwrap()
}

pub async fn peerix_addr(node: &NodeHandle) -> Multiaddr {
    node.status().await.unwrap().listen_addrs[0]
        .clone()
        .with(Protocol::P2p(node.peer_id()))
}

pub async fn dial(node: &NodeHandle, addr: Multiaddr) -> PeerId {
    tokio::time::timeout(Duration::from_secs(30), node.dial(addr))
        .await
        .expect("dial within 30 s")
        .expect("dial")
}

/// Streams `cid` from `peer` into `sink`; returns the byte count. Fails after `timeout`.
pub async fn cat_from(
    node: &NodeHandle,
    cid: cid::Cid,
    peer: PeerId,
    timeout: Duration,
    mut sink: impl FnMut(&[u8]),
) -> usize {
    let fetch = async {
        let mut chunks = node.cat_from(cid, vec![peer]);
        let mut received = 0;
        while let Some(chunk) = chunks.recv().await {
            let chunk = chunk.expect("verified chunk");
            received += chunk.len();
            sink(&chunk);
        }
        received
    };
    tokio::time::timeout(timeout, fetch)
        .await
        .unwrap_or_else(|_| panic!("{cid} not fetched within {timeout:?}"))
}

const SIZE: usize = 64 << 20;

/// The security protocol a peer is expected to take on TCP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Secured {
    /// `/tls/1.0.0`, with AES-GCM when this CPU has AES instructions.
    Tls,
    Noise,
}

/// Whether `node`'s connections so far were secured as `expected`, and only so.
async fn assert_secured(node: &NodeHandle, expected: Secured) {
    let counts = node.status().await.unwrap().secured;
    let aes = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .split_whitespace()
        .any(|flag| flag == "aes");
    let tls = match aes {
        true => counts.tls_aes_gcm,
        false => counts.tls_chacha20,
    };
    let noise = counts.noise;
    match expected {
        Secured::Tls => assert!(tls >= 1 && noise == 0, "{counts:?}"),
        Secured::Noise => assert!(noise >= 1 && tls == 0, "{counts:?}"),
    }
}

/// Peerix adds a random file; the peer connects and fetches it; the bytes must match, and the
/// connection must be secured as `secured`.
pub async fn peer_fetches_from_peerix(start_peer: fn() -> Peer, secured: Secured) {
    let dir = TempDir::new().unwrap();
    let node = peerix(dir.path().join("node")).await;
    let (file, digest) = random_file(dir.path(), "from-peerix", SIZE);
    let cid = node.add_file(&file).await.unwrap();
    let addr = peerix_addr(&node).await;

    let out = dir.path().join("fetched");
    let fetched = tokio::task::spawn_blocking(move || {
        let mut peer = start_peer();
        peer.command(&format!("connect {addr}"));
        peer.command(&format!("get {cid} {}", out.display()));
        (std::fs::metadata(&out).unwrap().len(), file_sha256(&out))
    })
    .await
    .unwrap();
    assert_eq!(fetched.0, SIZE as u64, "the peer got another length");
    assert!(fetched.1 == digest, "the peer got other bytes");
    assert_secured(&node, secured).await;
}

/// The peer adds a random file; Peerix dials it and fetches the file; the bytes must match, and
/// the connection must be secured as `secured`.
pub async fn peerix_fetches_from_peer(start_peer: fn() -> Peer, secured: Secured) {
    let dir = TempDir::new().unwrap();
    let node = peerix(dir.path().join("node")).await;
    let (file, digest) = random_file(dir.path(), "from-peer", SIZE);
    let (peer, cid) = tokio::task::spawn_blocking(move || {
        let mut peer = start_peer();
        let answer = peer.command(&format!("add {}", file.display()));
        let cid: cid::Cid = answer["cid"].as_str().unwrap().parse().unwrap();
        (peer, cid)
    })
    .await
    .unwrap();
    let peer_id = dial(&node, peer.addr()).await;
    let mut hasher = Sha256::new();
    let received = cat_from(&node, cid, peer_id, FETCH_TIMEOUT, |chunk| {
        hasher.update(chunk)
    })
    .await;
    assert_eq!(received, SIZE, "Peerix got another length");
    assert!(
        <[u8; 32]>::from(hasher.finalize()) == digest,
        "Peerix got other bytes"
    );
    assert_secured(&node, secured).await;
    tokio::task::spawn_blocking(move || drop(peer))
        .await
        .unwrap();
}
