//! State directories written by other code start the new binary cleanly:
//! - `tests/fixtures/state-662721e/` is what the release build of commit 662721e (the code
//!   before per-network protocol names) wrote when run once with `--offline` on a store holding
//!   one path (`peerix-state-fixture.txt`, made again here): `identity.key`, `index.redb` and
//!   `node.redb`.
//! - `tests/fixtures/py-libp2p-*/` and `python-peerix-seed/` are what the Python Peerix leaves
//!   at the same default path: `cid_cache.json` (`{storeHash: CID}`, a kubo CIDv0) and an
//!   identity file, written by hand from the formats' descriptions: py-libp2p's
//!   `save_identity` (the protobuf `PrivateKey`, type 1 Ed25519 with the 32-byte seed, or type 2
//!   secp256k1) and the Python Peerix's own (the bare 32-byte ed25519 seed).

mod common;

use std::path::Path;
use std::time::Duration;

use common::{eventually, hash_part, ChrootStore, Peerix};
use tempfile::TempDir;

/// The peer id the 662721e build gave the fixture's `identity.key`, as its `/status` said.
const PEER_ID_662721E: &str = "12D3KooWHjpMwYLVJG83RwgMVSJXfQXwCk87AYNreXp2vo8Luvrt";
/// The one path of the store the fixture state was written on.
const FIXTURE_FILE: (&str, &[u8]) = (
    "peerix-state-fixture.txt",
    b"state written by peerix 662721e\n",
);

/// A copy of the fixture state dir `name`, with the mode its owner would have given the
/// identity (git keeps no modes).
fn state_copy(name: &str) -> TempDir {
    let state = TempDir::new().unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    for entry in std::fs::read_dir(fixture).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), state.path().join(entry.file_name())).unwrap();
    }
    let identity = state.path().join("identity.key");
    std::fs::set_permissions(
        &identity,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    state
}

fn peer_id(node: &Peerix) -> String {
    node.status()["node"]["peer_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The log lines containing `text`.
fn lines_with(node: &Peerix, text: &str) -> Vec<String> {
    node.log()
        .into_iter()
        .filter(|l| l.contains(text))
        .collect()
}

/// Waits (bounded) for the first scan to finish.
fn wait_scanned(node: &Peerix) {
    eventually(Duration::from_secs(20), "the scan never finished", || {
        node.status()["scan"]["running"] == false
    });
}

#[test]
fn a_state_dir_written_by_commit_662721e_starts_keeps_its_peer_id_and_serves() {
    let scratch = TempDir::new().unwrap();
    let store = ChrootStore::empty();
    let path = store.add_file(scratch.path(), FIXTURE_FILE.0, FIXTURE_FILE.1);
    let state = state_copy("state-662721e");
    let node = Peerix::serve_in(store.root(), state.path(), &["-v"]);
    wait_scanned(&node);
    assert_eq!(peer_id(&node), PEER_ID_662721E);
    let status = node.status();
    assert_eq!(status["indexed_paths"], 1, "{status}");
    assert_eq!(node.get(&format!("/{}.narinfo", hash_part(&path))).0, 200);
    let (code, _) = node.get(&format!("/{}", node.nar_url(&path)));
    assert_eq!(code, 200);
    // Nothing of Peerix's own complains about the state it found.
    let complaints: Vec<String> = node
        .log()
        .into_iter()
        .filter(|l| l.contains(" peerix") && (l.contains(" WARN ") || l.contains(" ERROR ")))
        .collect();
    assert!(complaints.is_empty(), "{complaints:#?}");
    assert!(!state.path().join("identity.key.py-libp2p").exists());
}

/// What starting on a Python Peerix's state dir must do with its identity.
enum Expected {
    /// Converted, keeping the peer id of this ed25519 seed.
    Kept([u8; 32]),
    /// Replaced by a new identity.
    Replaced,
}

#[test]
fn identities_of_the_python_peerix_are_converted_or_replaced_and_its_cid_cache_left_alone() {
    let cases = [
        (
            "py-libp2p-ed25519",
            Expected::Kept(std::array::from_fn(|i| i as u8 + 1)),
        ),
        (
            "python-peerix-seed",
            Expected::Kept(std::array::from_fn(|i| i as u8 + 201)),
        ),
        ("py-libp2p-secp256k1", Expected::Replaced),
    ];
    let store = ChrootStore::empty();
    for (fixture, expected) in cases {
        let state = state_copy(fixture);
        let original = std::fs::read(state.path().join("identity.key")).unwrap();
        let cache = std::fs::read(state.path().join("cid_cache.json")).unwrap();
        let node = Peerix::serve_in(store.root(), state.path(), &["-v"]);
        let id = peer_id(&node);
        let (converted, replaced) = (
            lines_with(&node, "identity converted"),
            lines_with(&node, "identity replaced"),
        );
        match expected {
            Expected::Kept(seed) => {
                let key = libp2p::identity::Keypair::ed25519_from_bytes(seed).unwrap();
                assert_eq!(id, key.public().to_peer_id().to_string(), "{fixture}");
                assert_eq!(converted.len(), 1, "{fixture}: {converted:#?}");
                assert!(converted[0].contains(&id), "{fixture}: {converted:#?}");
                assert!(replaced.is_empty(), "{fixture}: {replaced:#?}");
            }
            Expected::Replaced => {
                assert!(id.starts_with("12D3KooW"), "{fixture}: not ed25519: {id}");
                assert_eq!(replaced.len(), 1, "{fixture}: {replaced:#?}");
                assert!(
                    replaced[0].contains("secp256k1"),
                    "{fixture}: {replaced:#?}"
                );
                assert!(replaced[0].contains(&id), "{fixture}: {replaced:#?}");
                assert!(converted.is_empty(), "{fixture}: {converted:#?}");
            }
        }
        let cache_lines = lines_with(&node, "CID cache");
        assert_eq!(cache_lines.len(), 1, "{fixture}: {cache_lines:#?}");
        assert_eq!(
            node.status()["indexed_paths"],
            0,
            "{fixture}: CIDs imported"
        );
        drop(node);
        // The originals are kept as they were, the CID cache where it was.
        let aside = std::fs::read(state.path().join("identity.key.py-libp2p")).unwrap();
        assert_eq!(aside, original, "{fixture}");
        assert_eq!(
            std::fs::read(state.path().join("cid_cache.json")).unwrap(),
            cache
        );

        // The identity written is the node's own from now on: the next start reads it as it is.
        let again = Peerix::serve_in(store.root(), state.path(), &["-v"]);
        assert_eq!(peer_id(&again), id, "{fixture}");
        assert!(lines_with(&again, "identity ")
            .iter()
            .all(|l| !l.contains("converted") && !l.contains("replaced")));
    }
}
