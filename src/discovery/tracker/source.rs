//! The tracker as a source of holders: for a path the network's membership set says someone
//! holds, ask the tracker who, connect to them, and hand them to [`Holders`] like any other
//! holder. A path outside the set costs no request at all.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cid::Cid;
use futures_util::future::join_all;
use peerix_http::StoreHash;
use peerix_node::{Multiaddr, NodeHandle, PeerId, Protocol};
use serde_json::{json, Value};

use super::client::{TrackerClient, TrackerError};
use super::membership::Membership;
use super::transfers::TransferReports;
use crate::discovery::Holders;

/// Providers of one path connected to at most.
const PROVIDERS: usize = 8;
/// Peers listed by the tracker kept connected to, besides those a lookup needs.
const MET_PEERS: usize = 16;
/// Addresses of one provider tried at most.
const ADDRS_PER_PROVIDER: usize = 8;
/// How long connecting to a provider may take, all its addresses together.
const DIAL_DEADLINE: Duration = Duration::from_secs(3);

/// Whether the tracker answers, told once in the log each time it changes: an unreachable
/// tracker is said once (at start too, if it never answered), not at every retry.
#[derive(Default)]
pub struct TrackerHealth {
    /// [`REACHABLE`], [`UNREACHABLE`], or 0 before the first answer or failure.
    state: AtomicU8,
    last_error: Mutex<Option<String>>,
}

const REACHABLE: u8 = 1;
const UNREACHABLE: u8 = 2;

impl TrackerHealth {
    pub fn is_reachable(&self) -> bool {
        self.state.load(Ordering::Acquire) == REACHABLE
    }

    pub fn succeeded(&self, url: &str) {
        if self.became(REACHABLE) {
            tracing::info!(tracker = url, "tracker reachable");
        }
    }

    pub fn failed(&self, url: &str, error: &TrackerError) {
        if self.became(UNREACHABLE) {
            tracing::warn!(tracker = url, %error, "tracker unreachable: serving what is known, retrying (is --tracker-url right, and the tracker running?)");
        }
        if let Ok(mut last) = self.last_error.lock() {
            *last = Some(error.to_string());
        }
    }

    /// Moves to `state`; whether that is a change, to be told.
    fn became(&self, state: u8) -> bool {
        self.state.swap(state, Ordering::AcqRel) != state
    }

    fn last_error(&self) -> Option<String> {
        self.last_error.lock().ok().and_then(|e| e.clone())
    }
}

pub struct TrackerSource {
    pub(super) client: TrackerClient,
    pub(super) membership: Membership,
    pub(super) health: TrackerHealth,
    holders: Arc<Holders>,
    /// The node holders are dialled with; `None` under kubo alone (`--no-embedded-node`),
    /// which only announces and reads CIDs.
    node: Option<NodeHandle>,
    reports: TransferReports,
    /// Whether the tracker runs on this host: only then can the loopback addresses it lists
    /// (a peer's own listen addresses) be the peer's rather than this node's own.
    tracker_on_loopback: bool,
}

impl TrackerSource {
    /// Starts the task that reports transfers too.
    pub fn new(client: TrackerClient, holders: Arc<Holders>, node: Option<NodeHandle>) -> Self {
        Self {
            reports: TransferReports::start(client.clone(), client.peer_id()),
            tracker_on_loopback: is_loopback_url(client.url()),
            client,
            membership: Membership::default(),
            health: TrackerHealth::default(),
            holders,
            node,
        }
    }

    /// The holders of `hash` the tracker names that this node is connected to now (they are
    /// recorded in [`Holders`] too); none at once for a path the network does not hold, or
    /// while the tracker does not answer.
    pub async fn find(&self, hash: StoreHash) -> Vec<PeerId> {
        let reachable = self.node.is_some() && self.health.is_reachable();
        if !reachable || !self.membership.probably_held(&hash) {
            return Vec::new();
        }
        let answer = match self.client.find(hash).await {
            Ok(answer) => answer,
            Err(e) => {
                self.health.failed(self.client.url(), &e);
                return Vec::new();
            }
        };
        let providers = answer
            .providers
            .iter()
            .map(|p| (p.libp2p_peer_id.as_str(), p.multiaddrs.as_slice()));
        let connected = self.connected_peers().await;
        let reached = self.connect(providers, PROVIDERS, &connected).await;
        self.holders.learn(hash, reached.clone());
        reached
    }

    /// The CID the tracker maps `hash`'s NAR to, for a path the network holds (none at once for
    /// another, or while the tracker does not answer).
    pub async fn cid(&self, hash: StoreHash) -> Option<Cid> {
        if !self.membership.probably_held(&hash) || !self.health.is_reachable() {
            return None;
        }
        self.client
            .cid(hash)
            .await
            .inspect_err(|e| self.health.failed(self.client.url(), e))
            .ok()
            .flatten()
    }

    /// Connects to some of the tracker's peers (a random few each time), so that the index
    /// protocol tells what they hold before Nix asks: their paths are then hits from memory.
    /// Once the node has [`MET_PEERS`] peers, it looks for no more.
    pub(super) async fn meet_peers(&self) -> Result<(), TrackerError> {
        if self.node.is_none() {
            return Ok(());
        }
        let connected = self.connected_peers().await;
        if connected.len() >= MET_PEERS {
            return Ok(());
        }
        let answer = self.client.sample_peers(MET_PEERS + 1).await?;
        let peers = answer
            .peers
            .iter()
            .map(|p| (p.libp2p_peer_id.as_str(), p.multiaddrs.as_slice()));
        self.connect(peers, MET_PEERS, &connected).await;
        Ok(())
    }

