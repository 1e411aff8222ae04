//! Writes the tracker refuses, and the bounds it keeps: nothing changes.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use peerix::wire::tracker::{parse_answer, CidAnswer, PeersAnswer, Role, WritePayload};
use tempfile::TempDir;

use super::tracker_process::{store_hash, unix_now, TestPeer, TrackerProcess};
use super::*;

#[test]
fn unsigned_forged_replayed_stale_and_foreign_writes_change_nothing() {
    let dir = TempDir::new().unwrap();
    let tracker = start(&dir, &[]);
    let (a, b, c) = (TestPeer::new(1), TestPeer::new(2), TestPeer::new(3));
    tracker.write_ok(&a, announce(1001));
    tracker.write_ok(&b, announce(1002));
    tracker.write_ok(&a, batch(0..10));
    tracker.write_ok(&b, batch(5..12));
    tracker.write_ok(&a, cid_write(store_hash(1), CID));
    let init = WritePayload::TransferInit {
        sender: a.id,
        receiver: b.id,
        hash: store_hash(5),
    };
    let transfer_id = tracker.write_ok(&a, init.clone())["transfer_id"]
        .as_u64()
        .unwrap();
    // Accepted once before the snapshot, replayed after it.
    let replayed = a.sign(WritePayload::PackagesDelta {
        added: vec![store_hash(11)],
        removed: vec![store_hash(0)],
    });
    assert_eq!(tracker.post("/packages/delta", &replayed).status, 200);
    let before = snapshot(&tracker, &[&a, &b, &c]);

    let old_clients: [(&str, serde_json::Value); 6] = [
        (
            "/announce",
            serde_json::json!({"peer_id": a.id.to_string(), "port": 1, "packages": []}),
        ),
        (
            "/packages/batch",
            serde_json::json!({"peer_id": a.id.to_string(), "hashes": []}),
        ),
        (
            "/packages/delta",
            serde_json::json!({"peer_id": a.id.to_string(), "added": [], "removed": [store_hash(1).to_string()]}),
        ),
        (
            "/cid",
            serde_json::json!({"nar_hash": store_hash(1).to_string(), "cid": OTHER_CID, "peer_id": a.id.to_string()}),
        ),
        (
            "/transfer/init",
            serde_json::json!({"sender_id": a.id.to_string(), "receiver_id": b.id.to_string()}),
        ),
        (
            "/report",
            serde_json::json!({"transfer_id": transfer_id, "peer_id": a.id.to_string(), "role": "sender", "bytes": 1}),
        ),
    ];
    for (route, body) in &old_clients {
        let reply = tracker.post(route, &serde_json::to_vec(body).unwrap());
        assert_refused(&reply, 401, route);
        let message = reply.error();
        assert!(
            message.contains("signed by the peer's libp2p") && message.contains("README"),
            "{route}: {message}"
        );
    }

    let writes = [
        announce(9999),
        batch(20..30),
        WritePayload::PackagesDelta {
            added: vec![],
            removed: vec![store_hash(1)],
        },
        cid_write(store_hash(1), OTHER_CID),
        WritePayload::TransferInit {
            sender: a.id,
            receiver: c.id,
            hash: store_hash(2),
        },
        WritePayload::Report {
            transfer_id,
            role: Role::Sender,
            bytes: 10,
        },
    ];
    for payload in &writes {
        let route = payload.route();
        let forged = forge(&a.sign(payload.clone()));
        assert_refused(
            &tracker.post(route, &forged),
            403,
            &format!("forged {route}"),
        );
        let stale = a.sign_at(payload.clone(), unix_now() - 600, [7; 16]);
        assert_refused(&tracker.post(route, &stale), 403, &format!("stale {route}"));
        let ahead = a.sign_at(payload.clone(), unix_now() + 600, [7; 16]);
        assert_refused(
            &tracker.post(route, &ahead),
            403,
            &format!("future {route}"),
        );
        let elsewhere = if route == "/announce" {
            "/cid"
        } else {
            "/announce"
        };
        let misrouted = a.sign(payload.clone());
        assert_refused(
            &tracker.post(elsewhere, &misrouted),
            400,
            &format!("{route} sent to {elsewhere}"),
        );
    }
    assert_refused(&tracker.post("/packages/delta", &replayed), 403, "replay");
    assert!(tracker
        .post("/packages/delta", &replayed)
        .error()
        .contains("replay"));
    // Other peers' rows: C cannot map a path it does not share (A's mapping stays), B cannot
    // report A's side, C cannot open A and B's transfer or report on it at all.
    assert_refused(
        &tracker.write(&c, cid_write(store_hash(1), OTHER_CID)),
        404,
        "a CID write of an unknown peer",
    );
    // A write refused for who sent it keeps no nonce: keys cost nothing, and every nonce kept
    // is a row for minutes.
    let early = c.sign(WritePayload::PackagesDelta {
        added: vec![],
        removed: vec![],
    });
    assert_refused(
        &tracker.post("/packages/delta", &early),
        404,
        "an unknown peer's delta",
    );
    tracker.write_ok(&c, announce(1003));
    let taken = tracker.post("/packages/delta", &early);
    assert_eq!(
        taken.status,
        200,
        "the refused write's nonce was kept: {}",
        taken.error()
    );
    let after_c = snapshot(&tracker, &[&a, &b, &c]);
    assert_refused(
        &tracker.write(&c, cid_write(store_hash(1), OTHER_CID)),
        403,
        "a CID for another's path",
    );
    assert_refused(
        &tracker.write(
            &b,
            WritePayload::Report {
                transfer_id,
                role: Role::Sender,
                bytes: 10,
            },
        ),
        403,
        "a report for the other side",
    );
    assert_refused(&tracker.write(&c, init), 403, "a transfer of two others");
    for role in [Role::Sender, Role::Receiver] {
        let report = WritePayload::Report {
            transfer_id,
            role,
            bytes: 10,
        };
        assert_refused(&tracker.write(&c, report), 403, "a third peer's report");
    }
    assert_eq!(snapshot(&tracker, &[&a, &b, &c]), after_c);
    // Without C's own announce, the state is what it was before any refused write.
    let without_c: Vec<String> = after_c.iter().skip(3).cloned().collect();
    assert_eq!(
        before.iter().skip(3).cloned().collect::<Vec<_>>(),
        without_c
    );
    let cid: CidAnswer =
        parse_answer(&tracker.get(&format!("/cid/{}", store_hash(1))).body).unwrap();
    assert_eq!(cid.cid, CID);
}

