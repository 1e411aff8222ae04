//! What the tracker keeps (across kill -9), answers and forgets.

use std::time::{Duration, Instant};

use peerix::wire::tracker::{
    parse_answer, CidsAnswer, FindAnswer, PeersAnswer, Role, StatusAnswer, WritePayload,
};
use tempfile::TempDir;

use super::tracker_process::{store_hash, TestPeer};
use super::*;

#[test]
fn reads_answer_in_the_documented_shapes() {
    let dir = TempDir::new().unwrap();
    let tracker = start(&dir, &[]);
    let (a, b) = (TestPeer::new(11), TestPeer::new(12));
    let seen = tracker.write_ok(&a, announce(4001));
    assert_eq!(seen, serde_json::json!({"ok": true, "addr": "127.0.0.1"}));
    tracker.write_ok(&b, announce(4002));
    assert_eq!(
        tracker.write_ok(&a, batch(0..3)),
        serde_json::json!({"ok": true})
    );
    tracker.write_ok(&b, batch(2..4));
    tracker.write_ok(&a, cid_write(store_hash(2), CID));

    let keys = |value: &serde_json::Value| -> Vec<String> {
        let mut keys: Vec<String> = value.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        keys
    };
    let status = tracker.get("/status");
    assert_eq!(
        keys(&status.json()),
        [
            "cid_mappings",
            "distinct_packages",
            "packages",
            "peers",
            "status",
            "version"
        ]
    );
    let status: StatusAnswer = parse_answer(&status.body).unwrap();
    assert_eq!(
        (
            status.status.as_str(),
            status.peers,
            status.packages,
            status.distinct_packages,
            status.cid_mappings
        ),
        ("ok", 2, 5, 4, 1)
    );

    let found = tracker.get(&format!("/find/{}", store_hash(2)));
    let value = found.json();
    assert_eq!(keys(&value), ["hash", "providers"]);
    assert_eq!(
        keys(&value["providers"][0]),
        [
            "addr",
            "cid",
            "last_seen",
            "libp2p_peer_id",
            "multiaddrs",
            "peer_id",
            "port",
            "score"
        ]
    );
    let found: FindAnswer = parse_answer(&found.body).unwrap();
    assert_eq!(found.hash, store_hash(2).to_string());
    let of_a = found
        .providers
        .iter()
        .find(|p| p.peer_id == a.id.to_string())
        .unwrap();
    assert_eq!(of_a.libp2p_peer_id, of_a.peer_id);
    assert_eq!((of_a.addr.as_str(), of_a.port), ("127.0.0.1", 4001));
    assert_eq!(of_a.cid.as_deref(), Some(CID));
    assert_eq!(
        of_a.multiaddrs,
        [
            format!("/ip4/192.168.1.7/tcp/4001/p2p/{}", a.id),
            format!("/ip4/127.0.0.1/tcp/4001/p2p/{}", a.id),
        ],
        "what it announced, and the same port at the address its announce came from"
    );
    assert!(find(&tracker, store_hash(9)).providers.is_empty());
    assert_eq!(tracker.get("/find/not-a-hash").status, 400);

    let peers = tracker.get("/peers");
    assert_eq!(keys(&peers.json()), ["peers"]);
    assert_eq!(
        keys(&peers.json()["peers"][0]),
        [
            "addr",
            "last_seen",
            "libp2p_peer_id",
            "multiaddrs",
            "packages",
            "peer_id",
            "port",
            "score"
        ]
    );
    let peers: PeersAnswer = parse_answer(&peers.body).unwrap();
    assert_eq!(peers.peers.len(), 2);

    let cid = tracker.get(&format!("/cid/{}", store_hash(2)));
    assert_eq!(keys(&cid.json()), ["cid", "hash"]);
    assert_eq!(tracker.get(&format!("/cid/{}", store_hash(1))).status, 404);
    let cids: CidsAnswer = parse_answer(&tracker.get("/cids?limit=10").body).unwrap();
    assert_eq!(
        cids.cids
            .get(&store_hash(2).to_string())
            .map(String::as_str),
        Some(CID)
    );
    let after: CidsAnswer =
        parse_answer(&tracker.get(&format!("/cids?after={}", store_hash(2))).body).unwrap();
    assert!(after.cids.is_empty());
    let batch_reply = tracker.post(
        "/cids/batch",
        &serde_json::to_vec(&serde_json::json!({"nar_hashes": [store_hash(2).to_string(), store_hash(3).to_string()]})).unwrap(),
    );
    let batch_answer: CidsAnswer = parse_answer(&batch_reply.body).unwrap();
    assert_eq!(batch_answer.cids.len(), 1);
    let too_many: Vec<String> = (0..1001).map(|n| store_hash(n).to_string()).collect();
    let reply = tracker.post(
        "/cids/batch",
        &serde_json::to_vec(&serde_json::json!({ "nar_hashes": too_many })).unwrap(),
    );
    assert_refused(&reply, 413, "a batch of 1,001");

    let reputation_reply = tracker.get(&format!("/reputation/{}", a.id));
    assert_eq!(
        keys(&reputation_reply.json()),
        [
            "failed_transfers",
            "peer_id",
            "score",
            "successful_transfers",
            "total_received",
            "total_shared"
        ]
    );
    let membership_reply = tracker.get("/membership");
    assert_eq!(
        keys(&membership_reply.json()),
        ["added", "epoch", "full", "removed", "version"]
    );
    assert_refused(&tracker.get("/membership?since=x"), 400, "a bad since");
    let init = tracker.write_ok(
        &a,
        WritePayload::TransferInit {
            sender: a.id,
            receiver: b.id,
            hash: store_hash(2),
        },
    );
    assert_eq!(keys(&init), ["transfer_id"]);
}

