//! What a node's control routes changed, read through `peerix ipfs` as a user would: whether
//! announcements run, whom it is connected to, what uploads it stored.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use super::{run, Peerix};

/// `peerix ipfs --api <node> ARGS`, which must succeed; its output.
pub fn ipfs(node: &Peerix, args: &[&str]) -> Vec<u8> {
    let mut command = Command::new(env!("CARGO_BIN_EXE_peerix"));
    command.args(["ipfs", "--api", &node.url()]).args(args);
    run(&mut command).stdout
}

/// `POST <node><route>` of a control route, which must answer 200: the state it leaves.
pub fn press(node: &Peerix, route: &str) -> Value {
    let answer = super::curl(&format!("{}{route}", node.url()), &["-X", "POST"]);
    assert_eq!(
        answer.status,
        200,
        "{route}: {}",
        String::from_utf8_lossy(&answer.body)
    );
    serde_json::from_slice(&answer.body).unwrap()
}

/// Whether the node's DHT announcements are paused.
pub fn announcements_paused(node: &Peerix) -> bool {
    let status: Value = serde_json::from_slice(&ipfs(node, &["status"])).unwrap();
    status["announcements_paused"]
        .as_bool()
        .unwrap_or_else(|| panic!("no announcements_paused in {status}"))
}

/// How many peers the node is connected to.
pub fn peer_count(node: &Peerix) -> usize {
    String::from_utf8(ipfs(node, &["peers"]))
        .unwrap()
        .lines()
        .count()
}

/// Whether `peerix ipfs connect` from `from` to the multiaddr `to` succeeds.
pub fn connect(from: &Peerix, to: &str) -> bool {
    Command::new(env!("CARGO_BIN_EXE_peerix"))
        .args(["ipfs", "--api", &from.url(), "connect", to])
        .output()
        .unwrap()
        .status
        .success()
}

/// Files in the state dir's `added` directory (where uploads go), none when it does not exist.
pub fn added_files(state: &Path) -> Vec<String> {
    match std::fs::read_dir(state.join("added")) {
        Ok(entries) => entries
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    }
}
