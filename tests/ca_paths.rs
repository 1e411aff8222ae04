//! The store path Peerix computes from a content address matches real Nix's: paths added with
//! `nix-store --add-fixed` (recursive and flat) and written by `builtins.toFile` (with a
//! reference) into a chroot store, their `ca` read back with `nix path-info --json`.

mod common;

use common::{nix, run, stdout_text, ChrootStore};
use peerix::nix::ca::{reproduces, ContentAddress};
use peerix_http::StorePathName;

/// (store path, references, ca) of `path` in `store`, as Nix reports them.
fn reported(store: &ChrootStore, path: &str) -> (StorePathName, Vec<StorePathName>, String) {
    let info = store.path_info(path);
    let name = |v: &serde_json::Value| StorePathName::from_absolute(v.as_str().unwrap()).unwrap();
    let references = info["references"]
        .as_array()
        .unwrap()
        .iter()
        .map(name)
        .collect();
    let ca = info["ca"].as_str().expect("a ca field").to_owned();
    (name(&info["path"]), references, ca)
}

fn assert_reproduced(store: &ChrootStore, path: &str, kind: &str) {
    let (path, references, ca) = reported(store, path);
    assert!(ca.starts_with(kind), "{ca}");
    let computed = ContentAddress::parse(&ca)
        .unwrap()
        .store_path(path.name(), &references, Some(&path))
        .unwrap();
    assert_eq!(computed, path, "{ca}");
    assert!(reproduces(&ca, &path, &references));
    // Another name, or a reference taken away or added, is another path.
    let renamed = StorePathName::parse(&format!("{}-other", path.hash())).unwrap();
    assert!(!reproduces(&ca, &renamed, &references));
    match references.split_first() {
        Some((_, fewer)) => assert!(!reproduces(&ca, &path, fewer)),
        None => {
            let extra = StorePathName::parse("7rjj86a15146cq1d3fmbmhdcd6lkb5ln-x").unwrap();
            assert!(!reproduces(&ca, &path, &[extra]));
        }
    }
}

#[test]
fn content_addresses_give_the_store_paths_nix_gives() {
    let store = ChrootStore::empty();
    let scratch = tempfile::TempDir::new().unwrap();
    let dir = scratch.path().join("tree");
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::fs::write(dir.join("sub/file"), "contents\n").unwrap();
    std::fs::write(scratch.path().join("flat"), "flat contents\n").unwrap();
    let add = |args: &[&str], file: &str| {
        stdout_text(&run(nix("nix-store", scratch.path())
            .args(["--store", &store.url(), "--add-fixed"])
            .args(args)
            .arg(scratch.path().join(file))))
    };
    let recursive = add(&["--recursive", "sha256"], "tree");
    let flat = add(&["sha256"], "flat");
    let text = stdout_text(&run(nix("nix", scratch.path()).args([
        "eval",
        "--store",
        &store.url(),
        "--raw",
        "--expr",
        r#"builtins.toFile "outer" "refers to ${builtins.toFile "inner" "x"}""#,
    ])));

    assert_reproduced(&store, &recursive, "fixed:r:sha256:");
    assert_reproduced(&store, &flat, "fixed:sha256:");
    assert_reproduced(&store, &text, "text:sha256:");
    assert_eq!(
        reported(&store, &text).1.len(),
        1,
        "the text path has its reference"
    );
}
