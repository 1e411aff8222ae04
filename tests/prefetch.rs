//! Closure prefetch: once Nix's first narinfo of a closure comes from a peer, the narinfos of
//! the rest of the closure are fetched from the holder at once, so that Nix's next questions
//! are answered from memory: the holder is asked for each path once, before Nix asks for it.

mod common;

use std::time::Duration;

use common::{hash_part, ChrootStore, Fixture, NixKey, Peerix};

/// Narinfo requests `node` answered its peers with a narinfo.
fn narinfos_answered(node: &Peerix) -> u64 {
    node.status()["answered_peers"]["narinfos_found"]
        .as_u64()
        .unwrap()
}

#[test]
fn the_rest_of_a_closure_is_answered_from_memory() {
    let f = Fixture::get();
    let key = NixKey::generate("prefetch-test-1");
    // top refers to app and big; app to lib.
    let closure = [&f.top, &f.app, &f.big, &f.lib];
    let a_store = ChrootStore::signed(&key, &closure.map(String::as_str));
    let a = Peerix::serve(a_store.root(), &[]);
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
    common::eventually(Duration::from_secs(30), "B never learned A's paths", || {
        b.status()["peers"]["paths"].as_u64() >= Some(4)
    });
    let before = narinfos_answered(&a);

    assert_eq!(b.get(&format!("/{}.narinfo", hash_part(&f.top))).0, 200);
    common::eventually(
        Duration::from_secs(10),
        "the closure's narinfos were never fetched ahead",
        || narinfos_answered(&a) >= before + 4,
    );
    let prefetched = narinfos_answered(&a);
    for path in [&f.app, &f.big, &f.lib] {
        assert_eq!(b.get(&format!("/{}.narinfo", hash_part(path))).0, 200);
    }
    assert_eq!(
        narinfos_answered(&a),
        prefetched,
        "Nix's questions after the first went to the holder again"
    );
    assert_eq!(prefetched, before + 4, "a path was asked for twice");
    // /metrics counts the same.
    let metrics =
        String::from_utf8(common::curl(&format!("{}/metrics", a.url()), &[]).body).unwrap();
    let found = format!("peerix_peer_narinfo_requests_total{{outcome=\"found\"}} {prefetched}");
    assert!(metrics.contains(&found), "{metrics}");
}