#[test]
fn rate_limits_answer_429_and_large_bodies_413() {
    let dir = TempDir::new().unwrap();
    let tracker = start(
        &dir,
        &[
            "--ip-rate",
            "0.01",
            "--ip-burst",
            "20",
            "--peer-rate",
            "0.1",
            "--peer-burst",
            "3",
        ],
    );
    let (a, b) = (TestPeer::new(61), TestPeer::new(62));
    for _ in 0..3 {
        tracker.write_ok(&a, announce(9001));
    }
    let limited = tracker.write(&a, announce(9001));
    assert_refused(&limited, 429, "a peer's fourth write");
    assert!(limited
        .retry_after
        .is_some_and(|s| s.parse::<u64>().unwrap() >= 1));
    // Another peer from the same address still writes: the per-peer bucket was A's.
    tracker.write_ok(&b, announce(9002));
    let mut statuses = Vec::new();
    for _ in 0..20 {
        statuses.push(tracker.get("/status").status);
    }
    assert_eq!(
        statuses.iter().filter(|&&s| s == 200).count(),
        15,
        "{statuses:?}"
    );
    let limited = tracker.get("/status");
    assert_refused(&limited, 429, "the address's 21st request");
    assert!(limited.retry_after.is_some());

    let dir = TempDir::new().unwrap();
    let tracker = start(&dir, &[]);
    let huge = vec![b' '; peerix::wire::tracker::MAX_BODY + 1];
    assert_refused(
        &tracker.post("/packages/batch", &huge),
        413,
        "a body past MAX_BODY",
    );
    assert_eq!(
        tracker.get("/status").status,
        200,
        "the tracker is still there"
    );
}

