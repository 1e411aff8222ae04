//! Embedded-node benchmark: Peerix -> Peerix `cat` of a 256 MiB file over loopback Bitswap, next to
//! one plain loopback TCP stream moving the same bytes; and UnixFS `add` (hashing and DAG building,
//! no copy) next to `sha256sum` of the same file; and the cat next to one core's SHA-256
//! (`openssl speed -evp sha256`). Baselines are measured in the same rounds, which alternate their
//! order; every round is printed; nothing is asserted. Run: `cargo bench --bench ipfs_cat`.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use libp2p::multiaddr::Protocol;
use peerix_node::unixfs::{file_cid, CidVersion};
use peerix_node::{start, NodeConfig, NodeHandle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[path = "common/openssl_speed.rs"]
mod openssl_speed;

const FILE_BYTES: usize = 256 << 20;
const ROUNDS: usize = 3;

fn mb_per_s(bytes: usize, elapsed: Duration) -> f64 {
    bytes as f64 / elapsed.as_secs_f64() / 1e6
}

fn write_random_file(path: &Path) {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let bytes: Vec<u8> = (0..FILE_BYTES / 8)
        .flat_map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()
        })
        .collect();
    std::fs::write(path, bytes).expect("fixture written");
}

async fn tcp_stream_mb_s() -> f64 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let sender = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let chunk = vec![7u8; 256 * 1024];
        for _ in 0..FILE_BYTES / chunk.len() {
            socket.write_all(&chunk).await.unwrap();
        }
    });
    let started = Instant::now();
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut buf = vec![0u8; 256 * 1024];
    let mut received = 0;
    while received < FILE_BYTES {
        received += socket.read(&mut buf).await.unwrap();
    }
    let elapsed = started.elapsed();
    sender.await.unwrap();
    mb_per_s(received, elapsed)
}

async fn node(dir: &Path, name: &str) -> NodeHandle {
    let listen = vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()];
    start(NodeConfig::offline(dir.join(name), listen))
        .await
        .unwrap()
}

async fn cat_mb_s(reader: &NodeHandle, cid: cid::Cid) -> f64 {
    let started = Instant::now();
    let mut chunks = reader.cat(cid).await.unwrap();
    let mut received = 0;
    while let Some(chunk) = chunks.recv().await {
        received += chunk.expect("verified chunk").len();
    }
    assert_eq!(received, FILE_BYTES, "cat returned the whole file");
    mb_per_s(received, started.elapsed())
}

fn sha256sum_mb_s(file: &Path) -> f64 {
    let started = Instant::now();
    let status = Command::new("sha256sum")
        .arg(file)
        .output()
        .expect("sha256sum runs");
    assert!(status.status.success());
    mb_per_s(FILE_BYTES, started.elapsed())
}

fn add_mb_s(file: &Path) -> f64 {
    let started = Instant::now();
    file_cid(CidVersion::V1, std::fs::File::open(file).unwrap()).unwrap();
    mb_per_s(FILE_BYTES, started.elapsed())
}

fn best(values: impl Iterator<Item = f64>) -> f64 {
    values.fold(0.0, f64::max)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let dir = tempfile::TempDir::new().unwrap();
    let file = dir.path().join("content");
    write_random_file(&file);

    let holder = node(dir.path(), "holder").await;
    let reader = node(dir.path(), "reader").await;
    let cid = holder.add_file(&file).await.unwrap();
    let addr = holder.status().await.unwrap().listen_addrs[0]
        .clone()
        .with(Protocol::P2p(holder.peer_id()));
    reader.dial(addr).await.unwrap();

    let (mut tcp, mut cat, mut sha, mut add, mut openssl) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        // The cat and its baselines take turns going first.
        if round % 2 == 1 {
            openssl.push(openssl_speed::sha256_mb_s().expect("openssl speed runs"));
            cat.push(cat_mb_s(&reader, cid).await);
        } else {
            cat.push(cat_mb_s(&reader, cid).await);
            openssl.push(openssl_speed::sha256_mb_s().expect("openssl speed runs"));
        }
        tcp.push(tcp_stream_mb_s().await);
        sha.push(sha256sum_mb_s(&file));
        add.push(add_mb_s(&file));
        eprintln!(
            "round {}: cat {:.0}, openssl sha256 {:.0}, TCP {:.0}, add {:.0}, sha256sum {:.0} MB/s",
            round + 1,
            cat[round],
            openssl[round],
            tcp[round],
            add[round],
            sha[round]
        );
    }
    let cat_ratio = best(cat.iter().zip(&openssl).map(|(c, o)| c / o));
    let (tcp, cat, sha, add, openssl) = (
        best(tcp.into_iter()),
        best(cat.into_iter()),
        best(sha.into_iter()),
        best(add.into_iter()),
        best(openssl.into_iter()),
    );
    println!("- 256 MiB file, page cache warm, {ROUNDS} rounds, best of each; MB = 1e6 bytes\n");
    println!("| measurement | Peerix | baseline | ratio |\n| --- | ---: | ---: | ---: |");
    println!("| cat over loopback Bitswap vs one loopback TCP stream (MB/s) | {cat:.0} | {tcp:.0} | {:.2} |", cat / tcp);
    println!(
        "| cat over loopback Bitswap vs `openssl speed -evp sha256`, one core (MB/s; best round's ratio) | {cat:.0} | {openssl:.0} | {cat_ratio:.2} |"
    );
    println!(
        "| add, CIDv1 no-copy vs `sha256sum` (MB/s) | {add:.0} | {sha:.0} | {:.2} |",
        add / sha
    );
}
