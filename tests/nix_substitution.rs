//! Nix's own substitution, not `nix copy`: `nix-store --realise` with Peerix first and a stand-in
//! upstream cache second, as a user configures `substituters`. When Peerix's only holder is
//! silent, or dies in the middle of a NAR, the paths still arrive from the second substituter;
//! the test prints how much time Peerix added against the upstream alone, measured in this run.

mod common;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{eventually, nix, ChrootStore, Fixture, NixKey, Peerix};
use serde_json::Value;
use tempfile::TempDir;

const LOOPBACK: &str = "/ip4/127.0.0.1/tcp/0";

/// A file:// binary cache with `paths` and their signatures: the stand-in for cache.nixos.org.
fn upstream_cache(from: &ChrootStore, paths: &[&str]) -> TempDir {
    let dir = TempDir::new().unwrap();
    let url = format!("file://{}", dir.path().display());
    let out = nix("nix", from.root())
        .args(["copy", "--from", &from.url(), "--to", &url])
        .args(paths)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir
}

/// `nix-store --realise` of `paths` into `client` with `substituters`, trusting `key` only.
fn realise(
    client: &ChrootStore,
    substituters: &str,
    key: &str,
    paths: &[&str],
) -> (Output, Duration) {
    let started = Instant::now();
    let out = nix("nix-store", client.root())
        .args(["--store", &client.url(), "--realise"])
        .args(paths)
        .args(["--option", "substituters", substituters])
        .args(["--option", "trusted-public-keys", key])
        .args(["--option", "require-sigs", "true"])
        // One attempt per substituter: Nix moves on to the next at the first failure.
        .args(["--option", "connect-timeout", "5", "-v"])
        .output()
        .unwrap();
    (out, started.elapsed())
}

fn assert_realised(out: &Output, client: &ChrootStore, paths: &[&str], what: &str) {
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for path in paths {
        assert!(client.physical(path).exists(), "{what}: {path} missing");
    }
}

/// The number of paths `node`'s peers announced (its `/status`).
fn remote_paths(node: &Peerix) -> u64 {
    let (_, body) = node.get("/status");
    let status: Value = serde_json::from_slice(&body).unwrap_or_default();
    status["peers"]["paths"].as_u64().unwrap_or(0)
}

fn signal(node: &Peerix, name: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{name}"), &node.pid().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{name}");
}

/// A holder A of the fixture, and B, its only peer, which B's Nix asks first.
fn holder_and_front(upstream: &NixKey, store: &ChrootStore, extra: &[&str]) -> (Peerix, Peerix) {
    let key = upstream.public.as_str();
    let mut args = vec!["--listen-addrs", LOOPBACK, "--trusted-public-key", key];
    args.extend_from_slice(extra);
    let a = Peerix::serve(store.root(), &args);
    let a_addr = a.p2p_addr();
    let b_store = ChrootStore::empty();
    let b = Peerix::serve(
        b_store.root(),
        &[
            "--listen-addrs",
            LOOPBACK,
            "--trusted-public-key",
            key,
            "--bootstrap-peers",
            &a_addr,
        ],
    );
    eventually(
        Duration::from_secs(20),
        "B never learnt what A holds",
        || remote_paths(&b) >= 3,
    );
    (a, b)
}

#[test]
fn nix_substitutes_past_a_silent_or_dying_holder() {
    let f = Fixture::get();
    let upstream = NixKey::generate("upstream-subst-1");
    let paths = [f.app.as_str(), f.lib.as_str(), f.big.as_str()];
    let a_store = ChrootStore::signed(&upstream, &paths);
    let cache = upstream_cache(&a_store, &paths);
    // At cache.nixos.org's priority; a file cache otherwise has none and goes first.
    let cache_url = format!("file://{}?priority=40", cache.path().display());
    let small = [f.app.as_str()];

    // Baseline: the upstream alone.
    let client = ChrootStore::empty();
    let (out, upstream_only) = realise(&client, &cache_url, &upstream.public, &small);
    assert_realised(&out, &client, &small, "upstream alone");

    // Peerix's only holder is frozen (a laptop asleep with its connections open).
    let (a, b) = holder_and_front(&upstream, &a_store, &[]);
    signal(&a, "STOP");
    let substituters = format!("{} {cache_url}", b.url());
    let client = ChrootStore::empty();
    let (out, with_silent) = realise(&client, &substituters, &upstream.public, &small);
    signal(&a, "CONT");
    assert_realised(&out, &client, &small, "holder silent");
    eprintln!(
        "app closure (2 paths): upstream alone {:.0} ms, Peerix with a silent holder first {:.0} ms: {:+.0} ms",
        upstream_only.as_secs_f64() * 1e3,
        with_silent.as_secs_f64() * 1e3,
        (with_silent.as_secs_f64() - upstream_only.as_secs_f64()) * 1e3
    );
    drop((a, b));

    // The holder dies in the middle of the 100 MiB NAR: it is capped at 20 MB/s, so the NAR
    // takes five seconds, and it is killed after one.
    let big = [f.big.as_str()];
    let client = ChrootStore::empty();
    let (out, big_upstream_only) = realise(&client, &cache_url, &upstream.public, &big);
    assert_realised(&out, &client, &big, "upstream alone, big path");
    let (a, b) = holder_and_front(&upstream, &a_store, &["--bandwidth-limit", "20M"]);
    let substituters = format!("{} {cache_url}", b.url());
    let client = ChrootStore::empty();
    let killer = std::thread::spawn({
        let pid = a.pid();
        move || {
            std::thread::sleep(Duration::from_secs(1));
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    });
    let (out, with_dying) = realise(&client, &substituters, &upstream.public, &big);
    killer.join().unwrap();
    assert_realised(&out, &client, &big, "holder killed mid-NAR");
    let log = String::from_utf8_lossy(&out.stderr);
    eprintln!(
        "100 MiB path: upstream alone {:.0} ms, Peerix whose holder died after 1 s first {:.0} ms: {:+.0} ms\n{log}",
        big_upstream_only.as_secs_f64() * 1e3,
        with_dying.as_secs_f64() * 1e3,
        (with_dying.as_secs_f64() - big_upstream_only.as_secs_f64()) * 1e3
    );
    drop(b);
}
