//! B's NAR cache (`--cache-size`) with curl as the client and A as the only holder: concurrent
//! and aborted fills of one NAR, a fill killed with B, and a byte flipped in a cached file. No
//! client ever receives a complete wrong body, and the NAR is fetched again when its file is
//! damaged.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{eventually, hash_part, ChrootStore, NixKey, Peerix};

const LOOPBACK: &str = "/ip4/127.0.0.1/tcp/0";

/// `len` bytes that differ with `seed`.
fn blob(len: usize, seed: u64) -> Vec<u8> {
    (0..len as u64)
        .map(|i| ((i.wrapping_mul(2_654_435_761) ^ seed) >> 5) as u8)
        .collect()
}

fn wait_for_narinfo(node: &Peerix, path: &str) {
    let narinfo = format!("/{}.narinfo", hash_part(path));
    eventually(Duration::from_secs(20), "no narinfo through B", || {
        node.get(&narinfo).0 == 200
    });
}

/// A curl downloading `url` into `out`, at most `rate` bytes per second if given.
fn start_curl(url: &str, out: &Path, rate: Option<&str>) -> Child {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "120", "-o"]).arg(out);
    if let Some(rate) = rate {
        cmd.args(["--limit-rate", rate]);
    }
    cmd.arg(url)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("curl is installed")
}

/// Waits for `curl`; whether it succeeded, and what it received.
fn finish_curl(mut curl: Child, out: &Path) -> (bool, Vec<u8>) {
    let status = curl.wait().unwrap();
    (status.success(), std::fs::read(out).unwrap_or_default())
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

fn cache_files(state: &Path) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let (mut kept, mut parts) = (Vec::new(), Vec::new());
    for entry in std::fs::read_dir(state.join("nar-cache")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "nar") {
            kept.push(path);
        } else {
            parts.push(path);
        }
    }
    (kept, parts)
}

/// A response is right, or visibly incomplete: never whole and wrong.
fn assert_never_whole_and_wrong(what: &str, complete: bool, body: &[u8], nar: &[u8]) {
    assert!(
        body == nar || (body.len() < nar.len() && !complete) || (!complete && body.is_empty()),
        "{what}: {} of {} bytes, curl {}",
        body.len(),
        nar.len(),
        if complete { "succeeded" } else { "failed" }
    );
    assert!(
        !(body.len() == nar.len() && body != nar),
        "{what}: a complete wrong body"
    );
}

#[test]
fn concurrent_aborted_and_damaged_cache_fills_never_give_a_wrong_body() {
    let scratch = tempfile::tempdir().unwrap();
    let key = NixKey::generate("upstream-test-1");
    let a_store = ChrootStore::empty();
    let first = a_store.add_file(scratch.path(), "cached-blob", &blob(24 << 20, 1));
    let second = a_store.add_file(scratch.path(), "killed-blob", &blob(8 << 20, 2));
    a_store.sign(&key.secret, &[&first, &second]);
    let a = Peerix::serve(
        a_store.root(),
        &[
            "--listen-addrs",
            LOOPBACK,
            "--trusted-public-key",
            &key.public,
        ],
    );
    let a_addr = a.p2p_addr();
    let b_state = tempfile::tempdir().unwrap();
    let b_args = [
        "--listen-addrs",
        LOOPBACK,
        "--trusted-public-key",
        &key.public,
        "--bootstrap-peers",
        &a_addr,
        "--cache-size",
        "256MiB",
    ];
    let b_store = ChrootStore::empty();
    let b = Peerix::serve_in(b_store.root(), b_state.path(), &b_args);
    wait_for_narinfo(&b, &first);
    let url = format!("{}/{}", b.url(), b.nar_url(&first));
    let nar = a_store.dump(&first);

    // Five readers at once: three slow ones killed mid-body, two that read it all.
    let out = |n: usize| scratch.path().join(format!("body-{n}"));
    let slow: Vec<Child> = (0..3)
        .map(|n| start_curl(&url, &out(n), Some("1M")))
        .collect();
    let fast: Vec<Child> = (3..5).map(|n| start_curl(&url, &out(n), None)).collect();
    for (n, mut curl) in slow.into_iter().enumerate() {
        eventually(Duration::from_secs(30), "a slow reader got nothing", || {
            file_len(&out(n)) > 256 << 10
        });
        curl.kill().unwrap();
        let (_, body) = finish_curl(curl, &out(n));
        assert!(
            body.len() < nar.len() && nar.starts_with(&body),
            "killed reader {n}"
        );
    }
    for (n, curl) in (3..5).zip(fast) {
        let (complete, body) = finish_curl(curl, &out(n));
        assert!(complete && body == nar, "reader {n}: {} bytes", body.len());
    }

    // Whether or not a killed reader was the one filling, the cache ends with the NAR kept
    // once and no temp file left.
    let mut refills = 0;
    eventually(Duration::from_secs(60), "the NAR never got cached", || {
        let (kept, parts) = cache_files(b_state.path());
        if kept.len() == 1 && parts.is_empty() {
            return true;
        }
        if parts.is_empty() {
            refills += 1;
            let (complete, body) = finish_curl(start_curl(&url, &out(9), None), &out(9));
            assert!(complete && body == nar);
        }
        false
    });
    println!("refills needed after the concurrent round: {refills}");

    // B killed while it fills another NAR: the temp file is gone after the restart and the NAR
    // comes whole.
    let second_url = b.nar_url(&second);
    let reader = start_curl(&format!("{}/{second_url}", b.url()), &out(10), Some("1M"));
    eventually(Duration::from_secs(30), "no fill started", || {
        !cache_files(b_state.path()).1.is_empty() && file_len(&out(10)) > 0
    });
    drop(b);
    let _ = finish_curl(reader, &out(10));
    assert!(
        !cache_files(b_state.path()).1.is_empty(),
        "the killed fill left its temp file"
    );
    let b = Peerix::serve_in(b_store.root(), b_state.path(), &b_args);
    let (kept, parts) = cache_files(b_state.path());
    assert!(parts.is_empty(), "stale temp files kept: {parts:?}");
    assert_eq!(kept.len(), 1);
    wait_for_narinfo(&b, &second);
    let (complete, body) = finish_curl(
        start_curl(&format!("{}/{second_url}", b.url()), &out(11), None),
        &out(11),
    );
    assert!(complete && body == a_store.dump(&second));

    // A byte flipped in the middle of the cached first NAR.
    let url = format!("{}/{}", b.url(), b.nar_url(&first));
    let cached = kept[0].clone();
    let mut bytes = std::fs::read(&cached).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&cached, &bytes).unwrap();
    let (complete, body) = finish_curl(start_curl(&url, &out(12), None), &out(12));
    println!(
        "damaged cache file: curl {}, {} of {} bytes",
        if complete { "succeeded" } else { "failed" },
        body.len(),
        nar.len()
    );
    assert_never_whole_and_wrong("from the damaged file", complete, &body, &nar);
    assert!(body != nar, "the damaged file was not read (test is void)");
    // The next request gets the right bytes, fetched from A again, and they are cached again.
    let (complete, body) = finish_curl(start_curl(&url, &out(13), None), &out(13));
    assert!(complete && body == nar, "refetch: {} bytes", body.len());
    eventually(Duration::from_secs(30), "not cached again", || {
        let (kept, parts) = cache_files(b_state.path());
        kept.len() == 2 && parts.is_empty()
    });
    drop(a);
    let (complete, body) = finish_curl(start_curl(&url, &out(14), None), &out(14));
    assert!(complete && body == nar, "from the cache, A gone");
}
