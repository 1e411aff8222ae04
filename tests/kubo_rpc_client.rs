//! kubo's official JS client, kubo-rpc-client (tests/interop/kubo_rpc_client.mjs), against the
//! kubo-style RPC of `peerix serve` on loopback: every call it makes must succeed and agree with
//! `peerix ipfs`, `peerix cid` and the file itself. scripts/test installs Node.js and the client.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::interop::{run_node_script, ScriptRun};
use common::{ChrootStore, Peerix};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The whole script (a dozen calls, 3 MB each way) takes about a second.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);
/// Only loopback: no libp2p listener on any other interface.
const LOOPBACK: [&str; 2] = ["--listen-addrs", "/ip4/127.0.0.1/tcp/0"];

fn node_installed() -> bool {
    Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn peerix(args: &[&str]) -> Vec<u8> {
    common::run(Command::new(env!("CARGO_BIN_EXE_peerix")).args(args)).stdout
}

fn ipfs_id(node: &Peerix) -> Value {
    serde_json::from_slice(&peerix(&["ipfs", "--api", &node.url(), "id"])).unwrap()
}

fn cid_v1(file: &Path) -> String {
    let out = peerix(&["cid", "--cid-version", "1", file.to_str().unwrap()]);
    String::from_utf8(out).unwrap().trim().to_owned()
}

/// Runs the client script against `url`, killed after [`SCRIPT_TIMEOUT`]; returns its JSON line.
fn run_client(url: &str, file: &Path) -> Value {
    let file = file.to_str().unwrap();
    let ScriptRun {
        status,
        stdout,
        stderr,
    } = run_node_script("kubo_rpc_client.mjs", &[url, file], SCRIPT_TIMEOUT);
    assert!(
        status.success(),
        "kubo-rpc-client failed ({status}): {stdout}\n{stderr}\n\
         (is it installed? npm ci --prefix tests/interop)"
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout:?}"))
}

#[test]
fn kubo_rpc_client_drives_peerix() {
    if !node_installed() {
        eprintln!("skipped: Node.js is not installed (scripts/test installs it)");
        return;
    }
    let (store_a, store_b) = (ChrootStore::empty(), ChrootStore::empty());
    let a = Peerix::serve(store_a.root(), &LOOPBACK);
    let b = Peerix::serve(store_b.root(), &LOOPBACK);

    // A is connected to B, so that swarm.peers has something to list.
    let a_id = ipfs_id(&a)["peer_id"].as_str().unwrap().to_owned();
    let b_identity = ipfs_id(&b);
    let b_id = b_identity["peer_id"].as_str().unwrap().to_owned();
    let b_addr = b_identity["multiaddrs"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .find(|addr| addr.starts_with("/ip4/127.0.0.1/tcp/"))
        .expect("a loopback TCP address")
        .to_owned();
    peerix(&["ipfs", "--api", &a.url(), "connect", &b_addr]);

    // 3 MB of varied bytes: a root and 12 raw leaves.
    let dir = tempfile::TempDir::new().unwrap();
    let file = dir.path().join("content");
    let bytes: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&file, &bytes).unwrap();

    let got = run_client(&a.url(), &file);
    let report = got.to_string();

    assert_eq!(got["peer_id"], a_id.as_str(), "{report}");
    assert_eq!(
        got["public_key_matches_id"], true,
        "id's PublicKey is the key the peer id comes from: {report}"
    );

    let cid = got["cid"].as_str().unwrap();
    assert_eq!(cid, cid_v1(&file), "{report}");
    assert_eq!(got["cid_version"], 1);
    // kubo reports the DAG's cumulative size: the root's bytes and the leaves'.
    let root_len = got["block_length"].as_u64().unwrap();
    assert_eq!(
        got["added_size"].as_u64().unwrap(),
        bytes.len() as u64 + root_len,
        "{report}"
    );
    // A nameless file is named by its CID, as kubo does.
    assert_eq!(got["added_path"], cid, "{report}");
    // Without options the client asks for kubo's defaults (CIDv0); Peerix answers CIDv1, as a
    // kubo with Import.CidVersion = 1 does, and refuses an explicit CIDv0.
    assert_eq!(got["default_add"]["cid"], cid, "{report}");
    let refused = got["errors"]["cid_version_0"].as_str().unwrap_or_default();
    assert!(refused.contains("cid-version=0"), "{report}");

    // The client's file name comes back decoded, with the CID of its content.
    let named = dir.path().join("named");
    std::fs::write(&named, "kubo-rpc-client against Peerix\n").unwrap();
    assert_eq!(got["named_add"]["path"], "peerix interop.txt", "{report}");
    assert_eq!(got["named_add"]["cid"], cid_v1(&named).as_str(), "{report}");

    assert_eq!(
        got["cat_sha256"],
        hex(&Sha256::digest(&bytes)).as_str(),
        "{report}"
    );
    assert_eq!(got["cat_length"], bytes.len(), "{report}");

    // block.get returned the root: the bytes its CID hashes.
    let parsed = cid::Cid::try_from(cid).unwrap();
    assert_eq!(
        got["block_sha256"],
        hex(parsed.hash().digest()).as_str(),
        "{report}"
    );
    assert!(root_len > 0 && root_len < 4096, "{report}");

    let peers = got["swarm_peers"].as_array().unwrap();
    assert!(
        peers.iter().any(|p| p["peer"] == b_id.as_str()
            && p["addr"]
                .as_str()
                .unwrap()
                .starts_with("/ip4/127.0.0.1/tcp/")),
        "B among A's peers: {report}"
    );

    // The node provides what it added, and lists itself, as kubo does.
    let providers = got["findprovs"]["providers"].as_array().unwrap();
    assert!(providers.iter().any(|p| p == a_id.as_str()), "{report}");
    assert!(
        got["findprovs"]["events"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e == "PROVIDER"),
        "{report}"
    );
    // kubo streams the DHT's query events while providing; the embedded node reports none.
    assert_eq!(got["provide"]["events"], serde_json::json!([]), "{report}");

    // Errors reach the client with kubo's shape: it raises the node's own message.
    let missing = got["errors"]["missing_block"].as_str().unwrap_or_default();
    assert!(missing.contains("not found"), "{report}");
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