/// A write whose body stops, or comes a byte at a time, held its connection (one of two here)
/// and its buffered bytes for good.
#[test]
fn a_body_that_stalls_or_trickles_is_cut_off() {
    let dir = TempDir::new().unwrap();
    let tracker = start(&dir, &["--header-timeout", "1", "--max-connections", "2"]);
    let addr = tracker.url.trim_start_matches("http://").to_owned();
    let open = |first: &[u8]| {
        let mut stream = TcpStream::connect(&addr).unwrap();
        stream
            .write_all(b"POST /announce HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n")
            .unwrap();
        stream.write_all(first).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        stream
    };
    let started = Instant::now();
    let mut stalled = open(b"{\"payload\":");
    let mut trickle = open(b"{");
    let mut reader = trickle.try_clone().unwrap();
    let dripper = std::thread::spawn(move || {
        for _ in 0..100 {
            std::thread::sleep(Duration::from_millis(200));
            if trickle.write_all(b" ").is_err() {
                break;
            }
        }
    });
    let mut answer = String::new();
    let read = stalled.read_to_string(&mut answer);
    assert!(
        read.is_ok(),
        "the stalled body's connection stayed open: {read:?}"
    );
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("too slowly"), "{answer}");
    // The trickle's connection ends (with the answer, or reset over the bytes still coming).
    let read = reader.read_to_end(&mut Vec::new());
    let timed_out = read.as_ref().is_err_and(|e| {
        matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        )
    });
    assert!(!timed_out, "the trickling body's connection stayed open");
    let elapsed = started.elapsed();
    eprintln!("slow bodies cut off after {elapsed:?} (patience 1 s)");
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
    dripper.join().unwrap();
    assert_eq!(tracker.get("/status").status, 200, "both slots are free");
}

#[test]
fn forwarded_addresses_count_only_from_a_trusted_proxy() {
    let header = ("x-forwarded-for", "198.51.100.23");
    let seen_addr = |tracker: &TrackerProcess, peer: &TestPeer| {
        let reply = tracker.post_with("/announce", &peer.sign(announce(9100)), header);
        assert_eq!(reply.status, 200);
        let found: PeersAnswer = parse_answer(&tracker.get("/peers").body).unwrap();
        let entry = found
            .peers
            .iter()
            .find(|p| p.peer_id == peer.id.to_string())
            .unwrap()
            .clone();
        (reply.json()["addr"].as_str().unwrap().to_owned(), entry)
    };
    let dir = TempDir::new().unwrap();
    let untrusting = start(&dir, &["--trust-proxy", "10.0.0.0/8"]);
    let (addr, entry) = seen_addr(&untrusting, &TestPeer::new(71));
    assert_eq!(
        (addr.as_str(), entry.addr.as_str()),
        ("127.0.0.1", "127.0.0.1")
    );
    drop(untrusting);

    let dir = TempDir::new().unwrap();
    let trusting = start(
        &dir,
        &[
            "--trust-proxy",
            "127.0.0.0/8",
            "--ip-burst",
            "5",
            "--ip-rate",
            "0.01",
        ],
    );
    let peer = TestPeer::new(72);
    let (addr, entry) = seen_addr(&trusting, &peer);
    assert_eq!(
        (addr.as_str(), entry.addr.as_str()),
        ("198.51.100.23", "198.51.100.23")
    );
    assert!(entry
        .multiaddrs
        .contains(&format!("/ip4/198.51.100.23/tcp/9100/p2p/{}", peer.id)));
    // Behind the proxy, each client has its own bucket.
    for _ in 0..5 {
        trusting.get_with("/status", ("x-forwarded-for", "198.51.100.50"));
    }
    assert_eq!(
        trusting
            .get_with("/status", ("x-forwarded-for", "198.51.100.50"))
            .status,
        429
    );
    assert_eq!(
        trusting
            .get_with("/status", ("x-forwarded-for", "198.51.100.51"))
            .status,
        200
    );
}