#[test]
fn acknowledged_writes_survive_kill_9() {
    let dir = TempDir::new().unwrap();
    let tracker = start(&dir, &[]);
    let (a, b) = (TestPeer::new(21), TestPeer::new(22));
    tracker.write_ok(&a, announce(5001));
    tracker.write_ok(&b, announce(5002));
    tracker.write_ok(&a, batch(0..1000));
    tracker.write_ok(&b, batch(500..600));
    tracker.write_ok(
        &a,
        WritePayload::PackagesDelta {
            added: vec![store_hash(2000)],
            removed: vec![store_hash(0)],
        },
    );
    tracker.write_ok(&a, cid_write(store_hash(7), CID));
    let id = tracker.write_ok(
        &a,
        WritePayload::TransferInit {
            sender: a.id,
            receiver: b.id,
            hash: store_hash(550),
        },
    )["transfer_id"]
        .as_u64()
        .unwrap();
    tracker.write_ok(
        &a,
        WritePayload::Report {
            transfer_id: id,
            role: Role::Sender,
            bytes: 4096,
        },
    );
    // The last write is acknowledged and the process is killed at once.
    tracker.write_ok(
        &b,
        WritePayload::Report {
            transfer_id: id,
            role: Role::Receiver,
            bytes: 4096,
        },
    );
    let before = snapshot(&tracker, &[&a, &b]);
    tracker.kill_9();

    let tracker = start(&dir, &[]);
    assert_eq!(snapshot(&tracker, &[&a, &b]), before);
    let status: StatusAnswer = parse_answer(&tracker.get("/status").body).unwrap();
    assert_eq!(
        (status.peers, status.packages, status.cid_mappings),
        (2, 1100, 1)
    );
    assert!(find(&tracker, store_hash(0)).providers.is_empty());
    assert_eq!(providers(&tracker, store_hash(2000)), [a.id.to_string()]);
    assert_eq!(providers(&tracker, store_hash(550)).len(), 2);
    assert_eq!(reputation(&tracker, a.id).total_shared, 4096);
    assert_eq!(reputation(&tracker, b.id).total_received, 4096);
    // The nonces survived too: a write made before the kill is still a replay.
    let replay = a.sign(batch(0..1));
    assert_eq!(tracker.post("/packages/batch", &replay).status, 200);
    tracker.kill_9();
    let tracker = start(&dir, &[]);
    assert_refused(
        &tracker.post("/packages/batch", &replay),
        403,
        "a replay across a restart",
    );
}

