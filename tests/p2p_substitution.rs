//! Peers substitute from each other, with real Nix as the client: A holds the fixture; B and C
//! start empty and know only A's address; `nix copy --from http://B` gets the closure from A,
//! byte for byte, trusting only the fixture's upstream key.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{
    eventually, hash_part, nix_copy_from, nix_copy_ok, ChrootStore, Fixture, NixKey, Peerix,
};
use serde_json::Value;

const LOOPBACK: &str = "/ip4/127.0.0.1/tcp/0";
/// How long a peer's index may take to arrive after the nodes connect.
const INDEX_WAIT: Duration = Duration::from_secs(20);

/// A node on `store` that knows only `bootstrap` and trusts only `key`.
fn peer(store: &ChrootStore, bootstrap: Option<&str>, key: &str) -> Peerix {
    let mut args = vec!["--listen-addrs", LOOPBACK, "--trusted-public-key", key];
    if let Some(addr) = bootstrap {
        args.extend(["--bootstrap-peers", addr]);
    }
    Peerix::serve(store.root(), &args)
}

#[test]
fn nix_copies_a_closure_that_only_a_peer_holds() {
    let f = Fixture::get();
    let upstream = NixKey::generate("upstream-test-1");
    let a_store = ChrootStore::signed(&upstream, &f.all());
    let a = peer(&a_store, None, &upstream.public);
    let a_addr = a.p2p_addr();
    let (b_store, c_store) = (ChrootStore::empty(), ChrootStore::empty());
    let b = peer(&b_store, Some(&a_addr), &upstream.public);
    // C knows only A's HTTP address, and finds its node through GET /bootstrap.
    let bootstrap_url = format!("{}/bootstrap", a.url());
    let c = Peerix::serve(
        c_store.root(),
        &[
            "--listen-addrs",
            LOOPBACK,
            "--trusted-public-key",
            &upstream.public,
            "--bootstrap-url",
            &bootstrap_url,
        ],
    );
    let (status, body) = a.get("/bootstrap");
    assert_eq!(status, 200);
    let info: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(info["network_id"], "default");
    assert!(info["multiaddrs"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m == a_addr.as_str()));
    b.wait_for_narinfo(&f.top, INDEX_WAIT);
    c.wait_for_narinfo(&f.big, INDEX_WAIT);

    let dest = ChrootStore::empty();
    nix_copy_ok(&b.url(), &dest, &upstream.public, &[&f.top, &f.big]);
    a_store.assert_same_nars(&dest, &[&f.top, &f.app, &f.lib, &f.big]);

    // The sensitive path is never offered to peers; absent paths are a 404 at once.
    assert_eq!(b.get(&format!("/{}.narinfo", hash_part(&f.secrets))).0, 404);
    let absent = "/0000000000000000000000000000000a.narinfo";
    let started = Instant::now();
    assert_eq!(b.get(absent).0, 404);
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[test]
fn untrusted_paths_never_reach_nix() {
    let f = Fixture::get();
    let upstream = NixKey::generate("upstream-test-1");
    let stranger = NixKey::generate("stranger-1");
    let a_store = ChrootStore::signed(&upstream, &[&f.lib]);
    let a = peer(&a_store, None, &upstream.public);
    let a_addr = a.p2p_addr();
    // B trusts only a key that signed nothing on A: A's path must not pass through it.
    let b_store = ChrootStore::empty();
    let b = peer(&b_store, Some(&a_addr), &stranger.public);
    // C trusts the upstream key: the path does pass, which shows B was connected and asked.
    let c_store = ChrootStore::empty();
    let c = peer(&c_store, Some(&a_addr), &upstream.public);
    c.wait_for_narinfo(&f.lib, INDEX_WAIT);
    wait_connected(&b, &a_addr);
    let narinfo = format!("/{}.narinfo", hash_part(&f.lib));
    assert_eq!(b.get(&narinfo).0, 404);
}

/// B's node lists `peer` among its connections (bounded wait).
fn wait_connected(node: &Peerix, peer_addr: &str) {
    let peer_id = peer_addr.rsplit("/p2p/").next().unwrap();
    eventually(
        Duration::from_secs(10),
        &format!("never connected to {peer_id}"),
        || {
            let out = Command::new(env!("CARGO_BIN_EXE_peerix"))
                .args(["ipfs", "--api", &node.url(), "peers"])
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).contains(peer_id)
        },
    );
}

