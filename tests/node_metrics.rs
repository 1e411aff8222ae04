//! `/metrics` carries the node's families beside the front's, from the same sources as
//! `/status`, and they move when their event happens: the scan's paths, the announcements'
//! pause, a peer connecting, the paths it holds.

mod common;

use std::time::Duration;

use common::{curl, eventually, ChrootStore, Fixture, NixKey, Peerix};

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
