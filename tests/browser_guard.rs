//! The local HTTP surfaces against hostile clients, on real `peerix serve` processes with curl
//! and raw TCP as the clients: cross-origin and DNS-rebinding requests to the RPC, `/status` and
//! the Nix routes are refused and change nothing, while plain clients are served; `add` is bounded and
//! leaves nothing behind when an upload fails; a client that never finishes its request head is
//! cut off while others are served.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use common::control::{added_files, announcements_paused, peer_count};
use common::{curl, hash_part, ChrootStore, Fixture, Peerix};
use serde_json::Value;

/// Browser requests another site can make: three cross-origin ones, two rebinding ones.
const HOSTILE: &[&str] = &[
    "Origin: https://evil.example",
    "Origin: null",
    "Referer: https://evil.example/x",
    "Sec-Fetch-Site: cross-site",
    "Sec-Fetch-Site: same-site",
    "Host: evil.example",
    "Host: evil.example:12304",
];

/// Every RPC route, with the arguments that would make each one act, and `/status`:
/// (method and URL path, extra curl arguments).
fn every_control_route(b_addr: &str, cid: &str, upload: &Path) -> Vec<(String, Vec<String>)> {
    let post = |path: String| (path, vec!["-X".to_owned(), "POST".to_owned()]);
    let mut routes = vec![
        post("/api/v0/id".to_owned()),
        post("/api/v0/swarm/peers".to_owned()),
        post(format!("/api/v0/swarm/connect?arg={b_addr}")),
        post(format!("/api/v0/cat?arg={cid}")),
        post(format!("/api/v0/block/get?arg={cid}")),
        post("/api/v0/peerix/status".to_owned()),
        post("/api/v0/peerix/announce?arg=pause".to_owned()),
        post(format!("/api/v0/routing/findprovs?arg={cid}")),
        post(format!("/api/v0/routing/provide?arg={cid}")),
        (
            "/api/v0/add".to_owned(),
            vec!["-F".to_owned(), format!("file=@{}", upload.display())],
        ),
    ];
    routes.push(("/status".to_owned(), Vec::new()));
    routes
}

fn request(node: &Peerix, path: &str, args: &[String], header: &[&str]) -> common::Curl {
    let mut all: Vec<&str> = args.iter().map(String::as_str).collect();
    for h in header {
        all.extend(["-H", h]);
    }
    curl(&format!("{}{path}", node.url()), &all)
}

