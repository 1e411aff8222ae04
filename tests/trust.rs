//! Only verified fields of a peer's narinfo reach Nix. A peer that sends a path's true NarHash
//! and NarSize with its References removed and no signature, next to an upstream cache (a local
//! binary cache on 127.0.0.1) that has the path: Nix, trusting only Peerix's key, registers
//! upstream's References. `--no-verify` lets unsigned paths through only from `--trusted-peer`
//! peers, and Peerix never signs them.

mod common;
mod raw_peer;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::{hash_part, nix_copy_from, nix_copy_ok, ChrootStore, Fixture, NixKey, Peerix};
use peerix::wire::NarinfoAnswer;
use peerix_http::{NarInfo, StoreHash};
use raw_peer::RawPeer;
use serde_json::Value;

const LOOPBACK: &str = "/ip4/127.0.0.1/tcp/0";

fn eventually(limit: Duration, what: &str, mut ready: impl FnMut() -> bool) {
    let started = Instant::now();
    while !ready() {
        assert!(started.elapsed() < limit, "{what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn narinfo_of(cache: &Peerix, path: &str) -> (u16, String) {
    let (status, body) = cache.get(&format!("/{}.narinfo", hash_part(path)));
    (status, String::from_utf8(body).unwrap())
}

/// Waits until `node` knows of `paths` paths held by peers.
fn wait_for_holdings(node: &Peerix, paths: u64) {
    eventually(
        Duration::from_secs(20),
        "the peer's index never arrived",
        || {
            let status: Value = serde_json::from_slice(&node.get("/status").1).unwrap_or_default();
            status["peers"]["paths"] == paths
        },
    );
}

/// A peer holding `paths` (their NARs from `store`) that answers with `narinfos`.
fn peer_sending(store: &ChrootStore, narinfos: HashMap<StoreHash, NarInfo>) -> RawPeer {
    let nars = narinfos
        .values()
        .map(|n| (n.nar_hash, store.dump(&n.store_path.to_absolute())))
        .collect();
    let answer = move |hash: StoreHash| {
        Some(match narinfos.get(&hash) {
            Some(n) => NarinfoAnswer::Found {
                text: n.render(),
                cid: None,
            },
            None => NarinfoAnswer::NotFound,
        })
    };
    RawPeer::start(Box::new(answer), nars)
}

#[test]
fn a_peer_cannot_remove_references_and_no_verify_needs_a_named_peer() {
    let f = Fixture::get();
    let upstream_key = NixKey::generate("upstream-test-1");
    let peerix_key = NixKey::generate("peerix-test-1");
    let stranger = NixKey::generate("stranger-1");
    let upstream_store = ChrootStore::with_paths(&[&f.app]);
    upstream_store.sign(&upstream_key.secret, &[&f.app, &f.lib]);
    let upstream = Peerix::serve(upstream_store.root(), &["--listen-addrs", LOOPBACK]);
    let upstream_narinfo = |path: &str| {
        let (status, text) = narinfo_of(&upstream, path);
        assert_eq!(status, 200);
        NarInfo::parse(&text).unwrap()
    };
    let (app, lib) = (upstream_narinfo(&f.app), upstream_narinfo(&f.lib));
    assert!(
        app.references.contains(&lib.store_path),
        "app refers to lib"
    );

    // The peer's app: the true path, hash and size, no References, no signature.
    let mut lying = app.clone();
    lying.references.clear();
    lying.sigs.clear();
    lying.deriver = None;
    let mut unsigned_lib = lib.clone();
    unsigned_lib.sigs.clear();
    let narinfos = HashMap::from([
        (app.store_path.hash(), lying),
        (lib.store_path.hash(), unsigned_lib),
    ]);
    let peer = peer_sending(&upstream_store, narinfos);
    let hashes = vec![app.store_path.hash(), lib.store_path.hash()];

    let upstream_url = upstream.url();
    let key = peerix_key.secret.to_str().unwrap();
    let serve_trusting = |trusted: &str| {
        let store = ChrootStore::empty();
        let node = Peerix::serve(
            store.root(),
            &[
                "--listen-addrs",
                LOOPBACK,
                "--trusted-public-key",
                trusted,
                "--upstream-cache",
                &upstream_url,
                "--private-key",
                key,
            ],
        );
        peer.announce_to(&node.p2p_addr(), hashes.clone());
        wait_for_holdings(&node, 2);
        (store, node)
    };
    // Upstream's key is not one B trusts: its narinfo passes with its own signatures for Nix
    // to check, and Peerix vouches for none of it.
    let (_b_store, b) = serve_trusting(&stranger.public);
    let (status, text) = narinfo_of(&b, &f.app);
    assert_eq!(
        status, 200,
        "upstream vouches for the path (--offline keeps it)"
    );
    let passed = NarInfo::parse(&text).unwrap();
    assert_eq!(passed.references, app.references, "{text}");
    assert_eq!(passed.deriver, app.deriver, "{text}");
    assert!(passed
        .sigs
        .iter()
        .any(|s| s.starts_with("upstream-test-1:")));
    assert!(!text.contains("Sig: peerix-test-1:"), "{text}");
    let dest = ChrootStore::empty();
    let refused = nix_copy_from(&b.url(), &dest, &peerix_key.public, &[&f.app]);
    assert!(
        !refused.status.success(),
        "Nix took upstream's word as Peerix's"
    );
    nix_copy_ok(&b.url(), &dest, &upstream_key.public, &[&f.app]);
    assert_eq!(
        dest.path_info(&f.app)["references"],
        upstream_store.path_info(&f.app)["references"],
        "Nix registered references the peer sent"
    );

    // Trusting upstream's key, B verified the fields itself: Peerix's signature joins.
    let (_c_store, c) = serve_trusting(&upstream_key.public);
    let (status, text) = narinfo_of(&c, &f.app);
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("Sig: peerix-test-1:"), "{text}");
    let dest = ChrootStore::empty();
    nix_copy_ok(&c.url(), &dest, &peerix_key.public, &[&f.app]);

    // --no-verify without --trusted-peer: an unsigned path still needs a signature or upstream.
    let serve_no_verify = |extra: &[&str]| {
        let mut args = vec![
            "--listen-addrs",
            LOOPBACK,
            "--trusted-public-key",
            &stranger.public,
            "--private-key",
            key,
            "--no-verify",
        ];
        args.extend_from_slice(extra);
        let store = ChrootStore::empty();
        let node = Peerix::serve(store.root(), &args);
        peer.announce_to(&node.p2p_addr(), hashes.clone());
        wait_for_holdings(&node, 2);
        (store, node)
    };
    let (_unnamed_store, unnamed) = serve_no_verify(&[]);
    assert_eq!(narinfo_of(&unnamed, &f.lib).0, 404);
    assert!(peer.asked() > 0);

    // With the peer named, it passes as it came, without Peerix's signature.
    let peer_id = peer.peer_id();
    let (_named_store, named) = serve_no_verify(&["--trusted-peer", &peer_id]);
    let (status, text) = narinfo_of(&named, &f.lib);
    assert_eq!(status, 200);
    assert!(!text.contains("Sig: peerix-test-1:"), "{text}");
}
