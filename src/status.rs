//! `GET /status`: what this node is doing, as JSON for scripts and the dashboard: the publication
//! scan's progress, the size of the index, what connected peers hold, the embedded node's
//! reachability (NAT, relays, hole punching), and how many answers from others were refused.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use peerix_http::{BrowserGuard, FrontCounters};
use peerix_node::{
    AnnouncementStatus, BandwidthWaits, CapWaits, Multiaddr, NodeHandle, NodeStatus, PeerEvent,
    PeerId,
};
use serde_json::{json, Value};
use tokio::sync::broadcast;

use crate::build_id;
use crate::discovery::tracker::TrackerSource;
use crate::discovery::{Holders, PeerSources};
use crate::fetch::refusals::Refusals;
use crate::fetch::{Lookups, PullThrough, Served, Swarms};
use crate::lan::Lan;
use crate::publish::{Answered, IndexDb, ScanControl, ScanProgress};
use crate::throughput::Throughput;

/// Hole punching failures remembered (the latest ones).
const FAILURES_KEPT: usize = 32;
/// Refusals listed in full, the newest.
const REFUSALS_LISTED: usize = 20;

#[derive(Clone)]
pub struct StatusSources {
    /// `--mode`.
    pub mode: &'static str,
    /// Where this node looks for peers.
    pub discovery: PeerSources,
    /// What Nix got from this node, by source.
    pub served: Arc<Served>,
    pub progress: Arc<ScanProgress>,
    pub scan_control: Arc<ScanControl>,
    pub db: Arc<IndexDb>,
    pub holders: Arc<Holders>,
    pub node: NodeHandle,
    pub hole_punches: Arc<HolePunchLog>,
    pub tracker: Option<Arc<TrackerSource>>,
    pub lan: Option<Arc<Lan>>,
    pub pull_through: Option<Arc<PullThrough>>,
    /// Large NARs fetched with the near nodes fetching them too.
    pub swarms: Option<Arc<Swarms>>,
    pub refusals: Arc<Refusals>,
    /// Bytes per second over the last minutes, for the dashboard.
    pub throughput: Arc<Throughput>,
    /// Narinfo lookups by where they were tried.
    pub lookups: Arc<Lookups>,
    /// The front's counts of Nix's requests, the very ones `/metrics` renders.
    pub nix_requests: Arc<FrontCounters>,
    /// What this node answered its peers.
    pub answered: Arc<Answered>,
}

/// `/status`, behind `guard`: it tells what this machine holds and whom it talks to.
pub fn status_router(sources: StatusSources, guard: &BrowserGuard) -> Router {
    Router::new()
        .route("/status", get(status))
        // The old program's routes, which users' scripts call.
        .route("/dashboard-stats", get(status))
        .route("/scan-status", get(scan_status))
        .layer(guard.clone())
        .with_state(sources)
}

async fn scan_status(State(sources): State<StatusSources>) -> Json<Value> {
    Json(scan_json(&sources))
}

/// The publication scan's progress, and whether it is paused.
pub fn scan_json(sources: &StatusSources) -> Value {
    let mut scan = json!(sources.progress.report());
    scan["paused"] = json!(sources.scan_control.is_paused());
    scan
}

async fn status(State(sources): State<StatusSources>) -> Json<Value> {
    let db = sources.db.clone();
    let indexed = tokio::task::spawn_blocking(move || db.count().ok())
        .await
        .ok()
        .flatten();
    let (holders, remote_paths) = sources.holders.summary();
    let held_by_peer: serde_json::Map<String, Value> = sources
        .holders
        .per_peer()
        .into_iter()
        .map(|(peer, paths)| (peer.to_string(), json!(paths)))
        .collect();
    let node = match sources.node.status().await {
        Ok(status) => node_json(&status, &sources.hole_punches),
        Err(e) => json!({ "error": e.to_string() }),
    };
    Json(json!({
        "version": build_id::running().version,
        "build": build_id::running().id,
        "mode": sources.mode,
        "discovery": sources.discovery,
        "scan": scan_json(&sources),
        "indexed_paths": indexed,
        "peers": {
            "holders": holders,
            "paths": remote_paths,
            "held_by_peer": held_by_peer,
        },
        "node": node,
        "served": sources.served.json(),
        "transfers": sources.served.transfers.json(),
        "tracker": sources.tracker.as_ref().map(|t| t.status()),
        "lan": sources.lan.as_ref().map(|l| l.status()),
        "pull_through": sources.pull_through.as_ref().map(|p| p.status()),
        "swarm": sources.swarms.as_ref().map(|s| s.json()),
        "refusals": {
            "recent": sources.refusals.kept(),
            "latest": sources.refusals.recent(1).first().map(|r| r.to_json()),
            "newest": sources
                .refusals
                .recent(REFUSALS_LISTED)
                .iter()
                .map(|r| r.to_json())
                .collect::<Vec<_>>(),
            "by_kind": sources
                .refusals
                .by_kind()
                .map(|(kind, count)| (kind.to_owned(), json!(count)))
                .collect::<serde_json::Map<_, _>>(),
        },
        "lookups": sources.lookups.json(),
        "answered_peers": sources.answered.json(),
        "nix_requests": sources.nix_requests.json(),
    }))
}

