//! Narinfo lookups stay fast among holders that freeze, stay silent, lie or hide a path behind a
//! filtered name, and a wrong CID two
//! holders name costs one failed fetch, not every retry. Holders are Peerix nodes on chroot
//! stores and real libp2p peers speaking Peerix's protocols with crafted answers
//! (tests/raw_peer); B, the node asked, is a Peerix like any other.

mod common;
mod raw_peer;

use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{
    hash_part, nix, nix_copy_from, nix_copy_ok, run, stdout_text, ChrootStore, Fixture, NixKey,
    Peerix,
};
use peerix::wire::NarinfoAnswer;
use peerix_http::{NarInfo, StoreHash, StorePathName};
use raw_peer::RawPeer;
use serde_json::Value;

const LOOPBACK: &str = "/ip4/127.0.0.1/tcp/0";

fn eventually(limit: Duration, what: &str, mut ready: impl FnMut() -> bool) {
    let started = Instant::now();
    while !ready() {
        assert!(started.elapsed() < limit, "{what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn wait_for_holdings(node: &Peerix, paths: u64) {
    eventually(
        Duration::from_secs(30),
        "the peers' indexes never arrived",
        || {
            let status: Value = serde_json::from_slice(&node.get("/status").1).unwrap_or_default();
            status["peers"]["paths"] == paths
        },
    );
}

/// `count` small content-addressed paths, the same in each of `stores` stores, signed by `key`.
fn stores_with_paths(key: &NixKey, stores: usize, count: usize) -> (Vec<ChrootStore>, Vec<String>) {
    let files = tempfile::TempDir::new().unwrap();
    let stores: Vec<ChrootStore> = (0..stores).map(|_| ChrootStore::empty()).collect();
    let mut paths = Vec::new();
    for i in 0..count {
        let file = files.path().join(format!("lookup-{i}"));
        std::fs::write(&file, format!("path {i}\n")).unwrap();
        for store in &stores {
            let path = stdout_text(&run(nix("nix-store", files.path())
                .args(["--store", &store.url(), "--add"])
                .arg(&file)));
            if paths.len() == i {
                paths.push(path);
            }
        }
    }
    let refs: Vec<&str> = paths.iter().map(String::as_str).collect();
    for store in &stores {
        store.sign(&key.secret, &refs);
    }
    (stores, paths)
}

fn node(store: &ChrootStore, key: &NixKey, bootstrap: &[String]) -> Peerix {
    let mut args = vec![
        "--listen-addrs",
        LOOPBACK,
        "--trusted-public-key",
        &key.public,
    ];
    for addr in bootstrap {
        args.extend(["--bootstrap-peers", addr]);
    }
    Peerix::serve(store.root(), &args)
}

/// How long one narinfo takes through `node`, and its status.
fn timed_narinfo(node: &Peerix, path: &str) -> (u16, Duration) {
    let started = Instant::now();
    let (status, _) = node.get(&format!("/{}.narinfo", hash_part(path)));
    (status, started.elapsed())
}

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

fn hashes(paths: &[String]) -> Vec<StoreHash> {
    paths
        .iter()
        .map(|p| StoreHash::parse(hash_part(p)).unwrap())
        .collect()
}

fn signal(node: &Peerix, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &node.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn frozen_and_lying_holders_cost_an_honest_lookup_little() {
    const PATHS: usize = 40;
    let key = NixKey::generate("upstream-test-1");
    let (stores, paths) = stores_with_paths(&key, 2, PATHS);
    let honest = node(&stores[0], &key, &[]);
    let frozen = node(&stores[1], &key, &[]);
    // Answers every request with a narinfo of another path.
    let liar = RawPeer::start(
        Box::new(|_| {
            let other = StorePathName::parse("00000000000000000000000000000000-liar").unwrap();
            let text = format!(
                "StorePath: {}\nURL: nar/x.nar\nCompression: none\nNarHash: sha256:{}\nNarSize: 1\n",
                other.to_absolute(),
                "0".repeat(52)
            );
            Some(NarinfoAnswer::Found { text, cid: None })
        }),
        HashMap::new(),
    );
    // Names the path asked for as one the filters hide, unsigned: if the filter came before
    // trust, its answer would hide the path from B although honest holders have it.
    let hider = RawPeer::start(
        Box::new(|hash| {
            let text = format!(
                "StorePath: /nix/store/{hash}-db-secret-key\nURL: nar/x.nar\nCompression: none\n\
                 NarHash: sha256:{}\nNarSize: 1\n",
                "0".repeat(52)
            );
            Some(NarinfoAnswer::Found { text, cid: None })
        }),
        HashMap::new(),
    );
    let b_store = ChrootStore::empty();
    let b = node(&b_store, &key, &[honest.p2p_addr(), frozen.p2p_addr()]);
    liar.announce_to(&b.p2p_addr(), hashes(&paths));
    hider.announce_to(&b.p2p_addr(), hashes(&paths));
    wait_for_holdings(&b, 4 * PATHS as u64);

    // Phase 1: one holder frozen (a laptop asleep with its connections open). Spread over
    // more than the narinfo timeout, so that it times out and is no longer asked.
    signal(&frozen, "-STOP");
    let (first, rest) = paths.split_at(PATHS * 3 / 4);
    let mut latencies = Vec::new();
    for path in first {
        let (status, took) = timed_narinfo(&b, path);
        assert_eq!(status, 200, "{path}");
        latencies.push(took);
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut sorted = latencies.clone();
    sorted.sort();
    eprintln!(
        "narinfo with a frozen and a lying holder, ms: {:?}",
        latencies
            .iter()
            .map(Duration::as_secs_f64)
            .map(|s| (s * 1e4).round() / 10.0)
            .collect::<Vec<_>>()
    );
    eprintln!(
        "p50 {:?}, p99 {:?}, max {:?}",
        percentile(&sorted, 50),
        percentile(&sorted, 99),
        sorted[sorted.len() - 1]
    );
    // The bound, 100 ms, for the typical lookup of this debug build on a shared
    // machine; every one within a second, where waiting out the frozen holder costs 3 s.
    let (median, max) = (percentile(&sorted, 50), sorted[sorted.len() - 1]);
    assert!(median < Duration::from_millis(100), "median {median:?}");
    assert!(max < Duration::from_secs(1), "a narinfo took {max:?}");
    let lies = liar.asked();
    assert!((1..=2).contains(&lies), "the liar was asked {lies} times");
    eprintln!("the hider of paths was asked {} times", hider.asked());

    // Phase 2: the frozen holder wakes up; once it has answered a probe, it is asked again:
    // with the honest holder gone, the paths come from it.
    signal(&frozen, "-CONT");
    drop(honest);
    let woke = Instant::now();
    for path in rest {
        eventually(
            Duration::from_secs(30),
            "the woken holder was never asked again",
            || b.get(&format!("/{}.narinfo", hash_part(path))).0 == 200,
        );
    }
    eprintln!("the woken holder answered again after {:?}", woke.elapsed());
    assert_eq!(liar.asked(), lies, "the liar was asked again");
}

/// Sorted narinfo latencies through `node` for `paths`, each asked once (cold).
fn cold_latencies(node: &Peerix, paths: &[String]) -> Vec<Duration> {
    let mut latencies: Vec<Duration> = paths
        .iter()
        .map(|path| {
            let (status, took) = timed_narinfo(node, path);
            assert_eq!(status, 200, "{path}");
            took
        })
        .collect();
    latencies.sort();
    latencies
}

#[test]
fn three_silent_holders_cost_an_honest_lookup_little() {
    const PATHS: usize = 120;
    let key = NixKey::generate("upstream-test-1");
    let (stores, paths) = stores_with_paths(&key, 1, PATHS);
    let honest = node(&stores[0], &key, &[]);
    let b_store = ChrootStore::empty();
    let b = node(&b_store, &key, &[honest.p2p_addr()]);
    wait_for_holdings(&b, PATHS as u64);
    let (alone, among_silent) = paths.split_at(PATHS / 2);
    // The same lookups with the honest holder alone: what a cold narinfo costs B anyway
    // (a round trip, a signature check, the NAR's record written to disk).
    let baseline = cold_latencies(&b, alone);

    let silent: Vec<RawPeer> = (0..3)
        .map(|_| RawPeer::start(Box::new(|_| None), HashMap::new()))
        .collect();
    for peer in &silent {
        peer.announce_to(&b.p2p_addr(), hashes(&paths));
    }
    wait_for_holdings(&b, 4 * PATHS as u64);
    let latencies = cold_latencies(&b, among_silent);
    let report = |what: &str, l: &[Duration]| {
        eprintln!(
            "{what}, {} cold paths: p50 {:?}, p99 {:?}, max {:?}",
            l.len(),
            percentile(l, 50),
            percentile(l, 99),
            l[l.len() - 1]
        );
    };
    report("narinfo from the honest holder alone", &baseline);
    report("narinfo with three silent holders too", &latencies);
    // The target is a p99 under 20 ms (for the benchmark's release build); this debug
    // build on a shared machine is only held to never waiting out a silent holder (3 s).
    let max = latencies[latencies.len() - 1];
    assert!(max < Duration::from_secs(1), "a narinfo took {max:?}");
    assert!(
        silent.iter().all(|s| s.asked() > 0),
        "a silent holder was never asked"
    );
}

/// A node serving `path` signed by `key`, and the narinfo it gives for it.
fn honest_holder(key: &NixKey, path: &str) -> (ChrootStore, Peerix, NarInfo) {
    let store = ChrootStore::signed(key, &[path]);
    let holder = node(&store, key, &[]);
    let (status, text) = holder.get(&format!("/{}.narinfo", hash_part(path)));
    assert_eq!(status, 200);
    let narinfo = NarInfo::parse(&String::from_utf8(text).unwrap()).unwrap();
    (store, holder, narinfo)
}

#[test]
fn a_wrong_cid_from_two_holders_fails_one_fetch_only() {
    let f = Fixture::get();
    let key = NixKey::generate("upstream-test-1");
    let (honest_store, honest, narinfo) = honest_holder(&key, &f.big);

    // Two holders with the true, signed narinfo, naming the CID of other content they serve
    // over Bitswap (and no NAR protocol).
    let scratch = tempfile::TempDir::new().unwrap();
    let other = scratch.path().join("other");
    let noise: Vec<u8> = (0..20u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    std::fs::write(&other, noise).unwrap();
    let liars: Vec<RawPeer> = (0..2)
        .map(|_| {
            let (liar, cid) = {
                let slot = std::sync::Arc::new(std::sync::OnceLock::new());
                let answer_slot = slot.clone();
                let text = narinfo.render();
                let liar = RawPeer::start(
                    Box::new(move |_| {
                        Some(NarinfoAnswer::Found {
                            text: text.clone(),
                            cid: answer_slot.get().copied(),
                        })
                    }),
                    HashMap::new(),
                );
                let cid = liar.add_file(&other);
                slot.set(cid).unwrap();
                (liar, cid)
            };
            eprintln!("a liar names {cid}");
            liar
        })
        .collect();
    let b_store = ChrootStore::empty();
    let b = node(&b_store, &key, &[]);
    let big = vec![narinfo.store_path.hash()];
    for liar in &liars {
        liar.announce_to(&b.p2p_addr(), big.clone());
    }
    wait_for_holdings(&b, 2);
    // B learns the wrong CID from a liar, then meets the honest holder.
    assert_eq!(b.get(&format!("/{}.narinfo", hash_part(&f.big))).0, 200);
    let connect = Command::new(env!("CARGO_BIN_EXE_peerix"))
        .args(["ipfs", "--api", &b.url(), "connect", &honest.p2p_addr()])
        .output()
        .unwrap();
    assert!(connect.status.success());
    wait_for_holdings(&b, 3);

    let first = nix_copy_from(&b.url(), &ChrootStore::empty(), &key.public, &[&f.big]);
    eprintln!("first copy succeeded: {}", first.status.success());
    let dest = ChrootStore::empty();
    nix_copy_ok(&b.url(), &dest, &key.public, &[&f.big]);
    assert_eq!(
        dest.path_info(&f.big)["narHash"],
        honest_store.path_info(&f.big)["narHash"]
    );
}

/// A node trusting `key` that knows `liar` as a holder of `narinfo`'s path (from a good narinfo
/// answer), then meets `honest`.
fn node_meeting_liar_first(
    key: &NixKey,
    liar: &RawPeer,
    honest: &Peerix,
    path: &str,
) -> (ChrootStore, Peerix) {
    let store = ChrootStore::empty();
    let b = node(&store, key, &[]);
    let hash = StoreHash::parse(hash_part(path)).unwrap();
    liar.announce_to(&b.p2p_addr(), vec![hash]);
    wait_for_holdings(&b, 1);
    assert_eq!(b.get(&format!("/{}.narinfo", hash_part(path))).0, 200);
    let connect = Command::new(env!("CARGO_BIN_EXE_peerix"))
        .args(["ipfs", "--api", &b.url(), "connect", &honest.p2p_addr()])
        .output()
        .unwrap();
    assert!(connect.status.success());
    wait_for_holdings(&b, 2);
    (store, b)
}

#[test]
fn a_holder_that_breaks_off_after_wrong_bytes_gets_no_honest_one_banned() {
    let f = Fixture::get();
    let key = NixKey::generate("upstream-test-1");
    let (honest_store, honest, narinfo) = honest_holder(&key, &f.big);
    let (status, nar) = honest.get(&format!("/{}", narinfo.url));
    assert_eq!(status, 200);

    // Two liars with the true, signed narinfo, each breaking its NAR off half way: one sends
    // noise (Nix stops reading at once), one the true NAR with a byte flipped in the first
    // half (Nix reads on while the honest holder sends the rest, and the whole hashes wrong).
    let size = nar.len();
    let noise: Vec<u8> = (0..size as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let mut flipped = nar.clone();
    flipped[size / 4] ^= 1;
    for (what, sent) in [("noise", noise), ("a flipped byte", flipped)] {
        let text = narinfo.render();
        let liar = RawPeer::start_cut(
            Box::new(move |_| {
                Some(NarinfoAnswer::Found {
                    text: text.clone(),
                    cid: None,
                })
            }),
            HashMap::from([(narinfo.nar_hash, sent)]),
            size / 2,
        );
        // The holders are tried in an order of the node's own: fresh nodes until one asks the
        // liar first.
        let mut exercised = false;
        for _ in 0..8 {
            let (_store, b) = node_meeting_liar_first(&key, &liar, &honest, &f.big);
            let before = liar.nars_asked();
            let first = nix_copy_from(&b.url(), &ChrootStore::empty(), &key.public, &[&f.big]);
            if first.status.success() && liar.nars_asked() == before {
                continue;
            }
            // Nix had wrong bytes; the honest holder is not taken for the liar, so the next
            // copy comes from it.
            exercised = true;
            let dest = ChrootStore::empty();
            nix_copy_ok(&b.url(), &dest, &key.public, &[&f.big]);
            assert_eq!(
                dest.path_info(&f.big)["narHash"],
                honest_store.path_info(&f.big)["narHash"],
                "{what}"
            );
            break;
        }
        assert!(exercised, "{what}: no node asked the liar first");
    }
}