#[test]
fn silent_peers_expire_with_their_packages_and_heartbeating_ones_stay() {
    let dir = TempDir::new().unwrap();
    // ttl 4 s: expiry runs every 2 s.
    let tracker = start(&dir, &["--ttl", "4"]);
    let (silent, alive) = (TestPeer::new(31), TestPeer::new(32));
    tracker.write_ok(&silent, announce(6001));
    tracker.write_ok(&alive, announce(6002));
    tracker.write_ok(&silent, batch(0..10));
    tracker.write_ok(&silent, cid_write(store_hash(3), CID));
    tracker.write_ok(&alive, batch(5..15));
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(9) {
        tracker.write_ok(&alive, announce(6002));
        std::thread::sleep(Duration::from_millis(500));
    }
    let peers: PeersAnswer = parse_answer(&tracker.get("/peers").body).unwrap();
    let ids: Vec<&str> = peers.peers.iter().map(|p| p.peer_id.as_str()).collect();
    assert_eq!(ids, [alive.id.to_string()]);
    for n in 0..5 {
        assert!(find(&tracker, store_hash(n)).providers.is_empty(), "{n}");
    }
    for n in 5..15 {
        assert_eq!(
            providers(&tracker, store_hash(n)),
            [alive.id.to_string()],
            "{n}"
        );
    }
    assert_eq!(tracker.get(&format!("/cid/{}", store_hash(3))).status, 404);
    // An expired peer must announce again before it writes.
    assert_refused(
        &tracker.write(&silent, batch(0..1)),
        404,
        "a write after expiry",
    );
}

#[test]
fn membership_is_whole_then_deltas_then_whole_after_a_restart() {
    let dir = TempDir::new().unwrap();
    let tracker = start(&dir, &["--ttl", "4"]);
    let (a, b) = (TestPeer::new(41), TestPeer::new(42));
    tracker.write_ok(&a, announce(7001));
    tracker.write_ok(&b, announce(7002));
    tracker.write_ok(&a, batch(0..5));
    tracker.write_ok(&b, batch(3..8));
    let whole = membership(&tracker, None);
    assert!(whole.full);
    let mut added = whole.added.clone();
    added.sort();
    assert_eq!(
        added,
        (0..8)
            .map(|n| store_hash(n).to_string())
            .collect::<Vec<_>>()
    );

    // A full set that drops 0 and 4 (4 is still B's) and adds 9; a delta that adds 10.
    tracker.write_ok(
        &a,
        WritePayload::PackagesBatch {
            hashes: vec![store_hash(1), store_hash(2), store_hash(3), store_hash(9)],
        },
    );
    tracker.write_ok(
        &b,
        WritePayload::PackagesDelta {
            added: vec![store_hash(10)],
            removed: vec![],
        },
    );
    let delta = membership(&tracker, Some((whole.epoch, whole.version)));
    assert!(!delta.full);
    assert_eq!(delta.epoch, whole.epoch);
    assert_eq!(
        delta.added,
        [store_hash(9).to_string(), store_hash(10).to_string()]
    );
    assert_eq!(delta.removed, [store_hash(0).to_string()]);
    let unchanged = membership(&tracker, Some((delta.epoch, delta.version)));
    assert!(!unchanged.full && unchanged.added.is_empty() && unchanged.removed.is_empty());
    // An unknown epoch or a version not reached gets the whole set.
    assert!(membership(&tracker, Some((whole.epoch + 1, 0))).full);
    assert!(membership(&tracker, Some((whole.epoch, delta.version + 5))).full);

    // Expiry: A goes silent, what only A held leaves the set.
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(9) {
        tracker.write_ok(&b, announce(7002));
        std::thread::sleep(Duration::from_millis(500));
    }
    let expired = membership(&tracker, Some((delta.epoch, delta.version)));
    assert!(!expired.full);
    let mut removed = expired.removed.clone();
    removed.sort();
    assert_eq!(
        removed,
        [
            store_hash(1).to_string(),
            store_hash(2).to_string(),
            store_hash(9).to_string()
        ]
    );

    drop(tracker);
    let tracker = start(&dir, &["--ttl", "4"]);
    let restarted = membership(&tracker, Some((expired.epoch, expired.version)));
    assert!(restarted.full, "a restarted tracker starts a new epoch");
    assert_ne!(restarted.epoch, expired.epoch);
    assert_eq!(restarted.added.len(), 6, "B's 3..8 and 10");
}

