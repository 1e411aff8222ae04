//! `peerix ipfs ...` against running `peerix serve` nodes on loopback: one publishes a file, the
//! other connects to it and reads the file back by CID; what was added survives a kill; and a
//! node given `--ipfs-api` uses another node's kubo-style RPC as its fallback.

mod common;

use std::process::Command;

use common::{curl, ChrootStore, Peerix};
use serde_json::Value;
use sha2::{Digest, Sha256};

fn ipfs(node: &Peerix, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_peerix"))
        .args(["ipfs", "--api", &node.url()])
        .args(args)
        .output()
        .expect("peerix runs")
}

fn ok_stdout(output: std::process::Output) -> Vec<u8> {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// 3 MB of varied bytes in a file under `dir`: a DAG of a root and 12 leaves.
fn sample_file(dir: &tempfile::TempDir) -> (std::path::PathBuf, Vec<u8>) {
    let file = dir.path().join("content");
    let bytes: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&file, &bytes).unwrap();
    (file, bytes)
}

fn add(node: &Peerix, file: &std::path::Path) -> String {
    let out = ok_stdout(ipfs(node, &["add", file.to_str().unwrap()]));
    String::from_utf8(out).unwrap().trim().to_owned()
}

fn peer_id(node: &Peerix) -> String {
    let id: Value = serde_json::from_slice(&ok_stdout(ipfs(node, &["id"]))).unwrap();
    id["peer_id"].as_str().unwrap().to_owned()
}

