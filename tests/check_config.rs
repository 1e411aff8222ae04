//! `peerix serve --check-config` and `peerix tracker --check-config`: good settings are
//! summarized with exit 0 while nothing is bound, started or written; each kind of bad setting
//! exits 2 with a message naming its flag.

mod common;

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output};

use common::{ChrootStore, NixKey};
use tempfile::TempDir;

fn peerix(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_peerix"))
        .args(args)
        .envs(env.iter().copied())
        .env_remove("NIX_SECRET_KEY_FILE")
        .env_remove("STATE_DIRECTORY")
        .output()
        .expect("peerix runs")
}

fn texts(out: &Output) -> (String, String) {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    eprintln!("stdout:\n{stdout}stderr:\n{stderr}");
    (stdout, stderr)
}

/// `serve --check-config` with a store and a state dir of its own, and `extra`.
fn check_serve(state: &Path, extra: &[&str], env: &[(&str, &str)]) -> Output {
    let store = ChrootStore::empty();
    let root = store.root().to_str().unwrap().to_owned();
    let state = state.to_str().unwrap();
    let mut args = vec![
        "serve",
        "--check-config",
        "--offline",
        "--store-root",
        &root,
    ];
    args.extend(["--state-dir", state]);
    args.extend(extra);
    peerix(&args, env)
}

fn path_text(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn good_settings_are_summarized_with_nothing_bound_started_or_written() {
    let scratch = TempDir::new().unwrap();
    let state = scratch.path().join("state");
    let key = NixKey::generate("check-1");
    // The port a start would bind is held: the check neither binds it nor fails for it.
    let held = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port().to_string();
    let out = check_serve(
        &state,
        &[
            "--port",
            &port,
            "--mode",
            "hybrid",
            "--tracker-url",
            "http://127.0.0.1:9/",
            "--private-key",
            path_text(&key.secret),
            "--trusted-public-key",
            &key.public,
            "--filter-pattern",
            "*-secret-*",
            "--bandwidth-limit",
            "2MiB",
        ],
        &[],
    );
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    for fact in [
        "mode: hybrid".to_owned(),
        format!("http: http://127.0.0.1:{port}"),
        format!("state dir: {}", state.display()),
        "trusted keys: cache.nixos.org-1, check-1".to_owned(),
        "signing key: check-1".to_owned(),
        "tracker http://127.0.0.1:9/".to_owned(),
        "upstream cache: none".to_owned(),
        "peer traffic 2097152 bytes/s each way".to_owned(),
    ] {
        assert!(stdout.contains(&fact), "{fact:?} missing");
    }
    // A store without Nix's database is warned about, as a start does, not refused.
    assert!(stderr.contains("no Nix database"), "{stderr}");
    assert!(!state.exists(), "the state dir was created");
    assert_eq!(std::fs::read_dir(scratch.path()).unwrap().count(), 0);
    // Nobody took a connection on the held port in between either.
    held.set_nonblocking(true).unwrap();
    assert!(held.accept().is_err());
}

#[test]
fn no_default_trusted_keys_trusts_the_given_keys_alone() {
    let scratch = TempDir::new().unwrap();
    let state = scratch.path().join("state");
    let key = NixKey::generate("own-1");
    let given = ["--trusted-public-key", key.public.as_str()];
    let flag = [&given[..], &["--no-default-trusted-keys"]].concat();
    let out = check_serve(&state, &flag, &[]);
    let (stdout, _) = texts(&out);
    assert!(stdout.contains("trusted keys: own-1\n"), "{stdout}");
    let by_env = check_serve(&state, &given, &[("PEERIX_NO_DEFAULT_TRUSTED_KEYS", "1")]);
    assert!(texts(&by_env).0.contains("trusted keys: own-1\n"));
    let alone = check_serve(&state, &["--no-default-trusted-keys"], &[]);
    assert!(texts(&alone).0.contains("trusted keys: none\n"));
}

#[test]
fn kubo_alone_is_accepted_with_a_tracker_to_name_cids() {
    let scratch = TempDir::new().unwrap();
    let state = scratch.path().join("state");
    let kubo = ["--ipfs-api", "http://127.0.0.1:5001", "--no-embedded-node"];
    let tracker = [&kubo[..], &["--tracker-url", "http://127.0.0.1:12305"]].concat();
    let out = check_serve(&state, &tracker, &[]);
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stdout.contains("libp2p listen: none (no embedded node)"),
        "{stdout}"
    );
    assert!(stdout.contains("kubo at http://127.0.0.1:5001"), "{stdout}");
    assert!(!state.exists());
}

