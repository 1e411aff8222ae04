//! Pull-through of the upstream cache (`--pull-through`): three near nodes `nix copy` the same
//! closure that no peer holds, and upstream serves each file once; a stopped or silent upstream
//! makes narinfos 404 at once.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use common::bare_peer::BarePeer;
use common::static_cache::StaticCache;
use common::{hash_part, ChrootStore, Fixture, NixKey, Peerix};
use futures_util::{AsyncReadExt, AsyncWriteExt, StreamExt};
use sha2::{Digest, Sha256};
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
        // `why` names pull-through among the places asked for what no one has.
        let (_, why) = a.get(&format!("/why/{}", unknown_hash(7)));
        let why = String::from_utf8_lossy(&why);
        assert!(why.contains("through pull-through (answering"), "{why}");
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
    let (status, _) = common::front_latency::get(node.port, path);
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

/// How the pull protocol's puller is chosen: the near node whose id, hashed with the file's
/// hash, scores highest.
fn puller_score(node: &peerix_node::PeerId, file_hash: &[u8; 32]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(node.to_bytes());
    hasher.update(file_hash);
    hasher.finalize().into()
}

/// The FileHash a binary cache directory's narinfo names for `path`.
fn file_hash(dir: &Path, path: &str) -> [u8; 32] {
    let narinfo =
        std::fs::read_to_string(dir.join(format!("{}.narinfo", hash_part(path)))).unwrap();
    let line = narinfo
        .lines()
        .find_map(|l| l.strip_prefix("FileHash: "))
        .unwrap();
    peerix_http::NarHash::parse(line).unwrap().0
}

#[test]
fn a_near_node_sending_a_wrong_file_is_never_asked_again() {
    let _turn = turn();
    let f = Fixture::get();
    let key = NixKey::generate("upstream-test-1");
    let dir = upstream_dir(&[f.lib.as_str()], &key, "xz");
    let file = file_hash(dir.path(), &f.lib);
    let upstream = StaticCache::serve(dir.path());
    let store = ChrootStore::empty();
    let node = pull_through_node(&store, &upstream.url(), &[]);
    let addr: libp2p::Multiaddr = node.p2p_addr().parse().unwrap();
    let Some(libp2p::multiaddr::Protocol::P2p(node_id)) = addr.iter().last() else {
        panic!("{addr}");
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    // A peer the node would pick to pull the file: an identity that outscores it.
    let node_score = puller_score(&node_id, &file);
    let keypair = (0..1_000_000)
        .map(|_| libp2p::identity::Keypair::generate_ed25519())
        .find(|key| puller_score(&key.public().to_peer_id(), &file) > node_score)
        .expect("no identity outscored the node");
    let mut liar = runtime.block_on(BarePeer::connect_as(&addr, keypair));
    // Not a member yet: a stranger cannot have the node pull for it.
    let refused = runtime.block_on(async {
        let mut pull = liar.open("pull/1.0.0").await;
        let mut request = vec![0, 0, 0, 32];
        request.extend_from_slice(hash_part(&f.lib).as_bytes());
        pull.write_all(&request).await.unwrap();
        let mut answer = [0u8; 5];
        pull.read_exact(&mut answer).await.unwrap();
        answer
    });
    assert_eq!(
        refused,
        [0, 0, 0, 1, 0],
        "a stranger's pull request is not found"
    );
    assert!(
        upstream
            .requests()
            .keys()
            .all(|path| !path.starts_with("/nar/")),
        "{:?}",
        upstream.requests()
    );
    // A member of the network: it opened an index stream (announcing nothing) and keeps it.
    let _index = runtime.block_on(async {
        let mut index = liar.open("index/1.0.0").await;
        index.write_all(&[0, 0, 0, 1, 1]).await.unwrap();
        index.flush().await.unwrap();
        index
    });
    let liar_id = liar.id.to_string();
    common::eventually(
        Duration::from_secs(10),
        "the liar never became a member",
        || {
            let status = node.status();
            status["peers"]["held_by_peer"].get(&liar_id).is_some()
                && status["pull_through"]["upstream_answers"] == true
        },
    );
    // It answers every pull request with the right length of wrong bytes.
    let size = std::fs::metadata(dir.path().join(&nar_files(dir.path())[0][1..]))
        .unwrap()
        .len();
    let asked = Arc::new(AtomicU64::new(0));
    let mut requests = liar.accept("pull/1.0.0");
    let counting = asked.clone();
    runtime.spawn(async move {
        while let Some((_, mut stream)) = requests.next().await {
            counting.fetch_add(1, Ordering::SeqCst);
            let mut request = vec![0u8; 4 + 32];
            stream.read_exact(&mut request).await.unwrap();
            let mut head = vec![0, 0, 0, 9, 1];
            head.extend_from_slice(&size.to_be_bytes());
            stream.write_all(&head).await.unwrap();
            stream.write_all(&vec![0x5a; size as usize]).await.unwrap();
            let _ = stream.close().await;
        }
    });

    common::nix_copy_ok(&node.url(), &store, &key.public, &[f.lib.as_str()]);
    ChrootStore::with_paths(&[f.lib.as_str()]).assert_same_nars(&store, &[f.lib.as_str()]);
    assert_eq!(asked.load(Ordering::SeqCst), 1, "the liar was asked once");
    assert!(
        node.log()
            .iter()
            .any(|l| l.contains("sent a wrong file: never asked again")),
        "the liar was not named"
    );
    // Another copy is served from the file pulled, and the liar is not asked again.
    let again = ChrootStore::empty();
    common::nix_copy_ok(&node.url(), &again, &key.public, &[f.lib.as_str()]);
    assert_eq!(asked.load(Ordering::SeqCst), 1, "the liar was asked again");
    let pulled: u64 = nar_files(dir.path())
        .iter()
        .map(|f| upstream.requests_for(f))
        .sum();
    assert_eq!(pulled, 1, "the node pulled the file itself, once");
    drop(liar);
}
