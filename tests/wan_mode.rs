//! `--mode wan` and `--mode hybrid`: nodes that know only a tracker's URL (no bootstrap peers, no
//! mDNS, no DHT rendezvous) find each other through it and substitute with real Nix; a tracker
//! that goes away costs nothing of what they knew, and they come back to it when it returns.

mod common;
#[path = "common/tracker_process.rs"]
mod tracker_process;

use std::time::{Duration, Instant};

use common::synthetic_store::SyntheticStore;
use common::{eventually, hash_part, nix_copy_ok, ChrootStore, Fixture, NixKey, Peerix};
use tempfile::TempDir;
use tracker_process::TrackerProcess;

const LOOPBACK: &str = "/ip4/127.0.0.1/tcp/0";
/// How long B may take to learn a holder's paths through the tracker.
const DISCOVERY_WAIT: Duration = Duration::from_secs(30);

/// A node on `store` in `mode` that knows only the tracker at `tracker` and trusts only `key`.
fn node(store: &ChrootStore, mode: &str, tracker: &str, key: &str, extra: &[&str]) -> Peerix {
    let mut args = vec![
        "--mode",
        mode,
        "--tracker-url",
        tracker,
        "--listen-addrs",
        LOOPBACK,
        "--trusted-public-key",
        key,
    ];
    args.extend(extra);
    Peerix::serve(store.root(), &args)
}

const PEERIX: &str = env!("CARGO_BIN_EXE_peerix");

/// A tracker on 127.0.0.1 with its database in `dir`.
fn tracker(dir: &TempDir) -> TrackerProcess {
    TrackerProcess::start_binary(PEERIX.as_ref(), &dir.path().join("tracker.redb"), &[])
}

/// GET `path`, which must answer 200 with JSON.
fn get_json(tracker: &TrackerProcess, path: &str) -> serde_json::Value {
    let reply = tracker.get(path);
    assert_eq!(reply.status, 200, "GET {path}");
    reply.json()
}

/// The tracker part of the node's `/status`.
fn tracker_reachable(node: &Peerix) -> bool {
    node.status()["tracker"]["reachable"] == true
}

