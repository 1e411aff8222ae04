//! The dashboard in a real browser (Debian's Chromium, driven by playwright-core from npm through
//! `tests/interop/dashboard_check.mjs`): node A, which scans a large store and has fetched a path
//! from its peer B for Nix, is watched and driven as an operator would. The figures move while
//! the scan runs; a refused path is listed with its reason; pausing stops the announce count and resuming restarts it; the scan pauses and
//! resumes; the stop button cuts B off (B sees A go) and start lets it back; a phone's 375 px
//! need no sideways scrolling; no request leaves the node and the console stays clean. Also: the
//! page's files and their policy, and the reload after an upgrade. Screenshots are kept under
//! `target/tmp/dashboard/`.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::interop::run_node_script;
use common::synthetic_store::SyntheticStore;
use common::{curl, eventually, hash_part, nix_copy_ok, ChrootStore, Fixture, NixKey, Peerix};
use serde_json::Value;
use tempfile::TempDir;

const SCRIPT_LIMIT: Duration = Duration::from_secs(240);

fn screenshots() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn run_check(script: &str, args: &[&str]) -> Value {
    let run = run_node_script(script, args, SCRIPT_LIMIT);
    let seen: Value = serde_json::from_str(run.stdout.trim())
        .unwrap_or_else(|e| panic!("{script}: {e}: {}\n{}", run.stdout, run.stderr));
    assert!(
        run.status.success(),
        "{script} failed: {}\nsaw: {seen:#}\n{}",
        seen["failed"],
        run.stderr
    );
    eprintln!("{script} saw: {seen:#}");
    seen
}

#[test]
fn an_operator_watches_and_drives_the_dashboard_in_chromium() {
    let f = Fixture::get();
    let key = NixKey::generate("dashboard-test-1");
    let b_store = ChrootStore::signed(&key, &[&f.lib]);
    // And a path A must refuse: only a key A does not trust signed it.
    let scratch = TempDir::new().unwrap();
    let stranger = NixKey::generate("stranger-1");
    let untrusted = b_store.add_file(scratch.path(), "dashboard-stranger", b"not for A\n");
    b_store.sign(&stranger.secret, &[&untrusted]);
    let b = Peerix::serve(b_store.root(), &[]);
    let b_addr = b.p2p_addr();
    let store = SyntheticStore::generate(20_000).unwrap();
    // Paced at 20 a second, announcements queue up behind the scan.
    let a = Peerix::serve(
        &store.root,
        &[
            "--announce-rate",
            "20",
            "--trusted-public-key",
            &key.public,
            "--bootstrap-peers",
            &b_addr,
        ],
    );
    // Nix gets a path through A from B: a transfer, bytes from a peer, a hit.
    a.wait_for_narinfo(&f.lib, Duration::from_secs(30));
    nix_copy_ok(&a.url(), &ChrootStore::empty(), &key.public, &[&f.lib]);
    let refused = format!("/{}.narinfo", hash_part(&untrusted));
    assert_eq!(a.get(&refused).0, 404, "A served a path it must refuse");

    let shots = screenshots();
    let seen = run_check(
        "dashboard_check.mjs",
        &[&a.url(), &b.url(), &b_addr, shots.to_str().unwrap()],
    );
    assert!(seen["requests"].as_u64() > Some(10), "{seen}");
    let transfers = seen["transfers"].to_string();
    assert!(
        transfers.contains("peers"),
        "no transfer from B shown: {transfers}"
    );
    assert!(
        seen["peer_rows"].to_string().contains("2 paths"),
        "B's holding not shown: {seen}"
    );
    assert_ne!(seen["not_from_upstream"], "0 B", "{seen}");
    // Nix's narinfo hits and where they were found, from the counters /metrics renders.
    let hits: u64 = seen["hits"]
        .as_str()
        .unwrap()
        .replace(',', "")
        .parse()
        .unwrap();
    assert!(hits >= 1, "{seen}");
    assert!(
        seen["lookups"].to_string().contains("found"),
        "no lookups shown: {seen}"
    );
    let refusals = seen["refusals"].to_string();
    assert!(
        refusals.contains("untrusted narinfo")
            && refusals.contains(hash_part(&untrusted))
            && refusals.contains("signed by stranger-1 only"),
        "the refusal is not shown with its reason: {refusals}"
    );
    for shot in ["dashboard-scan.png", "dashboard-phone.png"] {
        let size = std::fs::metadata(shots.join(shot)).unwrap().len();
        assert!(size > 10_000, "{shot} is {size} bytes");
    }
    // The path Nix got is listed under its NAR hash.
    let narinfo = String::from_utf8(a.get(&format!("/{}.narinfo", hash_part(&f.lib))).1).unwrap();
    let nar_hash = narinfo
        .lines()
        .find_map(|l| l.strip_prefix("NarHash: sha256:"))
        .unwrap();
    assert!(transfers.contains(&nar_hash[..12]), "{transfers}");
}

