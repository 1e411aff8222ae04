//! Peers that load the NAR protocol (one identity, or fifty from one address): NAR streams
//! opened and never read, and floods of requests for NAR hashes nobody has. The node answers
//! within its caps and deadlines, its threads stay bounded, and its HTTP front keeps answering
//! Nix at once. Index floods: `hostile_index_peers.rs`.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::bare_peer::BarePeer;
use common::front_latency::{for_the_next, front_percentiles, Percentiles};
use common::nar_flood::{flood_with_unknown, Ask, FloodOutcome};
use common::proc_stats::{cpu_ticks, threads, TICKS_PER_SECOND};
use common::synthetic_store::SyntheticStore;
use common::{eventually_async, hash_part, ChrootStore, Fixture, Peerix};
use futures_util::AsyncReadExt;
use libp2p::Multiaddr;
use peerix::wire::frames::write_frame;
use peerix::wire::{NarRequest, NAR_PROTOCOL};
use peerix_http::NarHash;

const LOOPBACK: &str = "/ip4/127.0.0.1/tcp/0";
const IDENTITIES: usize = 50;
/// The node's NAR write deadline, and the wait of a request over the NAR caps.
const NAR_WRITE_DEADLINE: Duration = Duration::from_secs(30);
const NAR_TURN_WAIT: Duration = Duration::from_secs(5);
/// A NAR request for an unknown hash costs the node about what a narinfo request for an unknown
/// path does (a stream negotiated, a lookup, an answer) when it is answered from memory: 1.1-2.2
/// times as much here. Reading the store's table for each (Nix keeps no index on NAR hashes)
/// made it 3.5-4 times as much on 5,000 paths.
const MAX_NAR_TO_NARINFO_CPU: f64 = 3.0;
const FLOOD_P99_LIMIT_MS: f64 = 25.0;

/// The tests here time the front: one at a time, so no other test's node competes with it.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn start_node(store_root: &std::path::Path) -> (Peerix, Multiaddr) {
    let node = Peerix::serve(store_root, &["--listen-addrs", LOOPBACK]);
    let addr = node.p2p_addr().parse().unwrap();
    (node, addr)
}

fn narinfo_field<'a>(narinfo: &'a str, field: &str) -> &'a str {
    narinfo
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .unwrap_or_else(|| panic!("{field} in {narinfo}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unread_nar_streams_neither_slow_the_front_nor_stay_open() {
    const STREAMS_PER_IDENTITY: usize = 12;
    let _alone = ONE_AT_A_TIME.lock().await;
    let fixture = Fixture::get();
    let store = ChrootStore::with_paths(&[&fixture.big]);
    let (node, addr) = start_node(store.root());
    let (_, narinfo) = node.get(&format!("/{}.narinfo", hash_part(&fixture.big)));
    let narinfo = String::from_utf8(narinfo).unwrap();
    let nar_hash = NarHash::parse(narinfo_field(&narinfo, "NarHash: ")).unwrap();
    let nar_size: u64 = narinfo_field(&narinfo, "NarSize: ").parse().unwrap();
    let big = vec![hash_part(&fixture.big).to_owned()];
    let request = NarRequest {
        nar_hash,
        start: 0,
        end: nar_size,
    }
    .encode();
    // The publication scan hashes the 100 MiB NAR: measured alone, the front competes with it.
    eventually_async(Duration::from_secs(120), "the scan never finished", || {
        node.status()["indexed_paths"] == 1
    })
    .await;
    let baseline =
        front_percentiles(node.port, big.clone(), for_the_next(Duration::from_secs(2))).await;
    println!("front before the streams: {baseline}");

    let opened = Instant::now();
    let (mut peers, mut streams) = (Vec::new(), Vec::new());
    for _ in 0..IDENTITIES {
        let mut peer = BarePeer::connect(&addr).await;
        for _ in 0..STREAMS_PER_IDENTITY {
            let mut stream = peer.open(NAR_PROTOCOL).await;
            write_frame(&mut stream, &request).await.unwrap();
            streams.push(stream);
        }
        // Its connection carries the streams.
        peers.push(peer);
    }
    println!(
        "{} NAR streams of {nar_size} bytes opened, never read, in {:?}",
        streams.len(),
        opened.elapsed()
    );

    // The streams that got a turn have filled their windows, the others wait for one.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let ticks = cpu_ticks(node.pid());
    let during = front_percentiles(node.port, big, for_the_next(Duration::from_secs(3))).await;
    let ticks = cpu_ticks(node.pid()) - ticks;
    let threads_during = threads(node.pid());
    println!(
        "front during the streams: {during}; node threads {threads_during}; node CPU {ticks} ticks"
    );
    assert!(
        during.p99 < baseline.p99_limit_ms(),
        "narinfo p99 {:.2} ms",
        during.p99
    );
    // 64 NAR answers at most hold a thread reading the store.
    assert!(threads_during < 150, "{threads_during} threads");

    // Past the deadline every stream has ended: reading one gives what was in flight, then
    // its end, never the whole NAR.
    let past_deadline = NAR_WRITE_DEADLINE + NAR_TURN_WAIT + Duration::from_secs(3);
    tokio::time::sleep(past_deadline.saturating_sub(opened.elapsed())).await;
    let reads = streams.into_iter().map(|mut stream| async move {
        let mut buf = vec![0u8; 1 << 16];
        let mut got = 0u64;
        let ended = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => got += n as u64,
                }
            }
        })
        .await
        .is_ok();
        (ended, got)
    });
    let results = futures_util::future::join_all(reads).await;
    let ended = results.iter().filter(|(ended, _)| *ended).count();
    let whole = results.iter().filter(|(_, got)| *got >= nar_size).count();
    let most = results.iter().map(|(_, got)| *got).max().unwrap_or(0);
    println!(
        "after {:?}: {ended} of {} streams ended, {whole} delivered the whole NAR, at most {most} bytes",
        opened.elapsed(),
        results.len()
    );
    assert_eq!(ended, results.len(), "streams still open past the deadline");
    assert_eq!(whole, 0, "a stream was kept open until read");
    println!("node threads after: {}", threads(node.pid()));
}