#[test]
fn a_file_added_on_one_node_is_read_on_another() {
    let (store_a, store_b) = (ChrootStore::empty(), ChrootStore::empty());
    let a = Peerix::serve(store_a.root(), &[]);
    let b = Peerix::serve(store_b.root(), &[]);

    let id: Value = serde_json::from_slice(&ok_stdout(ipfs(&a, &["id"]))).unwrap();
    let peer_id = id["peer_id"].as_str().unwrap();
    let addr = id["multiaddrs"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .find(|a| a.starts_with("/ip4/127.0.0.1/tcp/"))
        .expect("a loopback TCP address")
        .to_owned();
    assert!(addr.ends_with(&format!("/p2p/{peer_id}")));

    let dir = tempfile::TempDir::new().unwrap();
    let (file, bytes) = sample_file(&dir);
    let cid = String::from_utf8(ok_stdout(ipfs(&a, &["add", file.to_str().unwrap()]))).unwrap();
    let expected = Command::new(env!("CARGO_BIN_EXE_peerix"))
        .args(["cid", "--cid-version", "1"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(
        cid,
        String::from_utf8(expected.stdout).unwrap(),
        "add prints the CID alone"
    );

    let connected = String::from_utf8(ok_stdout(ipfs(&b, &["connect", &addr]))).unwrap();
    assert_eq!(connected.trim(), format!("connect {peer_id} success"));
    // B learns A's DHT address from identify right after connecting: bounded wait for it.
    let mut providers = String::new();
    for _ in 0..50 {
        providers = String::from_utf8(ok_stdout(ipfs(&b, &["providers", cid.trim()]))).unwrap();
        if providers.lines().any(|l| l == peer_id) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(
        providers.lines().any(|l| l == peer_id),
        "providers: {providers:?}"
    );

    let fetched = ok_stdout(ipfs(&b, &["cat", cid.trim()]));
    assert!(fetched == bytes, "cat returned other bytes");

    // A's status counts what went to B.
    let status: Value = serde_json::from_slice(&ok_stdout(ipfs(&a, &["status"]))).unwrap();
    let node = &status["node"];
    assert_eq!(node["peer_id"], peer_id, "{status}");
    assert_eq!(
        node["nat_status"], "unknown",
        "offline nodes learn nothing of their NAT"
    );
    let b_id = self::peer_id(&b);
    let to_b = node["peers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["peer_id"] == b_id.as_str())
        .expect("B among A's peers");
    // The sample repeats every 8 chunks of 256 KiB: those 2 MiB at least went out.
    let distinct = 8 * 262_144;
    assert!(to_b["bytes_out"].as_u64().unwrap() >= distinct, "{status}");
    assert!(node["bytes_out"].as_u64().unwrap() >= distinct);

    let refused = ipfs(&b, &["cat", "bafkreinot-a-cid"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("cat:"));
}

#[test]
fn what_was_added_survives_a_kill() {
    let store = ChrootStore::empty();
    let dir = tempfile::TempDir::new().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    let (file, bytes) = sample_file(&dir);

    let a = Peerix::serve_in(store.root(), &state, &[]);
    let cid = add(&a, &file);
    let a_id = peer_id(&a);
    // SIGKILL: no shutdown code runs.
    drop(a);

    let a = Peerix::serve_in(store.root(), &state, &[]);
    assert_eq!(peer_id(&a), a_id, "the identity is kept");
    let fetched = ok_stdout(ipfs(&a, &["cat", &cid]));
    assert!(fetched == bytes, "the node reads its own content back");

    // block/get answers the root's raw bytes, which hash to the CID.
    let root = curl(
        &format!("{}/api/v0/block/get?arg={cid}", a.url()),
        &["-X", "POST"],
    );
    assert_eq!(root.status, 200);
    let parsed = cid::Cid::try_from(cid.as_str()).unwrap();
    assert_eq!(
        parsed.hash().digest(),
        Sha256::digest(&root.body).as_slice()
    );
    let missing = curl(
        &format!(
            "{}/api/v0/block/get?arg=bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku",
            a.url()
        ),
        &["-X", "POST"],
    );
    assert_eq!(missing.status, 500, "an absent block is an error");

    // The provided key was kept too: announced again at start, a new peer finds it in the DHT.
    let b = Peerix::serve(store.root(), &[]);
    let addr = a.p2p_addr();
    ok_stdout(ipfs(&b, &["connect", &addr]));
    let found = (0..50).any(|_| {
        let providers = String::from_utf8(ok_stdout(ipfs(&b, &["providers", &cid]))).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(100));
        providers.lines().any(|l| l == a_id)
    });
    assert!(found, "the restarted node is a provider again");
}

#[test]
fn a_kubo_rpc_is_the_fallback_and_can_replace_the_node() {
    let store = ChrootStore::empty();
    let dir = tempfile::TempDir::new().unwrap();
    let (file, bytes) = sample_file(&dir);
    // A plays kubo: its RPC has kubo's shape. B and C never connect to it over libp2p.
    let a = Peerix::serve(store.root(), &[]);
    let api = a.url();
    let b = Peerix::serve(store.root(), &["--ipfs-api", &api]);
    let c = Peerix::serve(store.root(), &["--ipfs-api", &api, "--no-embedded-node"]);
    let a_id = peer_id(&a);

    let cid = add(&a, &file);
    let fetched = ok_stdout(ipfs(&b, &["cat", &cid]));
    assert!(
        fetched == bytes,
        "B reads through A's RPC when its own node has nothing"
    );
    let providers = String::from_utf8(ok_stdout(ipfs(&b, &["providers", &cid]))).unwrap();
    assert!(providers.lines().any(|l| l == a_id), "{providers:?}");

    assert_eq!(
        peer_id(&c),
        a_id,
        "without a node of its own, C speaks for A"
    );
    let other = dir.path().join("other");
    std::fs::write(&other, b"added through C").unwrap();
    let other_cid = add(&c, &other);
    assert_eq!(
        ok_stdout(ipfs(&a, &["cat", &other_cid])),
        b"added through C"
    );

    // B adds to its own node and to A's: both can then serve it.
    let third = dir.path().join("third");
    std::fs::write(&third, b"added through B").unwrap();
    let third_cid = add(&b, &third);
    assert_eq!(
        ok_stdout(ipfs(&a, &["cat", &third_cid])),
        b"added through B"
    );
    assert_eq!(
        ok_stdout(ipfs(&b, &["cat", &third_cid])),
        b"added through B"
    );
}

#[test]
fn the_api_option_is_accepted_after_the_command() {
    let store = ChrootStore::empty();
    let a = Peerix::serve(store.root(), &[]);
    let dir = tempfile::TempDir::new().unwrap();
    let file = dir.path().join("after");
    std::fs::write(&file, b"--api after the command, as kubo takes it").unwrap();
    let expected = Command::new(env!("CARGO_BIN_EXE_peerix"))
        .args(["cid", "--cid-version", "1"])
        .arg(&file)
        .output()
        .unwrap();
    // The server is on a random port: only the option given after the command reaches it.
    let added = Command::new(env!("CARGO_BIN_EXE_peerix"))
        .args(["ipfs", "add", "--api", &a.url()])
        .arg(&file)
        .env_remove("PEERIX_API")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8(ok_stdout(added)).unwrap(),
        String::from_utf8(expected.stdout).unwrap()
    );
    let id = Command::new(env!("CARGO_BIN_EXE_peerix"))
        .args(["ipfs", "id", "--api", &a.url()])
        .output()
        .unwrap();
    let id: Value = serde_json::from_slice(&ok_stdout(id)).unwrap();
    assert_eq!(id["peer_id"].as_str(), Some(peer_id(&a).as_str()));
}
