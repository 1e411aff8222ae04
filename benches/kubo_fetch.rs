//! Fetching a 256 MiB file from kubo over loopback Bitswap: Helia (tests/interop/helia_node.mjs)
//! next to Peerix's embedded node, alternating in the same run. kubo (tests/interop/kubo_node.py)
//! adds the file once (CIDv0, dag-pb leaves); each round a fresh Helia and a fresh Peerix node
//! connect to it and fetch the whole file. Timing starts after the connection is up: Helia's is
//! its own `get` (cat into a file), Peerix's is `cat_from` until the stream ends. Needs kubo and
//! Helia installed as scripts/test does. Run: `cargo bench --bench kubo_fetch`.

#[path = "../node/tests/common/mod.rs"]
mod interop;

use std::time::{Duration, Instant};

use interop::Peer;

const FILE_BYTES: usize = 256 << 20;
const ROUNDS: usize = 3;
const TIMEOUT: Duration = Duration::from_secs(600);

fn mb_per_s(bytes: usize, seconds: f64) -> f64 {
    bytes as f64 / seconds / 1e6
}

async fn helia_mb_s(dir: &std::path::Path, kubo: libp2p::Multiaddr, cid: cid::Cid) -> f64 {
    let out = dir.join("fetched-by-helia");
    tokio::task::spawn_blocking(move || {
        let mut helia = Peer::helia();
        helia.command(&format!("connect {kubo}"));
        let answer = helia.command_within(
            &format!("get {cid} {} {}", out.display(), TIMEOUT.as_secs()),
            TIMEOUT + Duration::from_secs(30),
        );
        std::fs::remove_file(&out).unwrap();
        assert_eq!(answer["bytes"], FILE_BYTES, "Helia fetched the whole file");
        mb_per_s(FILE_BYTES, answer["seconds"].as_f64().unwrap())
    })
    .await
    .unwrap()
}

async fn peerix_mb_s(
    dir: &std::path::Path,
    round: usize,
    kubo: libp2p::Multiaddr,
    cid: cid::Cid,
) -> f64 {
    let node = interop::peerix(dir.join(format!("node-{round}"))).await;
    let kubo = interop::dial(&node, kubo).await;
    let started = Instant::now();
    let received = interop::cat_from(&node, cid, kubo, TIMEOUT, |_| {}).await;
    let seconds = started.elapsed().as_secs_f64();
    assert_eq!(received, FILE_BYTES, "Peerix fetched the whole file");
    mb_per_s(received, seconds)
}

fn best(values: &[f64]) -> f64 {
    values.iter().copied().fold(0.0, f64::max)
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let dir = tempfile::TempDir::new().unwrap();
    let (file, _) = interop::random_file(dir.path(), "content", FILE_BYTES);
    let (kubo, cid) = tokio::task::spawn_blocking(move || {
        let mut kubo = Peer::kubo();
        let answer = kubo.command(&format!("add {}", file.display()));
        let cid: cid::Cid = answer["cid"].as_str().unwrap().parse().unwrap();
        (kubo, cid)
    })
    .await
    .unwrap();

    let (mut helia, mut peerix) = (Vec::new(), Vec::new());
    println!("| round | Helia (MB/s) | Peerix (MB/s) | ratio (Peerix/Helia) |\n| ---: | ---: | ---: | ---: |");
    for round in 1..=ROUNDS {
        helia.push(helia_mb_s(dir.path(), kubo.addr(), cid).await);
        peerix.push(peerix_mb_s(dir.path(), round, kubo.addr(), cid).await);
        let (h, p) = (helia[round - 1], peerix[round - 1]);
        println!("| {round} | {h:.1} | {p:.1} | {:.2} |", p / h);
    }
    let (h, p) = (best(&helia), best(&peerix));
    println!("| best | {h:.1} | {p:.1} | {:.2} |", p / h);
    let (h, p) = (median(&helia), median(&peerix));
    println!("| median | {h:.1} | {p:.1} | {:.2} |", p / h);
    println!("\n256 MiB from kubo 0.22 ({cid}) over loopback Bitswap; MB = 1e6 bytes.");
    tokio::task::spawn_blocking(move || drop(kubo))
        .await
        .unwrap();
}