/// The ways a peer can lie about a path it holds.
#[derive(Clone, Copy, Debug)]
enum Lie {
    /// Its database and signature are right; one byte on its disk is not.
    WrongBytes,
    /// Its narinfo names a NarHash the signature was not made over.
    WrongNarHash,
    /// Its narinfo carries no signature at all.
    Unsigned,
}

fn lying_store(lie: Lie, upstream: &NixKey, path: &str) -> ChrootStore {
    let store = match lie {
        Lie::Unsigned => ChrootStore::with_paths(&[path]),
        Lie::WrongBytes | Lie::WrongNarHash => ChrootStore::signed(upstream, &[path]),
    };
    match lie {
        Lie::WrongBytes => {
            let file = store.physical(path).join("lib/libfixture.so");
            let mut bytes = std::fs::read(&file).unwrap();
            bytes[0] ^= 0x20;
            let mut permissions = std::fs::metadata(&file).unwrap().permissions();
            std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o644);
            std::fs::set_permissions(&file, permissions).unwrap();
            std::fs::write(&file, &bytes).unwrap();
        }
        Lie::WrongNarHash => {
            let db =
                rusqlite::Connection::open(store.root().join("nix/var/nix/db/db.sqlite")).unwrap();
            // Another valid sha256, of the same length and form.
            let changed = db
                .execute(
                    "UPDATE ValidPaths SET hash = 'sha256:' || \
                     (CASE substr(hash, 8, 1) WHEN '0' THEN '1' ELSE '0' END) || \
                     substr(hash, 9) WHERE path = ?1",
                    [path],
                )
                .unwrap();
            assert_eq!(changed, 1);
        }
        Lie::Unsigned => {}
    }
    store
}

