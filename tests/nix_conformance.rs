//! Nix formats against real `nix`: NAR bytes, nixbase32, keys, fingerprints and signatures.

mod common;

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;

use common::{nix, run, stdout_text, ChrootStore, Fixture, NixKey};
use peerix::nix::nar::{NarError, NarPlan, NarValidator};
use peerix::nix::signing::{fingerprint, PublicKey, SecretKey};
use peerix_http::{nixbase32, NarHash, StorePathName};
use tempfile::TempDir;

fn our_nar(root: &Path, chunk: usize) -> Vec<u8> {
    let plan = NarPlan::of_path(root).unwrap();
    let mut out = Vec::with_capacity(plan.size() as usize);
    plan.read_range(0, plan.size(), chunk, |b| {
        out.extend_from_slice(&b);
        true
    })
    .unwrap();
    assert_eq!(out.len() as u64, plan.size());
    out
}

fn nix_dump(path: &Path) -> Vec<u8> {
    run(nix("nix-store", Path::new("/tmp")).arg("--dump").arg(path)).stdout
}

fn write(path: &Path, bytes: &[u8], mode: u32) {
    fs::write(path, bytes).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// A tree with every shape a store path can take.
fn rich_tree() -> TempDir {
    let dir = TempDir::new().unwrap();
    let root = dir.path().join("root");
    fs::create_dir_all(root.join("empty-dir")).unwrap();
    fs::create_dir_all(root.join("a/b/c/d")).unwrap();
    write(&root.join("empty-file"), b"", 0o644);
    write(&root.join("a/b/c/d/deep"), b"deep\n", 0o444);
    write(&root.join("exec"), b"#!/bin/sh\necho hi\n", 0o755);
    write(&root.join("exec-only-user"), b"x", 0o744);
    for len in 1..=17 {
        write(&root.join(format!("pad-{len:02}")), &vec![b'p'; len], 0o644);
    }
    // Entries sort by bytes: upper case, punctuation and UTF-8 in Nix's order.
    for name in ["B", "a.b", "a-b", "ä", "ünïcödé-名前", "😀", "Z z"] {
        write(&root.join(name), name.as_bytes(), 0o644);
    }
    symlink("exec", root.join("link-relative")).unwrap();
    symlink("/nix/store/absolute-target", root.join("link-absolute")).unwrap();
    symlink("does/not/exist", root.join("link-dangling")).unwrap();
    symlink("a/b", root.join("link-to-dir")).unwrap();
    let big: Vec<u8> = (0..(5 << 20) + 3)
        .map(|i: u32| (i.wrapping_mul(2654435761) >> 24) as u8)
        .collect();
    write(&root.join("big"), &big, 0o644);
    dir
}

#[test]
fn nar_bytes_equal_nix_store_dump() {
    let tree = rich_tree();
    let root = tree.path().join("root");
    let expected = nix_dump(&root);
    for chunk in [1, 7, 4096, 256 * 1024] {
        assert!(our_nar(&root, chunk) == expected, "chunk size {chunk}");
    }
}

#[test]
fn nar_of_single_nodes_equals_nix() {
    let dir = TempDir::new().unwrap();
    let file = dir.path().join("file");
    write(&file, b"hello", 0o644);
    let exec = dir.path().join("exec");
    write(&exec, b"", 0o755);
    let link = dir.path().join("link");
    symlink("target", &link).unwrap();
    let empty = dir.path().join("empty");
    fs::create_dir(&empty).unwrap();
    for path in [file, exec, link, empty] {
        assert_eq!(our_nar(&path, 64), nix_dump(&path), "{}", path.display());
    }
}

#[test]
fn nar_of_a_large_file_equals_nix() {
    let dir = TempDir::new().unwrap();
    let file = dir.path().join("large");
    let bytes: Vec<u8> = (0..(64u32 << 20) + 5)
        .map(|i| (i ^ (i >> 9)) as u8)
        .collect();
    write(&file, &bytes, 0o644);
    assert!(our_nar(&file, 256 * 1024) == nix_dump(&file));
}

#[test]
fn any_range_equals_the_slice_of_the_whole() {
    let tree = rich_tree();
    let root = tree.path().join("root");
    let whole = nix_dump(&root);
    let plan = NarPlan::of_path(&root).unwrap();
    let size = whole.len() as u64;
    let mut seed = 0x9e3779b97f4a7c15u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % (size + 1)
    };
    for _ in 0..200 {
        let (a, b) = (next(), next());
        let (start, end) = (a.min(b), a.max(b));
        let mut got = Vec::new();
        plan.read_range(start, end, 4096, |c| {
            got.extend_from_slice(&c);
            true
        })
        .unwrap();
        assert!(got == whole[start as usize..end as usize], "{start}..{end}");
    }
}