#[test]
fn cross_origin_and_rebinding_requests_are_refused_and_change_nothing() {
    let store = ChrootStore::empty();
    let dir = tempfile::TempDir::new().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    let a = Peerix::serve_in(store.root(), &state, &["--allowed-host", "peerix.test"]);
    let b = Peerix::serve(store.root(), &[]);
    let b_addr = b.p2p_addr();
    let upload = dir.path().join("upload");
    std::fs::write(&upload, b"a file a web page would like to publish").unwrap();
    let cid = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku";
    let routes = every_control_route(&b_addr, cid, &upload);

    for header in HOSTILE {
        for (path, args) in &routes {
            let answer = request(&a, path, args, &[header]);
            let body = String::from_utf8_lossy(&answer.body);
            assert_eq!(answer.status, 403, "{header} {path}: {body}");
            assert!(body.starts_with("refused: "), "{header} {path}: {body}");
        }
    }
    let refused = request(&a, "/status", &[], &["Host: evil.example"]);
    let body = String::from_utf8_lossy(&refused.body).into_owned();
    assert!(body.contains("Host header"), "says which rule: {body}");

    assert!(!announcements_paused(&a), "announcements still run");
    assert_eq!(peer_count(&b), 0, "no peer dialled B");
    assert_eq!(peer_count(&a), 0, "A dialled no one");
    assert!(added_files(&state).is_empty(), "{:?}", added_files(&state));
    // State changes only through POST: a GET, which a page can make with an image, does nothing.
    let get = curl(
        &format!("{}/api/v0/peerix/announce?arg=pause", a.url()),
        &[],
    );
    assert_eq!(get.status, 405);
    assert!(!announcements_paused(&a));

    // The same requests from the node's own origin, and under an allowed name, do act.
    let port = a.port;
    let own = [
        format!("Host: 127.0.0.1:{port}"),
        format!("Origin: http://127.0.0.1:{port}"),
        "Sec-Fetch-Site: same-origin".to_owned(),
    ];
    let own: Vec<&str> = own.iter().map(String::as_str).collect();
    let post = ["-X".to_owned(), "POST".to_owned()];
    let paused = request(&a, "/api/v0/peerix/announce?arg=pause", &post, &own);
    assert_eq!(
        paused.status,
        200,
        "{}",
        String::from_utf8_lossy(&paused.body)
    );
    assert!(announcements_paused(&a));
    let referer = format!("Referer: http://127.0.0.1:{port}/dashboard");
    let resumed = request(&a, "/api/v0/peerix/announce?arg=resume", &post, &[&referer]);
    assert_eq!(resumed.status, 200);
    assert!(!announcements_paused(&a));
    let connect = format!("/api/v0/swarm/connect?arg={b_addr}");
    let connected = request(&a, &connect, &post, &own);
    assert_eq!(
        connected.status,
        200,
        "{}",
        String::from_utf8_lossy(&connected.body)
    );
    // The dialler knows the connection a moment before the one it dialled does.
    assert!(eventually(|| peer_count(&b) == 1), "B was dialled");
    let add = ["-F".to_owned(), format!("file=@{}", upload.display())];
    assert_eq!(request(&a, "/api/v0/add", &add, &own).status, 200);
    assert_eq!(added_files(&state).len(), 1, "the upload is stored");
    assert_eq!(request(&a, "/status", &[], &own).status, 200);
    for host in ["peerix.test", "[::1]", "localhost"] {
        let allowed = [
            format!("Host: {host}:{port}"),
            format!("Origin: http://{host}:{port}"),
        ];
        let allowed: Vec<&str> = allowed.iter().map(String::as_str).collect();
        for path in ["/api/v0/id", "/status"] {
            let method = if path == "/status" { "GET" } else { "POST" };
            let args = ["-X".to_owned(), method.to_owned()];
            let answer = request(&a, path, &args, &allowed);
            assert_eq!(answer.status, 200, "{host} {path}");
        }
    }

    // Nix, monitoring and other nodes reach these; web pages do not. The front listens on
    // loopback here, so a rebinding page's Host is refused too; a refused lookup asks nobody.
    let missing = format!("/{}.narinfo", "0".repeat(32));
    for path in [
        "/nix-cache-info",
        "/health",
        "/metrics",
        "/bootstrap",
        &missing,
    ] {
        for header in HOSTILE {
            let answer = request(&a, path, &[], &[header]);
            assert_eq!(answer.status, 403, "{path} with {header}");
        }
        let expected = if path == missing { 404 } else { 200 };
        assert_eq!(request(&a, path, &[], &[]).status, expected, "{path}");
    }
    let metrics = String::from_utf8(request(&a, "/metrics", &[], &[]).body).unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l == "peerix_narinfo_misses_total 1"),
        "only the plain lookup was made: {metrics}"
    );
}