#[test]
fn a_lying_peer_never_gets_a_byte_into_nix() {
    let f = Fixture::get();
    let upstream = NixKey::generate("upstream-test-1");
    let honest_store = ChrootStore::signed(&upstream, &[&f.lib]);
    let honest = peer(&honest_store, None, &upstream.public);
    let honest_addr = honest.p2p_addr();
    for lie in [Lie::WrongBytes, Lie::WrongNarHash, Lie::Unsigned] {
        let liar_store = lying_store(lie, &upstream, &f.lib);
        let liar = peer(&liar_store, None, &upstream.public);
        let b_store = ChrootStore::empty();
        let b = peer(&b_store, Some(&liar.p2p_addr()), &upstream.public);
        // B knows the liar holds the path: a refusal below is a refusal of the lie.
        eventually(
            Duration::from_secs(20),
            "B never learnt the liar's index",
            || {
                let status: Value = serde_json::from_slice(&b.get("/status").1).unwrap_or_default();
                status["peers"]["paths"] == 1
            },
        );

        // Only the liar holds the path: Nix gets no NAR, and nothing lands in its store.
        let dest = ChrootStore::empty();
        let out = nix_copy_from(&b.url(), &dest, &upstream.public, &[&f.lib]);
        assert!(!out.status.success(), "{lie:?}: a lie was accepted");
        assert!(!dest.physical(&f.lib).exists(), "{lie:?}");

        // With an honest holder connected too, the same copy succeeds, from it.
        let connect = Command::new(env!("CARGO_BIN_EXE_peerix"))
            .args(["ipfs", "--api", &b.url(), "connect", &honest_addr])
            .output()
            .unwrap();
        assert!(connect.status.success());
        wait_connected(&b, &honest_addr);
        // A fresh client each try: Nix remembers a 404 (in the store's cache directory), and
        // B answers one until the honest peer's index has arrived.
        let mut copied = None;
        for _ in 0..20 {
            let dest = ChrootStore::empty();
            let out = nix_copy_from(&b.url(), &dest, &upstream.public, &[&f.lib]);
            if out.status.success() {
                copied = Some(dest);
                break;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        let dest =
            copied.unwrap_or_else(|| panic!("{lie:?}: the honest peer never served the path"));
        honest_store.assert_same_nars(&dest, &[&f.lib]);
    }
}

/// Bytes `node` has sent to the peer whose address is `to` (from `peerix ipfs status`).
fn bytes_sent(node: &Peerix, to: &str) -> u64 {
    let peer_id = to.rsplit("/p2p/").next().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_peerix"))
        .args(["ipfs", "--api", &node.url(), "status"])
        .output()
        .unwrap();
    let status: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    status["node"]["peers"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["peer_id"] == peer_id)
        .and_then(|p| p["bytes_out"].as_u64())
        .unwrap_or(0)
}

/// Two nodes holding the big fixture path (signed by `upstream`), started with `extra` flags,
/// and B, an empty node that knows both; returns once B serves the path's narinfo.
fn two_holders_and_b(
    upstream: &NixKey,
    extra: &[&str],
) -> (Vec<ChrootStore>, Vec<Peerix>, ChrootStore, Peerix) {
    let f = Fixture::get();
    let stores: Vec<ChrootStore> = (0..2)
        .map(|_| ChrootStore::signed(upstream, &[&f.big]))
        .collect();
    let holders: Vec<Peerix> = stores
        .iter()
        .map(|store| {
            let mut args = vec!["--listen-addrs", LOOPBACK, "--trusted-public-key"];
            args.push(&upstream.public);
            args.extend_from_slice(extra);
            Peerix::serve(store.root(), &args)
        })
        .collect();
    let addrs: Vec<String> = holders.iter().map(Peerix::p2p_addr).collect();
    let b_store = ChrootStore::empty();
    let mut args = vec!["--listen-addrs", LOOPBACK, "--trusted-public-key"];
    args.push(&upstream.public);
    for addr in &addrs {
        args.extend(["--bootstrap-peers", addr]);
    }
    let b = Peerix::serve(b_store.root(), &args);
    for addr in &addrs {
        wait_connected(&b, addr);
    }
    b.wait_for_narinfo(&f.big, INDEX_WAIT);
    (stores, holders, b_store, b)
}

#[test]
fn a_holder_killed_mid_transfer_is_replaced_by_another() {
    let f = Fixture::get();
    let upstream = NixKey::generate("upstream-test-1");
    // Capped, so that the 100 MiB transfer lasts long enough to be interrupted.
    let (stores, holders, _b_store, b) =
        two_holders_and_b(&upstream, &["--bandwidth-limit", "20M"]);
    let b_addr = b.p2p_addr();

    let dest = ChrootStore::empty();
    let (url, key, path) = (b.url(), upstream.public.clone(), f.big.clone());
    let copy = std::thread::spawn(move || {
        let out = nix_copy_from(&url, &dest, &key, &[&path]);
        (out, dest)
    });
    // Kill whichever holder is sending, once it is well into the NAR.
    let mut holders: Vec<Option<Peerix>> = holders.into_iter().map(Some).collect();
    let started = Instant::now();
    let killed = loop {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no holder started sending"
        );
        let sending = holders.iter().position(|h| {
            h.as_ref()
                .is_some_and(|h| bytes_sent(h, &b_addr) > 20_000_000)
        });
        if let Some(i) = sending {
            holders[i] = None;
            break i;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let (out, dest) = copy.join().unwrap();
    assert!(
        out.status.success(),
        "holder {killed} killed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    stores[1 - killed].assert_same_nars(&dest, &[&f.big]);
}

#[test]
fn a_path_collected_on_its_holder_is_gone_from_peers_within_seconds() {
    let f = Fixture::get();
    let upstream = NixKey::generate("upstream-test-1");
    let a_store = ChrootStore::signed(&upstream, &[&f.lib]);
    let a = peer(&a_store, None, &upstream.public);
    let b_store = ChrootStore::empty();
    let b = peer(&b_store, Some(&a.p2p_addr()), &upstream.public);
    b.wait_for_narinfo(&f.lib, INDEX_WAIT);

    common::run(
        common::nix("nix", a_store.root())
            .args(["store", "delete", "--store", &a_store.url()])
            .arg(&f.lib),
    );
    let narinfo = format!("/{}.narinfo", hash_part(&f.lib));
    let started = Instant::now();
    while b.get(&narinfo).0 != 404 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "B still offers a path A no longer holds"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_nar_url_stays_valid_across_a_restart() {
    let f = Fixture::get();
    let upstream = NixKey::generate("upstream-test-1");
    let a_store = ChrootStore::signed(&upstream, &[&f.lib]);
    let a = peer(&a_store, None, &upstream.public);
    let a_addr = a.p2p_addr();
    let b_store = ChrootStore::empty();
    let state = tempfile::TempDir::new().unwrap();
    let b_args = [
        "--listen-addrs",
        LOOPBACK,
        "--trusted-public-key",
        &upstream.public,
        "--bootstrap-peers",
        &a_addr,
    ];
    let b = Peerix::serve_in(b_store.root(), state.path(), &b_args);
    b.wait_for_narinfo(&f.lib, INDEX_WAIT);
    let url = b.nar_url(&f.lib);
    drop(b);

    // Nix keeps narinfos for days and asks for the NAR directly: the restarted B must know it.
    let b = Peerix::serve_in(b_store.root(), state.path(), &b_args);
    let started = Instant::now();
    let body = loop {
        let (status, body) = b.get(&format!("/{url}"));
        if status == 200 {
            break body;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{url}: {status}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let dump = a_store.dump(&f.lib);
    assert!(
        body == dump,
        "the NAR differs: {} vs {} bytes",
        body.len(),
        dump.len()
    );
}

#[test]
fn a_holder_not_connected_is_found_through_the_dht() {
    let f = Fixture::get();
    let upstream = NixKey::generate("upstream-test-1");
    let a_store = ChrootStore::signed(&upstream, &[&f.lib]);
    let a = peer(&a_store, None, &upstream.public);
    // A chain: C knows only B, B knows only A.
    let b_store = ChrootStore::empty();
    let b = peer(&b_store, Some(&a.p2p_addr()), &upstream.public);
    let c_store = ChrootStore::empty();
    let c = peer(&c_store, Some(&b.p2p_addr()), &upstream.public);
    wait_connected(&c, &a.p2p_addr());
    c.wait_for_narinfo(&f.lib, INDEX_WAIT);
}

/// Waits (bounded) until `node` has published its whole store.
fn wait_published(node: &Peerix, paths: u64) {
    eventually(
        Duration::from_secs(60),
        "the store was never published",
        || {
            let (_, body) = node.get("/status");
            let status: Value = serde_json::from_slice(&body).unwrap_or_default();
            status["indexed_paths"] == paths && status["scan"]["running"] == false
        },
    );
}

#[test]
fn a_large_nar_comes_from_every_holder_at_once() {
    let f = Fixture::get();
    let upstream = NixKey::generate("upstream-test-1");
    let (stores, holders, _b_store, b) = two_holders_and_b(&upstream, &[]);
    for holder in &holders {
        wait_published(holder, 1);
    }
    let b_addr = b.p2p_addr();
    // Both indexes arrive right after connecting; give the second one a moment.
    std::thread::sleep(Duration::from_secs(1));

    let dest = ChrootStore::empty();
    nix_copy_ok(&b.url(), &dest, &upstream.public, &[&f.big]);
    stores[0].assert_same_nars(&dest, &[&f.big]);
    // Each holder sent a good share of the 100 MiB.
    for holder in &holders {
        let sent = bytes_sent(holder, &b_addr);
        assert!(sent > 30_000_000, "a holder sent only {sent} bytes");
    }
}

#[test]
fn a_fetched_nar_is_served_again_from_the_cache() {
    let f = Fixture::get();
    let upstream = NixKey::generate("upstream-test-1");
    let a_store = ChrootStore::signed(&upstream, &[&f.lib]);
    let a = peer(&a_store, None, &upstream.public);
    let b_store = ChrootStore::empty();
    let b = Peerix::serve(
        b_store.root(),
        &[
            "--listen-addrs",
            LOOPBACK,
            "--trusted-public-key",
            &upstream.public,
            "--bootstrap-peers",
            &a.p2p_addr(),
            "--cache-size",
            "10MiB",
        ],
    );
    b.wait_for_narinfo(&f.lib, INDEX_WAIT);
    let url = b.nar_url(&f.lib);
    let dump = a_store.dump(&f.lib);
    assert!(b.get(&format!("/{url}")).1 == dump);

    // With the only holder gone, the NAR still comes, from B's cache (which keeps it once the
    // first response is complete: a request racing that may miss it).
    drop(a);
    let served = (0..20).any(|_| {
        let (status, body) = b.get(&format!("/{url}"));
        std::thread::sleep(Duration::from_millis(100));
        status == 200 && body == dump
    });
    assert!(served, "the NAR was not served from the cache");
}