    async fn connected_peers(&self) -> HashSet<PeerId> {
        let Some(node) = &self.node else {
            return HashSet::new();
        };
        node.status()
            .await
            .map(|status| status.peers.iter().map(|p| p.peer_id).collect())
            .unwrap_or_default()
    }

    /// Connects to at most `max` of `providers` (this node left out), at once, unless they are
    /// among the `connected`; returns those connected now.
    async fn connect<'a>(
        &self,
        providers: impl Iterator<Item = (&'a str, &'a [String])>,
        max: usize,
        connected: &HashSet<PeerId>,
    ) -> Vec<PeerId> {
        let Some(node) = &self.node else {
            return Vec::new();
        };
        let me = node.peer_id();
        let providers: Vec<(PeerId, Vec<Multiaddr>)> = providers
            .filter_map(|(peer, addrs)| provider_addrs(peer, addrs, self.tracker_on_loopback))
            .filter(|(peer, _)| *peer != me)
            .take(max)
            .collect();
        let reached = join_all(providers.into_iter().map(|(peer, addrs)| {
            let connected = connected.contains(&peer);
            async move {
                let reached = connected
                    || tokio::time::timeout(DIAL_DEADLINE, dial(node, peer, addrs))
                        .await
                        .unwrap_or(false);
                reached.then_some(peer)
            }
        }))
        .await;
        reached.into_iter().flatten().collect()
    }

    /// Where transfers are reported.
    pub fn reports(&self) -> &TransferReports {
        &self.reports
    }

    pub(super) fn node(&self) -> Option<&NodeHandle> {
        self.node.as_ref()
    }

    /// What `/status` says of the tracker.
    pub fn status(&self) -> Value {
        json!({
            "url": self.client.url(),
            "reachable": self.health.is_reachable(),
            "last_error": self.health.last_error(),
            "network_paths": self.membership.len(),
        })
    }
}

/// Tries every address of `addrs` at once; true once connected to `peer` itself.
async fn dial(node: &NodeHandle, peer: PeerId, addrs: Vec<Multiaddr>) -> bool {
    match node.dial_peer_at(peer, addrs).await {
        Ok(()) => true,
        Err(e) => {
            tracing::debug!(%peer, error = %e, "tracker's addresses unreachable");
            false
        }
    }
}

/// A provider's peer id and those of its addresses that name it, each ending in `/p2p/<its id>`;
/// loopback ones only with `loopback` (dialled elsewhere, they reach this very host).
fn provider_addrs(
    peer: &str,
    addrs: &[String],
    loopback: bool,
) -> Option<(PeerId, Vec<Multiaddr>)> {
    let peer: PeerId = peer.parse().ok()?;
    let addrs = addrs
        .iter()
        .filter_map(|a| a.parse::<Multiaddr>().ok())
        .filter(|a| matches!(a.iter().last(), Some(Protocol::P2p(id)) if id == peer))
        .filter(|a| loopback || !is_loopback(a))
        .take(ADDRS_PER_PROVIDER)
        .collect();
    Some((peer, addrs))
}

fn is_loopback(addr: &Multiaddr) -> bool {
    match addr.iter().next() {
        Some(Protocol::Ip4(ip)) => ip.is_loopback(),
        Some(Protocol::Ip6(ip)) => ip.is_loopback(),
        _ => false,
    }
}

/// Whether `url`'s host names this machine.
fn is_loopback_url(url: &str) -> bool {
    let authority = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = authority.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = match host_port.find(']') {
        Some(end) if host_port.starts_with('[') => &host_port[..=end],
        _ => host_port.split(':').next().unwrap_or_default(),
    };
    peerix_http::is_loopback_name(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreachable_tracker_is_told_once_even_if_it_never_answered() {
        let health = TrackerHealth::default();
        assert!(!health.is_reachable());
        // Unreachable from the start: told; the retries are not.
        assert!(health.became(UNREACHABLE));
        assert!(!health.became(UNREACHABLE));
        assert!(health.became(REACHABLE));
        assert!(!health.became(REACHABLE));
        assert!(health.is_reachable());
        // Lost again after it answered: told again.
        assert!(health.became(UNREACHABLE));
        assert!(!health.is_reachable());
    }

    #[test]
    fn loopback_addresses_only_from_a_tracker_on_this_host() {
        for url in [
            "http://127.0.0.1:12305",
            "http://localhost/",
            "https://[::1]:8/x",
        ] {
            assert!(is_loopback_url(url), "{url}");
        }
        for url in [
            "http://203.0.113.3:12305",
            "http://tracker.example",
            "http://[2001:db8::1]",
        ] {
            assert!(!is_loopback_url(url), "{url}");
        }
        let peer = PeerId::random();
        let addrs = [
            format!("/ip4/127.0.0.1/tcp/4001/p2p/{peer}"),
            format!("/ip6/::1/tcp/4001/p2p/{peer}"),
            format!("/ip4/10.0.1.2/tcp/4001/p2p/{peer}"),
        ];
        let (_, remote) = provider_addrs(&peer.to_string(), &addrs, false).unwrap();
        assert_eq!(remote, vec![addrs[2].parse::<Multiaddr>().unwrap()]);
        let (_, local) = provider_addrs(&peer.to_string(), &addrs, true).unwrap();
        assert_eq!(local.len(), 3);
    }
}
