//! A node's libp2p address, as other nodes in a bench dial it.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::servers::ServerProcess;
use crate::BenchResult;

/// A's `/ip4/127.0.0.1/tcp/PORT/p2p/ID`, from `peerix ipfs id` (polled until it lists one).
pub(crate) fn loopback_p2p_addr(node: &ServerProcess, timeout: Duration) -> BenchResult<String> {
    let api = format!("http://{}", node.addr);
    let deadline = Instant::now() + timeout;
    loop {
        let output = Command::new(crate::bench_env::peerix_bin())
            .args(["ipfs", "--api", &api, "id"])
            .output()?;
        if output.status.success() {
            let id: serde_json::Value = serde_json::from_slice(&output.stdout)?;
            let loopback = id["multiaddrs"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(serde_json::Value::as_str)
                .find(|addr| addr.starts_with("/ip4/127.0.0.1/tcp/"));
            let peer_id = id["peer_id"].as_str();
            match (loopback, peer_id) {
                (Some(addr), _) if addr.contains("/p2p/") => return Ok(addr.to_owned()),
                (Some(addr), Some(peer_id)) => return Ok(format!("{addr}/p2p/{peer_id}")),
                _ => {}
            }
        }
        if Instant::now() >= deadline {
            let stdout = String::from_utf8_lossy(&output.stdout);
            return Err(format!("no loopback TCP address from `peerix ipfs id`: {stdout}").into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