/// A multipart body as curl sends it for `-F file=@NAME`, with `content` as the file.
fn multipart(content: &[u8]) -> (String, Vec<u8>) {
    let boundary = "------------------------peerixtestboundary";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(content);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// Sends the head of an `add` request for `body`, then `sent` of its bytes, and returns the
/// connection, open.
fn start_upload(node: &Peerix, content_type: &str, body: &[u8], sent: usize) -> TcpStream {
    let mut stream = TcpStream::connect(("127.0.0.1", node.port)).unwrap();
    write!(
        stream,
        "POST /api/v0/add HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    stream.write_all(&body[..sent]).unwrap();
    stream.flush().unwrap();
    stream
}

/// Waits (bounded) until `done` holds; false if it never did.
fn eventually(mut done: impl FnMut() -> bool) -> bool {
    for _ in 0..100 {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[test]
fn uploads_beyond_the_limit_or_cut_short_leave_no_file() {
    let store = ChrootStore::empty();
    let dir = tempfile::TempDir::new().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    let a = Peerix::serve_in(store.root(), &state, &["--max-add-size", "1MiB"]);
    let add_url = format!("{}/api/v0/add", a.url());
    let big = dir.path().join("big");
    let bytes: Vec<u8> = (0..2u32 << 20).map(|i| (i % 251) as u8).collect();
    std::fs::write(&big, &bytes).unwrap();

    // Over the limit, with the length declared (curl's -F) and without (chunked).
    let file = format!("file=@{}", big.display());
    let declared = curl(&add_url, &["-F", &file]);
    assert_eq!(
        declared.status,
        413,
        "{}",
        String::from_utf8_lossy(&declared.body)
    );
    // (Without `Expect: 100-continue`, whose interim answer the harness would take for the status.)
    let chunked = curl(
        &add_url,
        &[
            "-F",
            &file,
            "-H",
            "Transfer-Encoding: chunked",
            "-H",
            "Expect:",
        ],
    );
    assert_eq!(
        chunked.status,
        413,
        "{}",
        String::from_utf8_lossy(&chunked.body)
    );
    let error: Value = serde_json::from_slice(&chunked.body).unwrap();
    assert_eq!(error["Type"], "error", "kubo's error shape: {error}");
    assert!(added_files(&state).is_empty(), "{:?}", added_files(&state));

    // Under it, the upload is stored.
    let small = dir.path().join("small");
    std::fs::write(&small, &bytes[..512 << 10]).unwrap();
    let stored = curl(&add_url, &["-F", &format!("file=@{}", small.display())]);
    assert_eq!(stored.status, 200);
    let kept = added_files(&state);
    assert_eq!(kept.len(), 1);

    // Cut short: the client goes away mid-upload. The partial file exists while it uploads...
    let (content_type, body) = multipart(&bytes[..900_000]);
    let stream = start_upload(&a, &content_type, &body, 600_000);
    assert!(
        eventually(|| added_files(&state).len() == 2),
        "the upload is being written"
    );
    // ... and is gone once the connection is.
    drop(stream);
    assert!(
        eventually(|| added_files(&state) == kept),
        "{:?}",
        added_files(&state)
    );

    // A form that ends without its closing boundary: refused, nothing kept.
    let (content_type, body) = multipart(&bytes[..100_000]);
    let truncated = &body[..body.len() - 20];
    let mut stream = TcpStream::connect(("127.0.0.1", a.port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    write!(
        stream,
        "POST /api/v0/add HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        truncated.len()
    )
    .unwrap();
    stream.write_all(truncated).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(
        eventually(|| added_files(&state) == kept),
        "{:?}",
        added_files(&state)
    );
}

#[test]
fn a_client_that_never_finishes_its_headers_is_cut_off() {
    let fixture = Fixture::get();
    let store = ChrootStore::with_paths(&[&fixture.app]);
    let a = Peerix::serve(store.root(), &["--header-timeout", "2"]);
    let narinfo = format!("/{}.narinfo", hash_part(&fixture.app));

    let started = Instant::now();
    let mut slow: Vec<TcpStream> = (0..20)
        .map(|_| {
            let mut stream = TcpStream::connect(("127.0.0.1", a.port)).unwrap();
            stream.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(30)))
                .unwrap();
            stream
        })
        .collect();
    // Meanwhile other connections are served.
    for _ in 0..20 {
        assert_eq!(a.get(&narinfo).0, 200);
    }
    for stream in &mut slow {
        // The server closes the connection: end of stream (or a reset), not the read timeout.
        let read = stream.read_to_end(&mut Vec::new());
        let timed_out = read.as_ref().is_err_and(|e| {
            matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            )
        });
        assert!(!timed_out, "the connection stayed open: {read:?}");
    }
    let elapsed = started.elapsed();
    eprintln!("slow connections closed after {elapsed:?} (header timeout 2 s)");
    assert!(elapsed >= Duration::from_millis(1500), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(15), "{elapsed:?}");
    assert_eq!(a.get(&narinfo).0, 200, "the server still answers");
}

#[test]
fn connections_beyond_the_cap_wait_for_a_free_slot() {
    let store = ChrootStore::empty();
    let a = Peerix::serve(
        store.root(),
        &["--max-connections", "2", "--header-timeout", "3"],
    );
    // Two clients that send nothing hold both slots until the header timeout closes them.
    let idle: Vec<TcpStream> = (0..2)
        .map(|_| TcpStream::connect(("127.0.0.1", a.port)).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    // The kernel completes the handshake; the request waits in the backlog for a slot.
    assert_eq!(a.get("/nix-cache-info").0, 200);
    let waited = started.elapsed();
    eprintln!("the third connection was served after {waited:?} (header timeout 3 s)");
    assert!(waited >= Duration::from_millis(1500), "{waited:?}");
    assert!(waited < Duration::from_secs(15), "{waited:?}");
    drop(idle);
}