#[test]
fn each_bad_setting_exits_2_naming_its_flag() {
    let scratch = TempDir::new().unwrap();
    let state = scratch.path().join("state");
    let malformed_key = scratch.path().join("malformed.sec");
    std::fs::write(&malformed_key, "check-1:not base64!").unwrap();
    let unreadable_key = scratch.path().join("missing.sec");
    let a_file = scratch.path().join("a-file");
    std::fs::write(&a_file, "").unwrap();
    let below_a_file = a_file.join("state");
    let cases: &[(&[&str], &str)] = &[
        (
            &["--private-key", path_text(&unreadable_key)],
            "--private-key",
        ),
        (
            &["--private-key", path_text(&malformed_key)],
            "--private-key",
        ),
        (
            &["--trusted-public-key", "k-1:AAAA"],
            "--trusted-public-key",
        ),
        (
            &["--listen-addrs", "/ip4/300.0.0.1/tcp/1"],
            "--listen-addrs",
        ),
        (
            &["--bootstrap-peers", "/not-a-protocol"],
            "--bootstrap-peers",
        ),
        (&["--announce-addr", "not a host!"], "--announce-addr"),
        (&["--listen", "localhost:x"], "--listen"),
        (&["--tracker-url", "tracker:12305"], "--tracker-url"),
        (&["--upstream-cache", "cache.nixos.org"], "--upstream-cache"),
        (&["--bootstrap-url", "http://"], "--bootstrap-url"),
        (&["--ipfs-api", "ftp://127.0.0.1:5001"], "--ipfs-api"),
        (&["--filter-pattern", "*[z-a]"], "--filter-pattern"),
        (&["--mode", "wan"], "--mode wan needs --tracker-url"),
        (
            &["--pull-through"],
            "--pull-through needs an upstream cache",
        ),
        (
            &[
                "--pull-through",
                "--no-embedded-node",
                "--ipfs-api",
                "http://127.0.0.1:9",
            ],
            "drop --no-embedded-node",
        ),
        (&["--mode", "both"], "--mode both needs --tracker-url"),
        (
            &["--mode", "lan", "--tracker-url", "http://127.0.0.1:9"],
            "--mode lan uses no tracker",
        ),
        (&["--no-embedded-node"], "--ipfs-api"),
        (
            &["--ipfs-api", "http://127.0.0.1:5001", "--no-embedded-node"],
            "--no-embedded-node needs --tracker-url",
        ),
        (&["--mode", "nat"], "--mode"),
    ];
    for (flags, named) in cases {
        let out = check_serve(&state, flags, &[]);
        let (_, stderr) = texts(&out);
        assert_eq!(out.status.code(), Some(2), "{flags:?}: {stderr}");
        assert!(
            stderr.contains(named),
            "{flags:?}: {named:?} not in {stderr}"
        );
    }
    assert!(!state.exists());
    // A state dir that cannot be created: here, below a file.
    let out = check_serve(&below_a_file, &[], &[]);
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--state-dir"), "{stderr}");
}

fn check_tracker(extra: &[&str]) -> Output {
    let mut args = vec!["tracker", "--check-config", "--host", "127.0.0.1"];
    args.extend(extra);
    peerix(&args, &[])
}

#[test]
fn the_tracker_checks_its_database_path_and_flags_without_opening_anything() {
    let scratch = TempDir::new().unwrap();
    let db = scratch.path().join("tracker.redb");
    let held = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port().to_string();
    let good = ["--port", &port, "--db-path", path_text(&db), "--ttl", "60"];
    let out = check_tracker(&good);
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stdout.contains(&format!("http: http://127.0.0.1:{port}")));
    assert!(stdout.contains(&format!("database: {}", db.display())));
    assert!(stdout.contains("forgotten 60s after"));
    assert!(!db.exists(), "the database was created");

    let no_dir = scratch.path().join("missing/tracker.redb");
    let cases: &[(&[&str], &str)] = &[
        (&["--db-path", path_text(&no_dir)], "--db-path"),
        (&["--db-path", path_text(scratch.path())], "--db-path"),
        (&["--port", "70000"], "--port"),
        (&["--trust-proxy", "10.0.0.0/33"], "--trust-proxy"),
        (&["--ttl", "1"], "--ttl"),
    ];
    for (flags, named) in cases {
        let out = check_tracker(flags);
        let (_, stderr) = texts(&out);
        assert_eq!(out.status.code(), Some(2), "{flags:?}: {stderr}");
        assert!(
            stderr.contains(named),
            "{flags:?}: {named:?} not in {stderr}"
        );
    }
}
