//! Pull-through of the upstream cache (`--pull-through`): three near nodes `nix copy` the same
//! closure that no peer holds, and upstream serves each file once; a stopped or silent upstream
//! makes narinfos 404 at once.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use common::static_cache::StaticCache;
use common::{hash_part, ChrootStore, Fixture, NixKey, Peerix};
use tempfile::TempDir;

/// The narinfo answer the issue allows a failing upstream to cost.
const AT_ONCE: Duration = Duration::from_millis(100);

/// The tests take turns: a bound on time holds for a machine not busy with the other one.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn turn() -> MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A binary cache of `paths` in a directory, signed by `key`, files compressed with `compression`.
fn upstream_dir(paths: &[&str], key: &NixKey, compression: &str) -> TempDir {
    let dir = TempDir::new().unwrap();
    let url = format!(
        "file://{}?compression={compression}&secret-key={}",
        dir.path().display(),
        key.secret.display()
    );
    common::run(
        common::nix("nix", dir.path())
            .args(["copy", "--to", &url])
            .args(paths),
    );
    dir
}

/// The files under `nar/` of a binary cache directory, as URL paths.
fn nar_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir.join("nar"))
        .unwrap()
        .map(|entry| format!("/nar/{}", entry.unwrap().file_name().to_string_lossy()))
        .collect()
}

fn pull_through_node(store: &ChrootStore, upstream: &str, extra: &[&str]) -> Peerix {
    let flags = [&["--pull-through", "--upstream-cache", upstream][..], extra].concat();
    Peerix::serve(store.root(), &flags)
}

#[test]
fn near_nodes_pull_each_file_from_upstream_once() {
    let _turn = turn();
    let f = Fixture::get();
    let key = NixKey::generate("upstream-test-1");
    // app refers to lib. (The 100 MiB fixture would spend a minute in xz alone.)
    let closure = [f.app.as_str(), f.lib.as_str()];
    let reference = ChrootStore::with_paths(&closure);
    // Near as LAN neighbours are (loopback is a local network), then as members of an
    // explicitly set network id.
    for (compression, network) in [("xz", None), ("zstd", Some("pull-through-test"))] {
        let dir = upstream_dir(&closure, &key, compression);
        let files = nar_files(dir.path());
        assert_eq!(files.len(), closure.len(), "{files:?}");
        let upstream = StaticCache::serve(dir.path());
        let stores: Vec<ChrootStore> = (0..3).map(|_| ChrootStore::empty()).collect();
        let network: Vec<&str> = network.map_or(vec![], |id| vec!["--network-id", id]);
        let a = pull_through_node(&stores[0], &upstream.url(), &network);
        let a_addr = a.p2p_addr();
        let with_a = [&network[..], &["--bootstrap-peers", &a_addr]].concat();
        let b = pull_through_node(&stores[1], &upstream.url(), &with_a);
        let b_addr = b.p2p_addr();
        let with_both = [&with_a[..], &["--bootstrap-peers", &b_addr]].concat();
        let c = pull_through_node(&stores[2], &upstream.url(), &with_both);
        let nodes = [&a, &b, &c];
        common::eventually(Duration::from_secs(30), "the nodes never met", || {
            nodes.iter().all(|n| {
                let status = n.status();
                let members = status["peers"]["held_by_peer"].as_object();
                members.is_some_and(|members| members.len() == 2)
                    && status["pull_through"]["upstream_answers"] == true
            })
        });
        // A narinfo upstream is slow to give is a 404 (Nix would ask upstream itself): asked
        // once ahead, on this busy machine, each is answered from memory when Nix asks.
        for node in nodes {
            for path in closure {
                let narinfo = format!("/{}.narinfo", hash_part(path));
                common::eventually(Duration::from_secs(10), "no narinfo from upstream", || {
                    node.get(&narinfo).0 == 200
                });
            }
        }
        std::thread::scope(|scope| {
            let copies: Vec<_> = nodes
                .iter()
                .zip(&stores)
                .map(|(node, store)| {
                    let (url, public) = (node.url(), key.public.clone());
                    scope.spawn(move || common::nix_copy_from(&url, store, &public, &closure))
                })
                .collect();
            for copy in copies {
                common::assert_copied(&copy.join().unwrap());
            }
        });
        for store in &stores {
            store.assert_same_nars(&reference, &closure);
        }
        for file in &files {
            assert_eq!(
                upstream.requests_for(file),
                1,
                "{compression}: {file} left upstream more than once: {:?}",
                upstream.requests()
            );
        }
        let pulled: u64 = nodes
            .iter()
            .map(|n| {
                n.status()["served"]["nar_bytes"]["pull_through"]
                    .as_u64()
                    .unwrap()
            })
            .sum();
        let sizes: u64 = files
            .iter()
            .map(|file| {
                std::fs::metadata(dir.path().join(&file[1..]))
                    .unwrap()
                    .len()
            })
            .sum();
        assert_eq!(pulled, 3 * sizes, "each node served every file whole");
        // Nix may ask for a narinfo more than once; every answer came from upstream.
        let lookups = &a.status()["lookups"]["upstream"];
        assert!(
            lookups["hit"].as_u64() >= Some(closure.len() as u64),
            "{lookups}"
        );
    }
}

