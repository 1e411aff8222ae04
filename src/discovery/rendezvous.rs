//! Finding Peerix nodes one is not connected to: every node announces one key for its network
//! in the DHT and connects to the others that announce it; the index protocol then tells what
//! they hold. So a path held anywhere in the network is known without a lookup per request, and
//! a path held by nobody stays a 404 at once.
//!
//! The key is announced and looked up in every DHT the node takes part in: the private one of
//! its network id, and in `--mode ipfs` the public IPFS DHT as well, which is how two nodes in
//! different homes meet with nothing configured (`--mode libp2p` never touches the public DHT).

use std::time::Duration;

use cid::Cid;
use peerix_node::block::{sha256_multihash, RAW};
use peerix_node::NodeHandle;

/// The first rounds come quickly (the DHT fills as nodes join), later ones rarely.
const FIRST_ROUND: Duration = Duration::from_secs(5);
const LAST_ROUND: Duration = Duration::from_secs(300);
/// Nodes connected to through discovery, at most, per round.
const DIALS_PER_ROUND: usize = 32;

/// The key every node of `network_id` announces.
pub fn rendezvous_key(network_id: &str) -> Cid {
    let text = format!("peerix rendezvous for network {network_id}");
    Cid::new_v1(RAW, sha256_multihash(text.as_bytes()))
}

/// Announces this node under the network's key and connects to the others found there, in
/// rounds further and further apart.
pub async fn run(node: NodeHandle, network_id: String) {
    let key = rendezvous_key(&network_id);
    let mut pause = FIRST_ROUND;
    loop {
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(LAST_ROUND);
        if let Err(e) = node.provide(&key).await {
            tracing::debug!(error = %e, "cannot announce this node to its network");
        }
        let found = match node.find_providers(&key).await {
            Ok(found) => found,
            Err(e) => {
                tracing::debug!(error = %e, "cannot look for the network's nodes");
                continue;
            }
        };
        let connected: Vec<_> = match node.status().await {
            Ok(status) => status.peers.into_iter().map(|p| p.peer_id).collect(),
            Err(_) => return,
        };
        let new = found
            .into_iter()
            .filter(|p| *p != node.peer_id() && !connected.contains(p))
            .take(DIALS_PER_ROUND);
        for peer in new {
            match node.dial_peer(peer).await {
                Ok(()) => tracing::info!(%peer, "found through the DHT"),
                Err(e) => tracing::debug!(%peer, error = %e, "cannot reach a node of the network"),
            }
        }
    }
}
