//! The HTTP surface, checked with curl: routes, HEAD, ranges, zstd, filters, errors, metrics.

mod common;

use common::{curl, hash_part, ChrootStore, Fixture, Peerix};
use peerix_http::NarHash;

/// `nix path-info --json` spells NAR hashes in SRI form; narinfos use nixbase32.
fn nar_hash_of(store: &ChrootStore, path: &str) -> NarHash {
    NarHash::parse(store.path_info(path)["narHash"].as_str().unwrap()).unwrap()
}

fn nar_url(peerix: &Peerix, store_path: &str) -> String {
    let narinfo = curl(
        &format!("{}/{}.narinfo", peerix.url(), hash_part(store_path)),
        &[],
    );
    assert_eq!(narinfo.status, 200);
    let text = String::from_utf8(narinfo.body).unwrap();
    let url = text
        .lines()
        .find_map(|l| l.strip_prefix("URL: "))
        .expect("URL line")
        .to_owned();
    format!("{}/{url}", peerix.url())
}

#[test]
fn cache_info_health_and_metrics() {
    let store = ChrootStore::empty();
    let peerix = Peerix::serve(store.root(), &[]);
    let info = curl(&format!("{}/nix-cache-info", peerix.url()), &[]);
    assert_eq!(info.status, 200);
    assert_eq!(
        String::from_utf8(info.body).unwrap(),
        "StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 20\n"
    );
    let custom = Peerix::serve(store.root(), &["--priority", "7"]);
    let info = curl(&format!("{}/nix-cache-info", custom.url()), &[]);
    assert!(String::from_utf8(info.body)
        .unwrap()
        .contains("Priority: 7\n"));

    assert_eq!(curl(&format!("{}/health", peerix.url()), &[]).status, 200);
    curl(&format!("{}/{}.narinfo", peerix.url(), "0".repeat(32)), &[]);
    let metrics = String::from_utf8(curl(&format!("{}/metrics", peerix.url()), &[]).body).unwrap();
    assert!(
        metrics.contains("peerix_narinfo_misses_total 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("peerix_narinfo_duration_seconds_count 1\n"),
        "{metrics}"
    );
}

#[test]
fn narinfo_has_file_hash_size_and_store_signatures() {
    let f = Fixture::get();
    let store = ChrootStore::with_paths(&[&f.app]);
    let peerix = Peerix::serve(store.root(), &[]);
    let response = curl(
        &format!("{}/{}.narinfo", peerix.url(), hash_part(&f.app)),
        &[],
    );
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-type"), Some("text/x-nix-narinfo"));
    let text = String::from_utf8(response.body).unwrap();
    let info = store.path_info(&f.app);
    let nar_hash = nar_hash_of(&store, &f.app);
    for line in [
        format!("StorePath: {}", f.app),
        format!("NarHash: {nar_hash}"),
        format!("FileHash: {nar_hash}"),
        format!("NarSize: {}", info["narSize"]),
        format!("FileSize: {}", info["narSize"]),
        "Compression: none".to_owned(),
        format!("References: {}", &f.lib["/nix/store/".len()..]),
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }

    // With -I, curl writes the headers where the body would go: no narinfo text may follow.
    let head = curl(
        &format!("{}/{}.narinfo", peerix.url(), hash_part(&f.app)),
        &["-I"],
    );
    assert_eq!(head.status, 200);
    assert!(!String::from_utf8_lossy(&head.body).contains("StorePath:"));
}

#[test]
fn nar_ranges_head_and_zstd() {
    let f = Fixture::get();
    let store = ChrootStore::with_paths(&[&f.app]);
    let peerix = Peerix::serve(store.root(), &[]);
    let url = nar_url(&peerix, &f.lib);
    let dump = store.dump(&f.lib);
    let size = dump.len();

    let whole = curl(&url, &[]);
    assert_eq!(whole.status, 200);
    assert_eq!(whole.header("content-type"), Some("application/x-nix-nar"));
    assert_eq!(
        whole.header("content-length"),
        Some(size.to_string().as_str())
    );
    assert_eq!(whole.body, dump);

    let head = curl(&url, &["-I"]);
    assert_eq!(
        head.header("content-length"),
        Some(size.to_string().as_str())
    );
    assert!(!head.body.windows(13).any(|w| w == b"nix-archive-1"));

    for (spec, from, to) in [
        ("10-99", 10, 100),
        ("-16", size - 16, size),
        ("100-", 100, size),
    ] {
        let part = curl(&url, &["-H", &format!("Range: bytes={spec}")]);
        assert_eq!(part.status, 206, "{spec}");
        assert_eq!(part.body, &dump[from..to], "{spec}");
        let range = format!("bytes {from}-{}/{size}", to - 1);
        assert_eq!(part.header("content-range"), Some(range.as_str()));
    }
    let beyond = curl(&url, &["-H", &format!("Range: bytes={size}-")]);
    assert_eq!(beyond.status, 416);
    assert_eq!(
        beyond.header("content-range"),
        Some(format!("bytes */{size}").as_str())
    );

    let compressed = curl(&url, &["-H", "Accept-Encoding: zstd"]);
    assert_eq!(compressed.status, 200);
    assert_eq!(compressed.header("content-encoding"), Some("zstd"));
    assert_eq!(zstd::decode_all(&compressed.body[..]).unwrap(), dump);
}

#[test]
fn bad_and_absent_requests() {
    let f = Fixture::get();
    let store = ChrootStore::with_paths(&[&f.lib]);
    let peerix = Peerix::serve(store.root(), &[]);
    let base = peerix.url();
    let status = |path: &str| curl(&format!("{base}{path}"), &["--path-as-is"]).status;

    assert_eq!(status(&format!("/{}.narinfo", "0".repeat(32))), 404);
    assert_eq!(status(&format!("/nar/{}.nar", "0".repeat(52))), 404);
    for malformed in [
        "/eeee.narinfo",
        "/%2e%2e.narinfo",
        &format!("/{}.narinfo", "e".repeat(32)),
        "/nar/zzz.nar",
    ] {
        assert_eq!(status(malformed), 400, "{malformed}");
    }
    for elsewhere in [
        "/../../etc/passwd",
        "/nar/..%2f..%2fetc%2fpasswd",
        "/nar/../../etc/passwd",
        "/nothing",
    ] {
        let response = curl(&format!("{base}{elsewhere}"), &["--path-as-is"]);
        assert!(
            matches!(response.status, 400 | 404),
            "{elsewhere}: {}",
            response.status
        );
        assert!(
            !String::from_utf8_lossy(&response.body).contains("root:"),
            "{elsewhere}"
        );
    }
}

#[test]
fn filters_hide_paths_on_every_route() {
    let f = Fixture::get();
    let store = ChrootStore::with_paths(&[&f.secrets, &f.lib]);
    let nar_path = format!("/nar/{}.nar", nar_hash_of(&store, &f.secrets).to_base32());
    let narinfo = format!("/{}.narinfo", hash_part(&f.secrets));
    let lib_narinfo = format!("/{}.narinfo", hash_part(&f.lib));

    let default = Peerix::serve(store.root(), &[]);
    assert_eq!(default.get(&narinfo).0, 404);
    assert_eq!(default.get(&nar_path).0, 404);
    assert_eq!(default.get(&lib_narinfo).0, 200);

    for flags in [&["--no-filter"][..], &["--no-default-filters"][..]] {
        let open = Peerix::serve(store.root(), flags);
        assert_eq!(open.get(&narinfo).0, 200, "{flags:?}");
        assert_eq!(open.get(&nar_path).0, 200, "{flags:?}");
    }

    let custom = Peerix::serve(store.root(), &["--filter-pattern", "*-fixture-lib-*"]);
    assert_eq!(custom.get(&lib_narinfo).0, 404);
    assert_eq!(custom.get(&narinfo).0, 404);
}

#[test]
fn streaming_a_large_nar_keeps_memory_flat() {
    let f = Fixture::get();
    let store = ChrootStore::with_paths(&[&f.big]);
    let peerix = Peerix::serve(store.root(), &[]);
    let url = nar_url(&peerix, &f.big);
    let before = peerix.peak_rss_kib();
    for args in [&[][..], &["-H", "Accept-Encoding: zstd"][..]] {
        let response = curl(&url, args);
        assert_eq!(response.status, 200);
        assert!(response.body.len() > 100 << 20, "{args:?}");
    }
    let grown_mib = (peerix.peak_rss_kib() - before) / 1024;
    assert!(
        grown_mib < 32,
        "serving a 100 MiB NAR grew the server by {grown_mib} MiB"
    );
}