/// A pull-through node whose upstream answers, as `/status` tells and a narinfo shows.
fn answering_node(store: &ChrootStore, upstream: &StaticCache, narinfo: &str) -> Peerix {
    let node = pull_through_node(store, &upstream.url(), &[]);
    common::eventually(Duration::from_secs(10), "upstream never answered", || {
        node.status()["pull_through"]["upstream_answers"] == true
    });
    assert_eq!(node.get(narinfo).0, 200);
    node
}

/// `GET path` on a fresh connection: the status and how long the answer took.
fn timed_get(node: &Peerix, path: &str) -> (u16, Duration) {
    let started = Instant::now();
    let mut stream = TcpStream::connect(("127.0.0.1", node.port)).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, started.elapsed())
}

/// A store hash no cache has, a new one each time (answers are remembered per path).
fn unknown_hash(n: u32) -> String {
    const ALPHABET: &[u8] = b"0123456789abcdfghijklmnpqrsvwxyz";
    (0..32)
        .map(|i| ALPHABET[((n as usize) * 7 + i * 13 + (n as usize >> (i % 5))) % 32] as char)
        .collect()
}

fn assert_404_at_once(node: &Peerix, what: &str, first: u32) {
    assert_404_within(node, what, first, AT_ONCE);
}

fn assert_404_within(node: &Peerix, what: &str, first: u32, limit: Duration) {
    for n in first..first + 5 {
        let (status, took) = timed_get(node, &format!("/{}.narinfo", unknown_hash(n)));
        eprintln!("{what}: narinfo {status} in {took:?}");
        assert_eq!(status, 404, "{what}");
        assert!(took < limit, "{what}: a narinfo took {took:?}");
    }
}

#[test]
fn a_stopped_or_silent_upstream_means_404_at_once() {
    let _turn = turn();
    let f = Fixture::get();
    let key = NixKey::generate("upstream-test-1");
    let dir = upstream_dir(&[f.lib.as_str()], &key, "xz");
    let lib_narinfo = format!("/{}.narinfo", hash_part(&f.lib));

    // Silent from the start: never asked.
    let silent = StaticCache::silent_from_start();
    let store = ChrootStore::empty();
    let node = pull_through_node(&store, &silent.url(), &[]);
    assert_404_at_once(&node, "silent from the start", 0);

    // Stopped: refused at once.
    let upstream = StaticCache::serve(dir.path());
    let node = answering_node(&store, &upstream, &lib_narinfo);
    upstream.stop();
    assert_404_at_once(&node, "stopped", 100);

    // Gone silent while it answered: the first narinfos wait a few of its answer times (the
    // wait /status reports), then upstream is not asked until a probe answers.
    let upstream = StaticCache::serve(dir.path());
    let node = answering_node(&store, &upstream, &lib_narinfo);
    let wait = node.status()["pull_through"]["narinfo_wait_ms"]
        .as_f64()
        .unwrap();
    upstream.go_silent();
    let slack = Duration::from_millis(50);
    let limit = AT_ONCE.max(Duration::from_secs_f64(wait / 1000.0) + slack);
    assert_404_within(&node, "went silent, first", 200, limit);
    assert_404_at_once(&node, "went silent, then", 300);
}