#[test]
fn reputation_credits_agreeing_reports_the_right_way_round_and_orders_find() {
    let dir = TempDir::new().unwrap();
    let tracker = start(&dir, &[]);
    let (sender, receiver, disputed, third) = (
        TestPeer::new(51),
        TestPeer::new(52),
        TestPeer::new(53),
        TestPeer::new(54),
    );
    for (peer, port) in [
        (&sender, 8001),
        (&receiver, 8002),
        (&disputed, 8003),
        (&third, 8004),
    ] {
        tracker.write_ok(peer, announce(port));
    }
    tracker.write_ok(&disputed, batch(0..3));
    tracker.write_ok(&sender, batch(0..3));
    // The most recently seen comes first while the scores are equal.
    std::thread::sleep(Duration::from_millis(1100));
    tracker.write_ok(&sender, announce(8001));
    assert_eq!(
        providers(&tracker, store_hash(1)),
        [sender.id.to_string(), disputed.id.to_string()]
    );

    let transfer = |s: &TestPeer, hash: u32, opener: &TestPeer| {
        let init = WritePayload::TransferInit {
            sender: s.id,
            receiver: receiver.id,
            hash: store_hash(hash),
        };
        tracker.write_ok(opener, init)["transfer_id"]
            .as_u64()
            .unwrap()
    };
    // The receiver opens, the sender opens the same transfer: one id.
    let id = transfer(&sender, 1, &receiver);
    assert_eq!(transfer(&sender, 1, &sender), id);
    let report = |peer: &TestPeer, transfer_id, role, bytes| {
        tracker.write(
            peer,
            WritePayload::Report {
                transfer_id,
                role,
                bytes,
            },
        )
    };
    assert_refused(
        &report(&third, id, Role::Sender, 1_000_000),
        403,
        "a third peer",
    );
    assert_eq!(report(&sender, id, Role::Sender, 1_000_000).status, 200);
    assert_eq!(report(&receiver, id, Role::Receiver, 980_000).status, 200);
    let credited = reputation(&tracker, sender.id);
    assert_eq!(
        (
            credited.total_shared,
            credited.total_received,
            credited.successful_transfers,
            credited.failed_transfers
        ),
        (980_000, 0, 1, 0)
    );
    let received = reputation(&tracker, receiver.id);
    assert_eq!(
        (
            received.total_shared,
            received.total_received,
            received.successful_transfers
        ),
        (0, 980_000, 0)
    );
    assert!(credited.score > 0.0);

    // Reports 10 % apart: the sender's failure, nothing credited.
    let id = transfer(&disputed, 2, &disputed);
    assert_eq!(report(&disputed, id, Role::Sender, 1_000_000).status, 200);
    assert_eq!(report(&receiver, id, Role::Receiver, 900_000).status, 200);
    let failed = reputation(&tracker, disputed.id);
    assert_eq!(
        (
            failed.total_shared,
            failed.successful_transfers,
            failed.failed_transfers
        ),
        (0, 0, 1)
    );
    assert_eq!(reputation(&tracker, receiver.id).total_received, 980_000);

    // The disputed peer heartbeats last, yet the credited sender leads /find and /peers.
    tracker.write_ok(&disputed, announce(8003));
    assert_eq!(
        providers(&tracker, store_hash(1)),
        [sender.id.to_string(), disputed.id.to_string()]
    );
    let scores = find(&tracker, store_hash(1));
    assert_eq!(scores.providers[0].score, credited.score);
    let peers: PeersAnswer = parse_answer(&tracker.get("/peers").body).unwrap();
    assert_eq!(peers.peers[0].peer_id, sender.id.to_string());
}