fn validate(bytes: &[u8], chunk: usize) -> Result<(), NarError> {
    let mut validator = NarValidator::new();
    for piece in bytes.chunks(chunk.max(1)) {
        validator.feed(piece)?;
    }
    validator.finish()
}

#[test]
fn validator_accepts_nix_dumps_and_rejects_damage() {
    let tree = rich_tree();
    let nar = nix_dump(&tree.path().join("root"));
    for chunk in [1, 3, 8, 1000, nar.len()] {
        validate(&nar, chunk).unwrap();
    }
    for cut in [0, 1, 8, 100, nar.len() / 2, nar.len() - 1] {
        assert!(validate(&nar[..cut], 64).is_err(), "truncated at {cut}");
    }
    let mut trailing = nar.clone();
    trailing.push(0);
    assert!(matches!(
        validate(&trailing, 64),
        Err(NarError::Trailing { .. })
    ));

    // The first entry's name is "B" (1 byte, 7 padding bytes): damage its padding, then its order.
    let name_at = nar
        .windows(9)
        .position(|w| w == b"\x01\0\0\0\0\0\0\0B")
        .unwrap()
        + 9;
    let mut bad_padding = nar.clone();
    bad_padding[name_at] = 1;
    assert!(matches!(
        validate(&bad_padding, 64),
        Err(NarError::Padding { .. })
    ));
    let mut unsorted = nar.clone();
    unsorted[name_at - 1] = b'z';
    assert!(matches!(
        validate(&unsorted, 64),
        Err(NarError::Order { .. })
    ));
    let mut slash = nar.clone();
    slash[name_at - 1] = b'/';
    assert!(matches!(validate(&slash, 64), Err(NarError::Name { .. })));
}

#[test]
fn nixbase32_matches_nix_hash_to_base32() {
    for seed in 0u8..8 {
        let digest: Vec<u8> = (0..32u8)
            .map(|i| i.wrapping_mul(73).wrapping_add(seed.wrapping_mul(151)))
            .collect();
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        let out = run(nix("nix", Path::new("/tmp")).args([
            "hash",
            "to-base32",
            "--type",
            "sha256",
            &hex,
        ]));
        assert_eq!(nixbase32::encode(&digest), stdout_text(&out));
        let sha1 = &hex[..40];
        let out =
            run(nix("nix", Path::new("/tmp")).args(["hash", "to-base32", "--type", "sha1", sha1]));
        assert_eq!(nixbase32::encode(&digest[..20]), stdout_text(&out));
        assert_eq!(
            nixbase32::decode::<20>(&stdout_text(&out)).unwrap()[..],
            digest[..20]
        );
    }
}

#[test]
fn keys_from_nix_load_and_peerix_keys_sign_for_nix() {
    let nix_key = NixKey::generate("from-nix-1");
    let secret = SecretKey::parse(&fs::read_to_string(&nix_key.secret).unwrap()).unwrap();
    assert_eq!(secret.public().to_file_text(), nix_key.public);
    PublicKey::parse(&nix_key.public).unwrap();

    // `nix store sign` accepts a key written by `peerix keygen`, and the signature it makes
    // verifies with our fingerprint: both sides compute the same text.
    let f = Fixture::get();
    let ours = NixKey::peerix_keygen("from-peerix-1");
    let secret_mode = fs::metadata(&ours.secret).unwrap().permissions().mode() & 0o777;
    assert_eq!(secret_mode, 0o600);
    let store = ChrootStore::signed(&ours, &[&f.app]);
    let info = store.path_info(&f.app);
    let sig = info["signatures"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s.as_str())
        .find(|s| s.starts_with("from-peerix-1:"))
        .expect("nix store sign added our key's signature")
        .to_owned();
    let path = StorePathName::from_absolute(&f.app).unwrap();
    let refs: Vec<StorePathName> = info["references"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| StorePathName::from_absolute(r.as_str().unwrap()).unwrap())
        .collect();
    assert!(!refs.is_empty(), "the check needs a path with references");
    let nar_hash = NarHash::parse(info["narHash"].as_str().unwrap()).unwrap();
    let fp = fingerprint(&path, &nar_hash, info["narSize"].as_u64().unwrap(), &refs);
    let public = PublicKey::parse(&ours.public).unwrap();
    assert!(public.verify(&fp, &sig));
    let our_secret = SecretKey::parse(&fs::read_to_string(&ours.secret).unwrap()).unwrap();
    assert_eq!(
        our_secret.sign(&fp),
        sig,
        "ed25519 is deterministic: same key, same signature"
    );

    let again = std::process::Command::new(env!("CARGO_BIN_EXE_peerix"))
        .args(["keygen", "again"])
        .args([&ours.secret, &ours.secret.with_extension("pub")])
        .output()
        .unwrap();
    assert!(
        !again.status.success(),
        "keygen must not overwrite a secret key"
    );
}
