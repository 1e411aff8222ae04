//! End to end with real Nix as the client: `nix copy --from http://127.0.0.1:PORT` with
//! `require-sigs = true`, once trusting only the fixture's upstream key, once only Peerix's.

mod common;

use common::{nix_copy_from, nix_copy_ok, ChrootStore, Fixture, NixKey, Peerix};

/// Paths Nix copies for the fixture's top-level path: its whole closure, sensitive path aside.
fn closure(f: &Fixture) -> Vec<&str> {
    vec![&f.top, &f.app, &f.lib, &f.big]
}

/// Copies `paths` from `peerix` into a fresh store trusting only `key`; the closure must arrive
/// byte for byte.
fn copy_closure_trusting(peerix: &Peerix, a: &ChrootStore, key: &str, paths: &[&str]) {
    let b = ChrootStore::empty();
    nix_copy_ok(&peerix.url(), &b, key, paths);
    a.assert_same_nars(&b, &closure(Fixture::get()));
}

fn upstream_signed_store() -> (ChrootStore, NixKey) {
    let f = Fixture::get();
    let upstream = NixKey::generate("upstream-test-1");
    let store = ChrootStore::signed(&upstream, &f.all());
    (store, upstream)
}

#[test]
fn nix_copies_the_closure_trusting_only_the_upstream_key() {
    let f = Fixture::get();
    let (a, upstream) = upstream_signed_store();
    let peerix = Peerix::serve(a.root(), &[]);
    copy_closure_trusting(&peerix, &a, &upstream.public, &[&f.top, &f.big]);
}

#[test]
fn nix_copies_the_closure_trusting_only_the_peerix_key() {
    let f = Fixture::get();
    let (a, _upstream) = upstream_signed_store();
    let own = NixKey::peerix_keygen("peerix-test-1");
    let key_arg = own.secret.to_str().unwrap();
    let peerix = Peerix::serve(a.root(), &["--private-key", key_arg]);
    copy_closure_trusting(&peerix, &a, &own.public, &[&f.top]);
}

#[test]
fn nix_refuses_paths_signed_by_no_trusted_key() {
    let f = Fixture::get();
    let (a, _upstream) = upstream_signed_store();
    let own = NixKey::peerix_keygen("peerix-test-1");
    let peerix = Peerix::serve(a.root(), &["--private-key", own.secret.to_str().unwrap()]);
    let stranger = NixKey::generate("stranger-1");
    let b = ChrootStore::empty();

    let out = nix_copy_from(&peerix.url(), &b, &stranger.public, &[&f.lib]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("lacks a valid signature"));
}

#[test]
fn nix_secret_key_file_variable_enables_signing() {
    let f = Fixture::get();
    let a = ChrootStore::with_paths(&[&f.lib]);
    let own = NixKey::generate("env-key-1");
    let peerix = Peerix::serve_with_env(a.root(), &[], &[("NIX_SECRET_KEY_FILE", &own.secret)]);
    let b = ChrootStore::empty();

    nix_copy_ok(&peerix.url(), &b, &own.public, &[&f.lib]);
}

#[test]
fn sensitive_path_is_never_served() {
    let f = Fixture::get();
    let (a, upstream) = upstream_signed_store();
    let peerix = Peerix::serve(a.root(), &[]);
    let b = ChrootStore::empty();

    let out = nix_copy_from(&peerix.url(), &b, &upstream.public, &[&f.secrets]);
    assert!(!out.status.success(), "the sensitive path was copied");
    assert!(!b.physical(&f.secrets).exists());
}
