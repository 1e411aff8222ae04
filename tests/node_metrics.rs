//! `/metrics` carries the node's families beside the front's, from the same sources as
//! `/status`, and they move when their event happens: the scan's paths, the announcements'
//! pause, a peer connecting, the paths it holds; requests by route and status, narinfo lookups
//! by source, refusals by kind, the bandwidth cap's waits.

mod common;

use std::time::Duration;

use common::{curl, eventually, hash_part, ChrootStore, Fixture, NixKey, Peerix};
use serde_json::Value;

const LOOPBACK: &str = "/ip4/127.0.0.1/tcp/0";
/// A hash no store holds: Nix's base-32, with none of the letters it lacks.
const NOBODYS: &str = "0123456789abcdfghijklmnpqrsvwxyz";

fn metrics(node: &Peerix) -> String {
    let answer = curl(&format!("{}/metrics", node.url()), &[]);
    assert_eq!(answer.status, 200);
    String::from_utf8(answer.body).unwrap()
}

/// The value of the sample named exactly `sample` (name and labels).
fn sample(text: &str, sample: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(sample)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn the_node_s_families_are_exported_and_move() {
    let f = Fixture::get();
    let key = NixKey::generate("metrics-test-1");
    let store = ChrootStore::signed(&key, &[&f.app]);
    let a = Peerix::serve(store.root(), &[]);
    eventually(Duration::from_secs(20), "A's scan never finished", || {
        sample(&metrics(&a), "peerix_scan_paths{state=\"done\"}") == Some(2.0)
    });
    let text = metrics(&a);
    // Every sample belongs to a family with its help and type.
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let name = line.split(['{', ' ']).next().unwrap();
        let family = name.trim_end_matches("_bucket").trim_end_matches("_sum");
        let family = family.trim_end_matches("_count");
        assert!(
            text.contains(&format!("# TYPE {name} "))
                || text.contains(&format!("# TYPE {family} ")),
            "{line} has no TYPE"
        );
    }
    assert_eq!(
        sample(&text, "peerix_scan_paths{state=\"total\"}"),
        Some(2.0)
    );
    assert_eq!(sample(&text, "peerix_scan_running"), Some(0.0));
    assert_eq!(sample(&text, "peerix_announcements_paused"), Some(0.0));
    assert_eq!(
        sample(&text, "peerix_peers{connection=\"direct\"}"),
        Some(0.0)
    );

    let paused = curl(&format!("{}/reannounce/pause", a.url()), &["-X", "POST"]);
    assert_eq!(paused.status, 200);
    assert_eq!(
        sample(&metrics(&a), "peerix_announcements_paused"),
        Some(1.0)
    );

    // A peer connects and tells what it holds.
    let b_store = ChrootStore::empty();
    let b = Peerix::serve(
        b_store.root(),
        &[
            "--bootstrap-peers",
            &a.p2p_addr(),
            "--trusted-public-key",
            &key.public,
        ],
    );
    b.wait_for_narinfo(&f.app, Duration::from_secs(30));
    let text = metrics(&b);
    assert_eq!(
        sample(&text, "peerix_peers{connection=\"direct\"}"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(sample(&text, "peerix_holders"), Some(1.0));
    assert_eq!(sample(&text, "peerix_remote_paths"), Some(2.0));
    assert!(sample(&text, "peerix_p2p_bytes_total{direction=\"in\"}") > Some(0.0));
    // Two Peerix nodes secure TCP with TLS, and with AES-GCM when the CPU has AES instructions.
    let aes = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .split_whitespace()
        .any(|flag| flag == "aes");
    let cipher = if aes { "aes-gcm" } else { "chacha20-poly1305" };
    let tls =
        format!("peerix_p2p_connections_secured_total{{protocol=\"tls\",cipher=\"{cipher}\"}}");
    assert!(sample(&text, &tls) >= Some(1.0), "{text}");
    let noise =
        "peerix_p2p_connections_secured_total{protocol=\"noise\",cipher=\"chacha20-poly1305\"}";
    assert_eq!(sample(&text, noise), Some(0.0), "{text}");
    // The front's own counters are still there, and count B's narinfo hits.
    assert!(sample(&text, "peerix_narinfo_hits_total") >= Some(1.0));
    // What Nix got from B came from a peer: a narinfo, then the NAR's bytes as they streamed.
    assert!(sample(&text, "peerix_narinfo_served_total{source=\"peer\"}") >= Some(1.0));
    let nar = curl(&format!("{}/{}", b.url(), b.nar_url(&f.app)), &[]);
    assert_eq!(nar.status, 200);
    let text = metrics(&b);
    let streamed = sample(&text, "peerix_nar_served_bytes_total{source=\"peer\"}");
    assert_eq!(streamed, Some(nar.body.len() as f64), "{text}");
    assert_eq!(
        sample(&text, "peerix_nar_served_bytes_total{source=\"local\"}"),
        Some(0.0)
    );
    let served = &b.status()["served"];
    assert_eq!(
        served["bytes_not_from_upstream"],
        nar.body.len() as u64,
        "{served}"
    );
    assert_eq!(served["narinfos"]["local"], 0, "{served}");
}

/// `sample`'s value in `node`'s metrics now (0 when absent: a counter not yet moved).
fn now(node: &Peerix, name: &str) -> f64 {
    sample(&metrics(node), name).unwrap_or(0.0)
}

fn requests(route: &str, status: u16) -> String {
    format!("peerix_http_requests_total{{route=\"{route}\",status=\"{status}\"}}")
}

fn lookups(source: &str, outcome: &str) -> String {
    format!("peerix_narinfo_lookups_total{{source=\"{source}\",outcome=\"{outcome}\"}}")
}

/// A holds a fixture path and a 2 MiB one signed by a key B trusts, C a path signed by a key
/// nobody trusts; B holds nothing and knows both. A and B cap their peer-to-peer traffic.
#[test]
fn requests_lookups_refusals_and_cap_waits_are_counted() {
    let f = Fixture::get();
    let key = NixKey::generate("metrics-test-2");
    let stranger = NixKey::generate("stranger-2");
    let scratch = tempfile::TempDir::new().unwrap();
    let a_store = ChrootStore::signed(&key, &[&f.app]);
    let capped_path = a_store.add_file(scratch.path(), "metrics-capped-nar", &[7; 2 << 20]);
    a_store.sign(&key.secret, &[&capped_path]);
    let c_store = ChrootStore::empty();
    let untrusted = c_store.add_file(scratch.path(), "metrics-stranger-file", b"a stranger's\n");
    c_store.sign(&stranger.secret, &[&untrusted]);
    let trusting = [
        "--listen-addrs",
        LOOPBACK,
        "--trusted-public-key",
        &key.public,
    ];
    let capped = ["--bandwidth-limit", "1M"];
    let a = Peerix::serve(a_store.root(), &[&trusting[..], &capped].concat());
    let c = Peerix::serve(c_store.root(), &trusting);
    let peers = format!("{},{}", a.p2p_addr(), c.p2p_addr());
    let b_store = ChrootStore::empty();
    let b = Peerix::serve(
        b_store.root(),
        &[&trusting[..], &capped, &["--bootstrap-peers", &peers]].concat(),
    );
    // A's app and lib and its capped path, C's one path.
    eventually(Duration::from_secs(30), "the peers' indexes", || {
        b.status()["peers"]["paths"] == 4
    });

    // Requests by route template and status, the RPC's included (`p2p_addr` asked A's id).
    let text = metrics(&a);
    assert!(
        sample(&text, &requests("/api/v0/id", 200)) >= Some(1.0),
        "{text}"
    );
    let narinfo_hits = now(&a, &requests("/{file}", 200));
    let narinfo_misses = now(&a, &requests("/{file}", 404));
    let unmatched = now(&a, &requests("unmatched", 404));
    let statuses = now(&a, &requests("/status", 200));
    let (local_hits, local_misses) = (
        now(&a, &lookups("local", "hit")),
        now(&a, &lookups("local", "miss")),
    );
    assert_eq!(a.get(&format!("/{}.narinfo", hash_part(&f.app))).0, 200);
    assert_eq!(a.get(&format!("/{NOBODYS}.narinfo")).0, 404);
    assert_eq!(a.get("/no/such/route").0, 404);
    let status = a.status();
    let text = metrics(&a);
    assert_eq!(
        sample(&text, &requests("/{file}", 200)),
        Some(narinfo_hits + 1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, &requests("/{file}", 404)),
        Some(narinfo_misses + 1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, &requests("unmatched", 404)),
        Some(unmatched + 1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, &requests("/status", 200)),
        Some(statuses + 1.0),
        "{text}"
    );
    assert!(
        !text.contains("no/such"),
        "a raw URI became a label: {text}"
    );
    // A local hit and a local miss; the miss was looked for among peers too (none holds it).
    assert_eq!(
        sample(&text, &lookups("local", "hit")),
        Some(local_hits + 1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, &lookups("local", "miss")),
        Some(local_misses + 1.0),
        "{text}"
    );
    assert!(
        sample(&text, &lookups("peer", "miss")) >= Some(1.0),
        "{text}"
    );
    // `/status` shows the same counters (taken just before this scrape: no lookup since).
    let status_lookups = &status["lookups"];
    assert_eq!(
        status_lookups["local"]["hit"],
        local_hits as u64 + 1,
        "{status_lookups}"
    );
    assert_eq!(
        status_lookups["local"]["miss"],
        local_misses as u64 + 1,
        "{status_lookups}"
    );
    assert_eq!(
        status_lookups["tracker"],
        serde_json::json!({"hit": 0, "miss": 0})
    );

    // A narinfo from a peer that no trusted key signed is refused, and counted by kind.
    let refused = "peerix_refusals_total{kind=\"untrusted_narinfo\"}";
    assert_eq!(now(&b, refused), 0.0);
    assert_eq!(b.get(&format!("/{}.narinfo", hash_part(&untrusted))).0, 404);
    let text = metrics(&b);
    assert_eq!(sample(&text, refused), Some(1.0), "{text}");
    assert_eq!(
        sample(&text, "peerix_refusals_total{kind=\"wrong_nar\"}"),
        Some(0.0)
    );
    let by_kind = &b.status()["refusals"]["by_kind"];
    assert_eq!(by_kind["untrusted_narinfo"], 1, "{by_kind}");
    assert_eq!(by_kind["cid_failed"], 0, "{by_kind}");
    assert_eq!(sample(&text, &lookups("peer", "miss")), Some(1.0), "{text}");

    // A trusted narinfo from a peer, then its NAR through both caps: A's sending and B's
    // receiving substreams wait for their buckets.
    assert_eq!(now(&b, &lookups("peer", "hit")), 0.0);
    let nar = curl(&format!("{}/{}", b.url(), b.nar_url(&capped_path)), &[]);
    assert_eq!(nar.status, 200);
    assert!(nar.body.len() > 2 << 20, "a NAR of the 2 MiB file");
    assert_eq!(now(&b, &lookups("peer", "hit")), 1.0);
    let waits = |node: &Peerix, direction: &str| {
        let text = metrics(node);
        let count = format!("peerix_bandwidth_cap_waits_total{{direction=\"{direction}\"}}");
        let seconds =
            format!("peerix_bandwidth_cap_wait_seconds_total{{direction=\"{direction}\"}}");
        (
            sample(&text, &count).unwrap_or(-1.0),
            sample(&text, &seconds).unwrap_or(-1.0),
        )
    };
    let (a_out, a_out_seconds) = waits(&a, "out");
    let (b_in, b_in_seconds) = waits(&b, "in");
    println!("2 MiB at 1 MB/s: A's substreams waited {a_out} times, {a_out_seconds:.3} s; B's {b_in} times, {b_in_seconds:.3} s");
    assert!(
        a_out >= 1.0 && a_out_seconds > 0.0,
        "{a_out} {a_out_seconds}"
    );
    assert!(b_in >= 1.0 && b_in_seconds > 0.0, "{b_in} {b_in_seconds}");
    let status = b.status();
    let b_waits = &status["node"]["bandwidth_waits"];
    assert!(
        b_waits["in"]["waits"].as_u64() >= Some(b_in as u64),
        "{b_waits}"
    );
    assert!(b_waits["in"]["seconds"].as_f64() > Some(0.0), "{b_waits}");
    // Unlimited, C never waits.
    assert_eq!(waits(&c, "in"), (0.0, 0.0));

    // Nix's requests in `/status`: the very counters `/metrics` renders.
    let nix: &Value = &status["nix_requests"];
    let text = metrics(&b);
    for (field, family) in [
        ("narinfo_hits", "peerix_narinfo_hits_total"),
        ("narinfo_misses", "peerix_narinfo_misses_total"),
        ("nar_requests", "peerix_nar_requests_total"),
        ("nar_bytes", "peerix_nar_bytes_total"),
        ("bad_requests", "peerix_bad_requests_total"),
        ("errors", "peerix_errors_total"),
    ] {
        assert_eq!(nix[field].as_f64(), sample(&text, family), "{field}: {nix}");
    }
    assert_eq!(nix["narinfo_hits"], 1, "{nix}");
    assert_eq!(nix["narinfo_misses"], 1, "{nix}");
    assert_eq!(nix["nar_bytes"], nar.body.len() as u64, "{nix}");
}