/// A number from the environment, or `default`.
fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

/// Floods a node on a synthetic store with NAR requests for random NAR hashes from
/// `identities` bare peers on one address while Nix's narinfos are timed on the front. Sized
/// for CI's debug build (`PEERIX_TEST_STORE_PATHS` and `PEERIX_TEST_FLOOD_REQUESTS` change it;
/// the scale, 100,000 paths and 10,000 requests on the release build, is the bench
/// `nar_flood`'s).
async fn flood_of_unknown_nar_hashes(identities: usize, in_flight_per_identity: usize) {
    let paths = env_or("PEERIX_TEST_STORE_PATHS", 5_000);
    let requests = env_or("PEERIX_TEST_FLOOD_REQUESTS", 3_000);
    let _alone = ONE_AT_A_TIME.lock().await;
    let store = SyntheticStore::generate(paths).unwrap();
    let (node, addr) = start_node(&store.root);
    // The publication scan would compete with the front: measured without it.
    let started = Instant::now();
    eventually_async(Duration::from_secs(300), "the scan never finished", || {
        node.status()["indexed_paths"] == paths
    })
    .await;
    println!("{paths} paths indexed in {:?}", started.elapsed());
    let hashes: Vec<String> = store.hashes.iter().step_by(7).cloned().collect();
    let alone = front_percentiles(
        node.port,
        hashes.clone(),
        for_the_next(Duration::from_secs(2)),
    )
    .await;

    let peers = connect(&addr, identities).await;
    let ticks_before = cpu_ticks(node.pid());
    let flooding = Arc::new(AtomicBool::new(true));
    let flood = tokio::spawn({
        let flooding = flooding.clone();
        async move {
            let outcome = flood_with_unknown(peers, Ask::Nar, requests, in_flight_per_identity);
            let outcome = outcome.await;
            flooding.store(false, Ordering::SeqCst);
            outcome
        }
    });
    let during =
        front_percentiles(node.port, hashes, move || flooding.load(Ordering::SeqCst)).await;
    let outcome = flood.await.unwrap();
    let nar_cpu_ms = cpu_ms_per_request(&node, ticks_before, &outcome);
    println!(
        "{paths} paths, {identities} identities x {in_flight_per_identity} in flight: front \
         alone: {alone}; NAR flood: {outcome}; front during the flood: {during}; node CPU \
         {nar_cpu_ms:.3} ms per request"
    );
    // The control: as many narinfo requests for unknown paths, from as many new identities.
    let peers = connect(&addr, identities).await;
    let ticks_before = cpu_ticks(node.pid());
    let control = flood_with_unknown(peers, Ask::Narinfo, requests, in_flight_per_identity).await;
    let narinfo_cpu_ms = cpu_ms_per_request(&node, ticks_before, &control);
    println!("narinfo flood: {control}; node CPU {narinfo_cpu_ms:.3} ms per request");

    assert_eq!(outcome.requests(), requests);
    assert_eq!(outcome.found, 0, "a random NAR hash was found");
    assert_eq!(outcome.malformed, 0, "answers that are no NAR answers");
    assert!(outcome.not_found > 0, "no request was answered");
    assert_eq!(control.found + control.malformed, 0, "{control}");
    assert!(
        nar_cpu_ms < MAX_NAR_TO_NARINFO_CPU * narinfo_cpu_ms,
        "a NAR request for an unknown hash cost {nar_cpu_ms:.3} ms of CPU, a narinfo request \
         {narinfo_cpu_ms:.3} ms: is the store read for each?"
    );
    assert!(
        during.p99 < flood_p99_limit_ms(&alone),
        "narinfo p99 {:.2} ms during the flood",
        during.p99
    );
}

async fn connect(addr: &Multiaddr, identities: usize) -> Vec<BarePeer> {
    let mut peers = Vec::new();
    for _ in 0..identities {
        peers.push(BarePeer::connect(addr).await);
    }
    peers
}

/// The node's CPU time since `ticks_before` per request of `flood`, in ms.
fn cpu_ms_per_request(node: &Peerix, ticks_before: u64, flood: &FloodOutcome) -> f64 {
    let ticks = cpu_ticks(node.pid()) - ticks_before;
    ticks as f64 * 1000.0 / TICKS_PER_SECOND as f64 / flood.requests().max(1) as f64
}

/// The bound on the front's p99 during a flood in this debug build. The 5 ms is the
/// release build's (bench `nar_flood`); here every request costs the node and the flooding peer
/// (in the test process, on the same cores) about a millisecond of CPU each, so the front is
/// allowed four times its p99 alone, and at least 25 ms. With the front on the node's runtime
/// it was 53-65 ms here from fifty identities.
fn flood_p99_limit_ms(alone: &Percentiles) -> f64 {
    FLOOD_P99_LIMIT_MS.max(4.0 * alone.p99)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_unknown_nar_hashes_leaves_the_front_fast() {
    flood_of_unknown_nar_hashes(1, 32).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_unknown_nar_hashes_from_fifty_identities_leaves_the_front_fast() {
    flood_of_unknown_nar_hashes(IDENTITIES, 4).await;
}
