//! `peerix ipfs ...` against two running `peerix serve` nodes on loopback: one publishes a file,
//! the other connects to it and reads the file back by CID.

mod common;

use std::process::Command;

use common::{ChrootStore, Peerix};
use serde_json::Value;

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
    let file = dir.path().join("content");
    let bytes: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&file, &bytes).unwrap();
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

    let refused = ipfs(&b, &["cat", "bafkreinot-a-cid"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("cat:"));
}
