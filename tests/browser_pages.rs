//! A real browser (headless Chromium) against a running node: a page from another origin tries
//! to drive the node's RPC and the dashboard's controls with the requests any web page may send
//! without asking (POSTs of forms and plain text, `no-cors`) and to look a path up, and a
//! DNS-rebinding name that resolves to the node asks for `/status` and `/bootstrap`. Nothing
//! changes and nothing is revealed. Chromium resolves no name but the one the
//! test maps to 127.0.0.1 and contacts nothing else.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};

use common::control::{added_files, announcements_paused, peer_count};
use common::{ChrootStore, Peerix};

const CHROMIUM: &str = "/usr/bin/chromium";
/// The name a rebinding attacker's DNS would point at the node.
const REBOUND_NAME: &str = "rebind.test";
/// A store hash nobody holds, for the page's lookup.
const MISSING_HASH: &str = "00000000000000000000000000000000";

/// The attacker's page: every control request it can make unasked, then a note to its own
/// server that it got through them all.
fn hostile_page(node_url: &str, peer_addr: &str) -> String {
    format!(
        r#"<!doctype html><title>page</title><script>
const node = "{node_url}";
async function send(path, body) {{
  try {{ await fetch(node + path, {{ method: "POST", mode: "no-cors", body }}); }} catch (e) {{}}
}}
async function attack() {{
  await send("/api/v0/peerix/announce?arg=pause", "x");
  // The dashboard's controls, under the old program's routes.
  await send("/reannounce/pause", "x");
  await send("/scan/pause", "x");
  await send("/p2p/stop", "x");
  await send("/api/v0/swarm/connect?arg={peer_addr}", null);
  const form = new FormData();
  form.append("file", new Blob(["a file a web page would like to publish"]), "upload");
  await send("/api/v0/add", form);
  await send("/api/v0/routing/provide?arg=bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku", null);
  // A lookup makes the node ask its peers; what it answers tells what they hold.
  try {{ await fetch(node + "/{MISSING_HASH}.narinfo", {{ mode: "no-cors" }}); }} catch (e) {{}}
  await fetch("/done", {{ method: "POST" }});
  document.title = "done";
}}
attack();
</script>"#
    )
}

/// Serves `page` at `/` on 127.0.0.1 from a thread; returns its origin and the paths requested.
fn attacker_site(page: String) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let requested = Arc::new(Mutex::new(Vec::new()));
    let log = requested.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(64) {
            let Ok(mut stream) = stream else { continue };
            // The whole head is read: closing with unread bytes would reset the connection.
            let mut reader = BufReader::new(&stream);
            let mut head = String::new();
            let _ = reader.read_line(&mut head);
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let path = head.split_whitespace().nth(1).unwrap_or("").to_owned();
            log.lock().unwrap().push(path);
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{page}",
                page.len()
            );
        }
    });
    (origin, requested)
}

/// Loads `url` in a fresh headless Chromium, lets its scripts run, and returns the DOM.
fn chromium_dump(profile: &Path, url: &str) -> String {
    let out = Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-default-apps",
            "--disable-extensions",
            "--virtual-time-budget=10000",
        ])
        .arg(format!(
            "--host-resolver-rules=MAP {REBOUND_NAME} 127.0.0.1, MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"
        ))
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(url)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {CHROMIUM}: {e}"));
    assert!(
        out.status.success(),
        "chromium: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_web_page_cannot_drive_or_read_the_node() {
    let store = ChrootStore::empty();
    let dir = tempfile::TempDir::new().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    let a = Peerix::serve_in(store.root(), &state, &[]);
    let b = Peerix::serve(store.root(), &[]);
    let (origin, requested) = attacker_site(hostile_page(&a.url(), &b.p2p_addr()));

    let dom = chromium_dump(&dir.path().join("profile"), &format!("{origin}/"));
    assert!(dom.contains("<title>done</title>"), "the page ran: {dom}");
    assert!(
        requested.lock().unwrap().iter().any(|p| p == "/done"),
        "the page sent every request: {:?}",
        requested.lock().unwrap()
    );
    assert!(!announcements_paused(&a), "a page paused announcements");
    let status = a.status();
    assert_eq!(status["scan"]["paused"], false, "a page paused the scan");
    assert_eq!(
        status["node"]["traffic_stopped"], false,
        "a page stopped the node"
    );
    assert_eq!(peer_count(&a), 0, "a page made the node dial");
    assert_eq!(peer_count(&b), 0, "a page made the node dial");
    assert!(added_files(&state).is_empty(), "{:?}", added_files(&state));
    let metrics = common::curl(&format!("{}/metrics", a.url()), &[]);
    let metrics = String::from_utf8(metrics.body).unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l == "peerix_narinfo_misses_total 0"),
        "a page made the node look a path up: {metrics}"
    );

    // The rebinding name reaches the node itself: the browser sends it as Host.
    let rebound = format!("http://{REBOUND_NAME}:{}/status", a.port);
    let dom = chromium_dump(&dir.path().join("profile-rebound"), &rebound);
    assert!(dom.contains("refused"), "{dom}");
    let status = common::curl(&format!("{}/status", a.url()), &[]);
    let peer_id = serde_json::from_slice::<serde_json::Value>(&status.body).unwrap()["node"]
        ["peer_id"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("no peer_id in /status"));
    assert!(
        !dom.contains(&peer_id),
        "/status revealed to {REBOUND_NAME}"
    );
    let rebound = format!("http://{REBOUND_NAME}:{}/bootstrap", a.port);
    let dom = chromium_dump(&dir.path().join("profile-rebound-bootstrap"), &rebound);
    assert!(
        dom.contains("refused") && !dom.contains(&peer_id),
        "/bootstrap revealed to {REBOUND_NAME}: {dom}"
    );
    // The same browser, with the node's own name, is served: the rule is the Host, not the client.
    let own = chromium_dump(
        &dir.path().join("profile-own"),
        &format!("{}/status", a.url()),
    );
    assert!(own.contains(&peer_id), "{own}");
}
