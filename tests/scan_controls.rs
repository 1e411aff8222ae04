//! The scan and announcement controls under the old program's routes: `POST /scan/pause` stops
//! the publication scan (the path under way is finished), `/scan/resume` lets it finish,
//! `POST /reannounce/pause` holds the DHT announcements in their queue and `/resume` lets them
//! go; `GET /announce-status` and `/scan-status` tell the state. A web page can press none.

mod common;

use std::time::Duration;

use common::control::press;
use common::synthetic_store::SyntheticStore;
use common::{curl, eventually, Peerix};
use serde_json::Value;

fn get(node: &Peerix, route: &str) -> Value {
    let answer = curl(&format!("{}{route}", node.url()), &[]);
    assert_eq!(answer.status, 200, "{route}");
    serde_json::from_slice(&answer.body).unwrap()
}

#[test]
fn the_scan_and_the_announcements_pause_and_resume() {
    let store = SyntheticStore::generate(8_000).unwrap();
    // Paced at 20 a second, announcements queue up behind the scan.
    let node = Peerix::serve(&store.root, &["--announce-rate", "20"]);
    eventually(Duration::from_secs(20), "the scan never started", || {
        get(&node, "/scan-status")["paths_done"].as_u64() > Some(0)
    });

    // Announcements held while the scan goes on: the queue grows, none is done.
    let announcing = press(&node, "/reannounce/pause");
    assert_eq!(announcing["paused"], true);
    std::thread::sleep(Duration::from_millis(500));
    let done = get(&node, "/announce-status")["done"].clone();
    std::thread::sleep(Duration::from_millis(1500));
    let still = get(&node, "/announce-status");
    assert_eq!(still["done"], done, "paused announcements went on: {still}");
    assert!(still["queued"].as_u64() > Some(0), "{still}");

    let paused = press(&node, "/scan/pause");
    assert_eq!(paused["paused"], true);
    assert!(
        paused["paths_done"].as_u64() < paused["paths_total"].as_u64(),
        "the scan finished before it could be paused: {paused}"
    );
    std::thread::sleep(Duration::from_millis(500));
    let held = get(&node, "/scan-status")["paths_done"].clone();
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        get(&node, "/scan-status")["paths_done"],
        held,
        "a paused scan went on"
    );

    assert_eq!(press(&node, "/scan/resume")["paused"], false);
    assert_eq!(press(&node, "/reannounce/resume")["paused"], false);
    eventually(
        Duration::from_secs(20),
        "resumed announcements never went on",
        || get(&node, "/announce-status")["done"].as_u64() > done.as_u64(),
    );
    eventually(
        Duration::from_secs(20),
        "the resumed scan never went on",
        || get(&node, "/scan-status")["paths_done"].as_u64() > held.as_u64(),
    );
    // The status document tells the same.
    let status = node.status();
    assert_eq!(status["scan"]["paused"], false);
    assert_eq!(status["node"]["announcements"]["paused"], false);

    // Unknown controls are 404; a web page may press none.
    let unknown = curl(&format!("{}/scan/explode", node.url()), &["-X", "POST"]);
    assert_eq!(unknown.status, 404);
    let from_a_page = curl(
        &format!("{}/scan/pause", node.url()),
        &["-X", "POST", "-H", "Origin: http://evil.example"],
    );
    assert_eq!(from_a_page.status, 403);
    assert_eq!(get(&node, "/scan-status")["paused"], false);
}