/// The embedded node's status as JSON (also `peerix ipfs status`).
pub fn node_json(status: &NodeStatus, hole_punches: &HolePunchLog) -> Value {
    let strings =
        |addrs: &[Multiaddr]| -> Vec<String> { addrs.iter().map(ToString::to_string).collect() };
    let peers: Vec<Value> = status
        .peers
        .iter()
        .map(|p| {
            json!({
                "peer_id": p.peer_id.to_string(),
                "addr": p.addr.as_ref().map(ToString::to_string),
                "direct": p.direct,
                "relayed": p.relayed,
                "rtt_ms": p.rtt.map(|rtt| rtt.as_secs_f64() * 1000.0),
                "local_network": p.addr.as_ref().is_some_and(crate::cidr::on_local_network),
                "bytes_in": p.bytes_in,
                "bytes_out": p.bytes_out,
            })
        })
        .collect();
    json!({
        "peer_id": status.peer_id.to_string(),
        "nat_status": status.nat_status,
        "nat": {
            "reachability": status.nat_status,
            "mapping": status.nat_mapping,
            "hole_punching": hole_punching(status),
        },
        "listen_addrs": strings(&status.listen_addrs),
        "external_addrs": strings(&status.external_addrs),
        "relayed_addrs": strings(&status.relayed_addrs),
        "hole_punch_failures": hole_punches.report(),
        "bandwidth_limit": status.bandwidth_limit,
        "bandwidth_waits": bandwidth_waits_json(&status.bandwidth_waits),
        "secured_connections": {
            "tls_aes_gcm": status.secured.tls_aes_gcm,
            "tls_chacha20_poly1305": status.secured.tls_chacha20,
            "noise": status.secured.noise,
        },
        "provided_keys": status.provided_keys,
        "announcements": announcements_json(&status.announcements),
        "traffic_stopped": status.traffic_stopped,
        "bytes_in": status.bytes_in,
        "bytes_out": status.bytes_out,
        "peers": peers,
    })
}

/// How often, and how long in all, substreams waited for the bandwidth cap.
fn bandwidth_waits_json(waits: &BandwidthWaits) -> Value {
    let direction =
        |waits: &CapWaits| json!({ "waits": waits.waits, "seconds": waits.waited.as_secs_f64() });
    json!({ "in": direction(&waits.inbound), "out": direction(&waits.outbound) })
}

/// The DHT announcements (also the old program's `/announce-status`).
pub fn announcements_json(announcements: &AnnouncementStatus) -> Value {
    json!({
        "queued": announcements.queued,
        "running": announcements.running,
        "done": announcements.done,
        "paused": announcements.paused,
    })
}

/// What this node's NAT means for reaching peers behind other NATs.
fn hole_punching(status: &NodeStatus) -> &'static str {
    match (status.nat_status.as_str(), status.nat_mapping.as_str()) {
        ("public", _) => "not needed (publicly reachable)",
        (_, "symmetric") => "fails with peers behind symmetric NATs (this NAT is symmetric)",
        (_, "endpoint-independent") => "possible (this NAT keeps ports)",
        _ => "unknown yet",
    }
}

/// The latest hole punching failures the node reported, for the status.
#[derive(Default)]
pub struct HolePunchLog {
    failures: Mutex<VecDeque<(PeerId, String, Instant)>>,
}

impl HolePunchLog {
    /// A log kept current from `node`'s peer events.
    pub fn watch(node: &NodeHandle) -> Arc<Self> {
        let log = Arc::new(Self::default());
        let (mut events, kept) = (node.peer_events(), log.clone());
        tokio::spawn(async move {
            loop {
                match events.recv().await {
                    Ok(PeerEvent::HolePunchFailed { peer_id, error }) => {
                        kept.record(peer_id, error)
                    }
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        });
        log
    }

    fn record(&self, peer: PeerId, error: String) {
        if let Ok(mut failures) = self.failures.lock() {
            failures.retain(|(p, _, _)| *p != peer);
            if failures.len() >= FAILURES_KEPT {
                failures.pop_front();
            }
            failures.push_back((peer, error, Instant::now()));
        }
    }

    fn report(&self) -> Vec<Value> {
        let Ok(failures) = self.failures.lock() else {
            return Vec::new();
        };
        failures
            .iter()
            .map(|(peer, error, when)| {
                json!({
                    "peer_id": peer.to_string(),
                    "error": error,
                    "seconds_ago": when.elapsed().as_secs(),
                })
            })
            .collect()
    }
}