#[test]
fn the_page_is_served_whole_by_the_node_under_a_strict_policy() {
    let node = Peerix::serve(ChrootStore::empty().root(), &[]);
    let page = curl(&format!("{}/dashboard", node.url()), &[]);
    assert_eq!(page.status, 200);
    let html = String::from_utf8(page.body.clone()).unwrap();
    let policy = page.header("content-security-policy").unwrap().to_owned();
    for rule in [
        "default-src 'none'",
        "script-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(policy.contains(rule), "{policy}");
    }
    assert_eq!(page.header("x-frame-options"), Some("DENY"));
    // Every file the page names is the node's own, and is served.
    for asset in [
        "/dashboard/dashboard.js",
        "/dashboard/dashboard.css",
        "/dashboard/icon.svg",
    ] {
        assert!(html.contains(asset), "{asset}");
        assert_eq!(curl(&format!("{}{asset}", node.url()), &[]).status, 200);
    }
    assert!(!html.contains("http://") && !html.contains("https://"));
    assert!(!html.contains("<script>"), "inline script");
    let root = curl(&format!("{}/", node.url()), &[]);
    assert_eq!(root.status, 307);
    assert_eq!(root.header("location"), Some("/dashboard"));
    // The data behind it obeys the browser rules.
    let throughput = curl(&format!("{}/status/throughput", node.url()), &[]);
    assert_eq!(throughput.status, 200);
    let from_a_page = curl(
        &format!("{}/status/throughput", node.url()),
        &["-H", "Origin: http://evil.example"],
    );
    assert_eq!(from_a_page.status, 403);
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn an_open_dashboard_reloads_itself_when_peerix_is_upgraded() {
    let store = ChrootStore::empty();
    let state = TempDir::new().unwrap();
    let scratch = TempDir::new().unwrap();
    // The upgrade: another executable (here a copy, as a new store path would be).
    let upgraded = scratch.path().join("peerix-upgraded");
    std::fs::copy(env!("CARGO_BIN_EXE_peerix"), &upgraded).unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    // The node is (re)started by this script, as a service manager would: the old process
    // is stopped, and the given executable serves on the same port and state.
    let pid_file = scratch.path().join("pid");
    let restart = scratch.path().join("restart");
    std::fs::write(
        &restart,
        format!(
            "#!/bin/sh\nold=$(cat {pid} 2>/dev/null)\nif [ -n \"$old\" ]; then kill $old\n\
             for _ in $(seq 100); do kill -0 $old 2>/dev/null || break; sleep 0.1; done; fi\n\
             \"$1\" serve --offline --port {port} --store-root {store} --state-dir {state} \
             </dev/null >/dev/null 2>&1 &\necho $! > {pid}\n",
            pid = pid_file.display(),
            store = store.root().display(),
            state = state.path().display(),
        ),
    )
    .unwrap();
    std::fs::set_permissions(&restart, std::fs::Permissions::from_mode(0o755)).unwrap();
    let run_restart = |binary: &str| {
        assert!(Command::new(&restart)
            .arg(binary)
            .status()
            .unwrap()
            .success());
    };
    run_restart(env!("CARGO_BIN_EXE_peerix"));
    eventually(Duration::from_secs(20), "the node never answered", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let seen = run_check(
        "dashboard_reload.mjs",
        &[
            &url,
            restart.to_str().unwrap(),
            env!("CARGO_BIN_EXE_peerix"),
            upgraded.to_str().unwrap(),
        ],
    );
    let _ = Command::new("sh")
        .arg("-c")
        .arg(format!("kill $(cat {})", pid_file.display()))
        .status();
    assert_eq!(seen["loads_after_restart"], 1, "{seen}");
    assert_eq!(seen["loads_after_upgrade"], 2, "{seen}");
    assert_ne!(seen["build_before"], seen["build_after"], "{seen}");
}
