//! Peers that flood the index protocol with random hashes (one identity, or fifty from one
//! address): the node cuts them off at its caps, its memory stays bounded, and what they
//! announced does not outlive them. NAR floods and unread NAR streams: `hostile_nar_peers.rs`.

mod common;

use std::time::Duration;

use common::bare_peer::BarePeer;
use common::{eventually_async, ChrootStore, Peerix};
use libp2p::{Multiaddr, Stream};
use peerix::discovery::{MAX_HASHES, MAX_HASHES_PER_PEER};
use peerix::wire::frames::write_frame;
use peerix::wire::{IndexUpdate, HASHES_PER_FRAME, INDEX_PROTOCOL};
use peerix_http::StoreHash;

const LOOPBACK: &str = "/ip4/127.0.0.1/tcp/0";
const IDENTITIES: usize = 50;
/// The global cap's 1.5 M held hashes, with the frames in flight, took 49-68 MiB of peak RSS
/// (the allocator's size classes, and how far the 50 floods are when the cap is reached); the
/// 2.7-4.5 M the flood sends would take about three times that if the cap did not hold.
const RSS_GROWTH_LIMIT_MIB: u64 = 96;

/// Distinct, valid, random-looking store hashes (every 32 nixbase32 digits are one).
struct Hashes(u64);

impl Hashes {
    fn next_frame(&mut self) -> IndexUpdate {
        const ALPHABET: &[u8] = b"0123456789abcdfghijklmnpqrsvwxyz";
        let hashes = (0..HASHES_PER_FRAME)
            .map(|_| {
                self.0 += 1;
                // splitmix64 over the counter: distinct counters give distinct hashes.
                let mut x = self.0.wrapping_mul(0x9e37_79b9_7f4a_7c15);
                let mut text = [0u8; 32];
                for (i, c) in text.iter_mut().enumerate() {
                    if i % 12 == 0 {
                        x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
                        x ^= x >> 31;
                    }
                    *c = ALPHABET[(x >> (5 * (i % 12))) as usize & 31];
                }
                // The counter itself, spelled in the last 13 digits, keeps them distinct.
                let mut n = self.0;
                for c in text[19..].iter_mut() {
                    *c = ALPHABET[n as usize & 31];
                    n >>= 5;
                }
                StoreHash::parse(std::str::from_utf8(&text).unwrap()).unwrap()
            })
            .collect();
        IndexUpdate::Add(hashes)
    }
}

/// Sends up to `limit` random hashes; returns how many were sent before the stream broke, and
/// the stream (the node forgets what a stream announced when it ends).
async fn flood_index(peer: &mut BarePeer, seed: u64, limit: usize) -> (usize, Stream) {
    let mut stream = peer.open(INDEX_PROTOCOL).await;
    let mut hashes = Hashes(seed << 40);
    let mut sent = 0;
    while sent < limit {
        let frame = hashes.next_frame().encode();
        match tokio::time::timeout(Duration::from_secs(10), write_frame(&mut stream, &frame)).await
        {
            Ok(Ok(())) => sent += HASHES_PER_FRAME,
            _ => break,
        }
    }
    (sent, stream)
}

fn start_node(store: &ChrootStore) -> (Peerix, Multiaddr) {
    let node = Peerix::serve(store.root(), &["--listen-addrs", LOOPBACK]);
    let addr = node.p2p_addr().parse().unwrap();
    (node, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_flood_is_cut_off_at_the_cap() {
    let store = ChrootStore::empty();
    let (node, addr) = start_node(&store);
    let before = node.peak_rss_kib();
    let mut peer = BarePeer::connect(&addr).await;
    let offered = 3 * MAX_HASHES_PER_PEER;
    let (sent, _stream) = flood_index(&mut peer, 1, offered).await;
    eventually_async(
        Duration::from_secs(10),
        "the flooding peer was never disconnected",
        || !peer.connected(),
    )
    .await;
    let grown_mib = node.peak_rss_kib().saturating_sub(before) / 1024;
    println!(
        "one identity: {sent} of {offered} hashes sent before the cut (cap {MAX_HASHES_PER_PEER}); \
         peak RSS grew by {grown_mib} MiB"
    );
    // What the multiplexer had buffered when the cut came may exceed the cap a little.
    assert!(
        sent <= MAX_HASHES_PER_PEER + 4 * HASHES_PER_FRAME,
        "{sent} hashes taken"
    );
    assert!(
        grown_mib < RSS_GROWTH_LIMIT_MIB,
        "RSS grew by {grown_mib} MiB"
    );
    assert_eq!(
        node.status()["peers"]["paths"],
        0,
        "the peer's set outlived it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_flood_from_fifty_identities_stays_within_the_global_cap() {
    let store = ChrootStore::empty();
    let (node, addr) = start_node(&store);
    let before = node.peak_rss_kib();
    // Each identity stays under its own cap; together they pass the global one three times.
    let per_identity = 3 * MAX_HASHES / IDENTITIES;
    let mut floods = Vec::new();
    let mut peers = Vec::new();
    for seed in 0..IDENTITIES {
        let mut peer = BarePeer::connect(&addr).await;
        peers.push(peer.connection_flag());
        floods.push(tokio::spawn(async move {
            let (sent, stream) = flood_index(&mut peer, seed as u64 + 10, per_identity).await;
            (sent, peer, stream)
        }));
    }
    let mut sent = 0;
    let mut kept = Vec::new();
    for flood in floods {
        let (n, peer, stream) = flood.await.unwrap();
        sent += n;
        kept.push((peer, stream));
    }
    // The node takes the last frames in after the writes returned.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let status = node.status();
    let held = status["peers"]["paths"].as_u64().unwrap();
    let grown_mib = node.peak_rss_kib().saturating_sub(before) / 1024;
    println!(
        "{IDENTITIES} identities: {sent} hashes sent, {held} held (global cap {MAX_HASHES}) by {} \
         peers; peak RSS grew by {grown_mib} MiB",
        status["peers"]["holders"]
    );
    assert!(held <= MAX_HASHES as u64, "{held} hashes held");
    assert!(held > 0, "no announcement was taken at all");
    assert!(
        grown_mib < RSS_GROWTH_LIMIT_MIB,
        "RSS grew by {grown_mib} MiB"
    );
    // Reaching the global cap is nobody's fault: no identity was disconnected for it.
    let disconnected = peers
        .iter()
        .filter(|c| !c.load(std::sync::atomic::Ordering::SeqCst))
        .count();
    assert_eq!(disconnected, 0, "identities disconnected");
}