#[test]
fn wan_nodes_substitute_through_the_tracker_alone() {
    let f = Fixture::get();
    let upstream = NixKey::generate("upstream-test-1");
    let db = TempDir::new().unwrap();
    let tracker = tracker(&db);
    let a_store = ChrootStore::signed(&upstream, &[&f.top, &f.big]);
    let a = node(&a_store, "wan", &tracker.url, &upstream.public, &[]);
    let b_store = ChrootStore::empty();
    let b = node(&b_store, "wan", &tracker.url, &upstream.public, &[]);

    b.wait_for_narinfo(&f.top, DISCOVERY_WAIT);
    let dest = ChrootStore::empty();
    nix_copy_ok(&b.url(), &dest, &upstream.public, &[&f.top, &f.big]);
    a_store.assert_same_nars(&dest, &[&f.top, &f.app, &f.lib, &f.big]);
    assert!(tracker_reachable(&b));

    // The tracker knows A's paths and the CIDs A publishes them under, signed by A.
    let found = get_json(&tracker, &format!("/find/{}", hash_part(&f.top)));
    let providers = found["providers"].as_array().unwrap();
    assert_eq!(providers.len(), 1, "{found}");
    let a_id = a.status()["node"]["peer_id"].as_str().unwrap().to_owned();
    assert_eq!(providers[0]["libp2p_peer_id"], a_id.as_str());
    assert_eq!(providers[0]["port"], a.port);
    eventually(Duration::from_secs(20), "A's CIDs never registered", || {
        tracker.get(&format!("/cid/{}", hash_part(&f.big))).status == 200
    });

    // Both sides reported the transfers, and the tracker credited them the right way round.
    let b_id = b.status()["node"]["peer_id"].as_str().unwrap().to_owned();
    let big_size = a_store.path_info(&f.big)["narSize"].as_u64().unwrap();
    eventually(Duration::from_secs(20), "transfers never credited", || {
        let a_rep = get_json(&tracker, &format!("/reputation/{a_id}"));
        a_rep["successful_transfers"].as_u64() >= Some(2)
            && a_rep["total_shared"].as_u64() > Some(big_size)
    });
    let b_rep = get_json(&tracker, &format!("/reputation/{b_id}"));
    assert!(b_rep["total_received"].as_u64() > Some(big_size), "{b_rep}");
    assert_eq!(b_rep["total_shared"], 0, "{b_rep}");
    assert_eq!(b_rep["failed_transfers"], 0, "{b_rep}");

    // A path nobody holds is a miss at once, without asking the tracker.
    let absent = "/0000000000000000000000000000000a.narinfo";
    let started = Instant::now();
    assert_eq!(b.get(absent).0, 404);
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[test]
fn a_tracker_that_goes_away_costs_nothing_known_and_is_rejoined() {
    let f = Fixture::get();
    let upstream = NixKey::generate("upstream-test-1");
    let db = TempDir::new().unwrap();
    let tracker = tracker(&db);
    let a_store = ChrootStore::signed(&upstream, &[&f.lib]);
    let a = node(&a_store, "wan", &tracker.url, &upstream.public, &[]);
    let b_store = ChrootStore::empty();
    let b = node(&b_store, "wan", &tracker.url, &upstream.public, &[]);
    b.wait_for_narinfo(&f.lib, DISCOVERY_WAIT);

    let port = tracker.port();
    tracker.kill_9();
    eventually(Duration::from_secs(30), "B never noticed", || {
        !tracker_reachable(&b)
    });
    // What B knew is still served, and a miss is still a miss at once.
    let dest = ChrootStore::empty();
    nix_copy_ok(&b.url(), &dest, &upstream.public, &[&f.lib]);
    a_store.assert_same_nars(&dest, &[&f.lib]);
    let started = Instant::now();
    assert_eq!(b.get("/0000000000000000000000000000000a.narinfo").0, 404);
    assert!(started.elapsed() < Duration::from_secs(1));

    // A tracker that lost everything comes back on the same port: both nodes return to it,
    // and A announces its paths again.
    let fresh = TempDir::new().unwrap();
    let db = fresh.path().join("tracker.redb");
    let tracker = TrackerProcess::start_binary_on(PEERIX.as_ref(), &db, port, &[]);
    eventually(Duration::from_secs(60), "B never rejoined", || {
        tracker_reachable(&b)
    });
    eventually(Duration::from_secs(60), "A never announced again", || {
        let found = get_json(&tracker, &format!("/find/{}", hash_part(&f.lib)));
        found["providers"].as_array().is_some_and(|p| p.len() == 1)
    });
    drop(a);
}

#[test]
fn hybrid_nodes_use_holders_from_the_tracker_and_from_libp2p() {
    let f = Fixture::get();
    let upstream = NixKey::generate("upstream-test-1");
    let db = TempDir::new().unwrap();
    let tracker = tracker(&db);
    // T is known only to the tracker; L only to B's libp2p bootstrap list.
    let t_store = ChrootStore::signed(&upstream, &[&f.lib]);
    let t = node(&t_store, "wan", &tracker.url, &upstream.public, &[]);
    let l_store = ChrootStore::signed(&upstream, &[&f.big]);
    let l = Peerix::serve(
        l_store.root(),
        &[
            "--mode",
            "libp2p",
            "--listen-addrs",
            LOOPBACK,
            "--trusted-public-key",
            &upstream.public,
        ],
    );
    let l_addr = l.p2p_addr();
    let b_store = ChrootStore::empty();
    let b = node(
        &b_store,
        "hybrid",
        &tracker.url,
        &upstream.public,
        &["--bootstrap-peers", &l_addr],
    );
    b.wait_for_narinfo(&f.lib, DISCOVERY_WAIT);
    b.wait_for_narinfo(&f.big, DISCOVERY_WAIT);
    let dest = ChrootStore::empty();
    nix_copy_ok(&b.url(), &dest, &upstream.public, &[&f.lib, &f.big]);
    t_store.assert_same_nars(&dest, &[&f.lib]);
    l_store.assert_same_nars(&dest, &[&f.big]);
    // The tracker never heard of L.
    let l_id = l_addr.rsplit("/p2p/").next().unwrap();
    let peers = get_json(&tracker, "/peers").to_string();
    assert!(!peers.contains(l_id), "{peers}");
    drop(t);
}

/// A node sharing more paths than the tracker takes per peer told it the first 100,000, then
/// every change as a delta against all of them: the tracker refused each one, for good.
#[test]
fn a_store_past_the_trackers_bound_keeps_it_current() {
    let store = SyntheticStore::generate(peerix::wire::tracker::MAX_HASHES + 20).unwrap();
    let db = TempDir::new().unwrap();
    let tracker = tracker(&db);
    let node = Peerix::serve(
        &store.root,
        &[
            "--mode",
            "wan",
            "--tracker-url",
            &tracker.url,
            "--listen-addrs",
            LOOPBACK,
        ],
    );
    let holders = |hash: &str| {
        let found = get_json(&tracker, &format!("/find/{hash}"));
        found["providers"].as_array().map_or(0, Vec::len)
    };
    let mut sorted = store.hashes.clone();
    sorted.sort();
    eventually(
        Duration::from_secs(120),
        "the first paths never reached the tracker",
        || holders(&sorted[0]) == 1,
    );
    assert_eq!(
        holders(sorted.last().unwrap()),
        0,
        "past the bound: not told"
    );

    // A path that sorts first: it is told, and the last one told goes.
    let first = "0".repeat(32);
    store.register(&first).unwrap();
    eventually(
        Duration::from_secs(60),
        "the new path never reached the tracker",
        || holders(&first) == 1,
    );
    assert_eq!(holders(&sorted[peerix::wire::tracker::MAX_HASHES - 1]), 0);
    assert_eq!(holders(&sorted[0]), 1);
    assert!(tracker_reachable(&node));
}
