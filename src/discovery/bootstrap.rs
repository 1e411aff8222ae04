//! `GET /bootstrap` tells other machines how to reach this node; `--bootstrap-url` reads that
//! answer from another machine at start, and again whenever this node has no peer left.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use peerix_node::{Multiaddr, NodeHandle};
use serde::{Deserialize, Serialize};

/// How often a node without peers asks its bootstrap URL again.
const RETRY: Duration = Duration::from_secs(30);
/// The answer is a few addresses: anything longer is not one.
const MAX_ANSWER: u64 = 64 << 10;

#[derive(Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct BootstrapInfo {
    pub peer_id: String,
    pub multiaddrs: Vec<String>,
    pub network_id: String,
}

struct Answer {
    node: NodeHandle,
    network_id: String,
}

/// The `GET /bootstrap` route.
pub fn router(node: NodeHandle, network_id: String) -> Router {
    Router::new()
        .route("/bootstrap", get(bootstrap))
        .with_state(Arc::new(Answer { node, network_id }))
}

async fn bootstrap(State(answer): State<Arc<Answer>>) -> Json<BootstrapInfo> {
    let status = answer.node.status().await.ok();
    let peer_id = answer.node.peer_id();
    let multiaddrs = status
        .map(|s| {
            s.advertised_addrs()
                .iter()
                .map(|a| format!("{a}/p2p/{peer_id}"))
                .collect()
        })
        .unwrap_or_default();
    Json(BootstrapInfo {
        peer_id: peer_id.to_string(),
        multiaddrs,
        network_id: answer.network_id.clone(),
    })
}

/// Parses another node's `/bootstrap` answer, keeping the addresses that end in its peer id.
pub fn parse_answer(text: &str, network_id: &str) -> Result<Vec<Multiaddr>, String> {
    let info: BootstrapInfo =
        serde_json::from_str(text).map_err(|e| format!("not a bootstrap answer: {e}"))?;
    if info.network_id != network_id {
        return Err(format!(
            "the node is in network {:?}, this one in {network_id:?}",
            info.network_id
        ));
    }
    let suffix = format!("/p2p/{}", info.peer_id);
    Ok(info
        .multiaddrs
        .iter()
        .filter(|a| a.ends_with(&suffix))
        .filter_map(|a| a.parse().ok())
        .collect())
}

fn fetch(url: &str, network_id: &str) -> Result<Vec<Multiaddr>, String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    let mut response = agent.get(url).call().map_err(|e| e.to_string())?;
    let text = response
        .body_mut()
        .with_config()
        .limit(MAX_ANSWER)
        .read_to_string()
        .map_err(|e| e.to_string())?;
    parse_answer(&text, network_id)
}

/// Dials the node behind `url` now, and again whenever this node has no peer left.
pub async fn follow(node: NodeHandle, url: String, network_id: String) {
    loop {
        let lonely = node.status().await.map_or(true, |s| s.peers.is_empty());
        if lonely {
            let (asked, net) = (url.clone(), network_id.clone());
            match tokio::task::spawn_blocking(move || fetch(&asked, &net)).await {
                Ok(Ok(addrs)) => {
                    for addr in addrs {
                        if let Err(e) = node.dial(addr.clone()).await {
                            tracing::debug!(%addr, error = %e, "bootstrap address unreachable");
                        }
                    }
                }
                Ok(Err(e)) => tracing::warn!(%url, error = %e, "cannot bootstrap"),
                Err(e) => tracing::warn!(%url, error = %e, "cannot bootstrap"),
            }
        }
        tokio::time::sleep(RETRY).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_only_the_announced_peers_addresses() {
        let id = "12D3KooWDYLLrp3RnEUWNAgF7JGaRrs2TunNTTaN3NW5aCpAVwtJ";
        let text = format!(
            r#"{{"peer_id":"{id}","network_id":"home","multiaddrs":["/ip4/10.0.0.2/tcp/13304/p2p/{id}","/ip4/10.0.0.3/tcp/1","garbage/p2p/{id}"]}}"#
        );
        let addrs = parse_answer(&text, "home").unwrap();
        assert_eq!(addrs.len(), 1);
        assert!(parse_answer(&text, "office").is_err());
        assert!(parse_answer("[]", "home").is_err());
        assert!(parse_answer("{", "home").is_err());
    }
}
