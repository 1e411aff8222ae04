//! Everything between this node and its peers: the publication scan and the store watcher, the
//! index protocol, answers to peers' requests, and the substitution that asks them.

use std::sync::Arc;
use std::time::Duration;

use peerix_node::{Identity, NodeHandle};

use super::{Settings, StartError};
use crate::cli::DEFAULT_NETWORK_ID;
use crate::discovery::tracker::{keep_in_step, report_served, TrackerClient, TrackerSource};
use crate::discovery::{run_index, Holders, PeerSources};
use crate::fetch::{
    NarCache, NarLog, NearMembers, PullThrough, PullThroughParts, Remote, Served, Swarms, Trust,
};
use crate::kubo_rpc::KuboRpc;
use crate::lan::Lan;
use crate::publish::{
    answer_requests, Answered, IndexDb, KuboPublisher, ScanControl, ScanProgress, Scanner,
    StoreContent,
};
use crate::status::{HolePunchLog, StatusSources};
use crate::store::{watch_store, SharedPaths};
use crate::throughput::Throughput;

/// How often the store database is checked for added or removed paths (a cheap query).
pub(super) const STORE_POLL: Duration = Duration::from_secs(2);
/// NAR ranges served and not yet added up for the tracker, at most.
const SERVED_QUEUE: usize = 1024;
/// The longest a request to the tracker may take.
const TRACKER_DEADLINE: Duration = Duration::from_secs(2);

/// Who talks to the tracker, and for which node.
pub(super) struct TrackerParts {
    pub(super) identity: Identity,
    /// Where the tracker's holders go.
    pub(super) holders: Arc<Holders>,
    /// The node that dials the holders; `None` under kubo alone, which dials none.
    pub(super) node: Option<NodeHandle>,
}

/// The tracker at `url`, kept in step with the paths this store shares.
pub(super) fn start_tracker(
    url: &str,
    parts: TrackerParts,
    http_port: u16,
    shared: &Arc<SharedPaths>,
    db: &Arc<IndexDb>,
) -> Arc<TrackerSource> {
    let client = TrackerClient::new(url, parts.identity, TRACKER_DEADLINE);
    let tracker = Arc::new(TrackerSource::new(client, parts.holders, parts.node));
    tokio::spawn(keep_in_step(
        tracker.clone(),
        shared.subscribe(),
        db.clone(),
        http_port,
    ));
    tracker
}

pub struct Peering {
    /// What the front asks for paths this store lacks.
    pub remote: Arc<Remote>,
    /// What it asks for paths no peer has either (`--pull-through`).
    pub pull_through: Option<Arc<PullThrough>>,
    /// What `/status` reports; `None` under kubo alone, which has no node to report on.
    pub status: Option<StatusSources>,
}

impl Peering {
    pub fn start(
        node: &NodeHandle,
        settings: &Settings,
        trust: Trust,
        content: Arc<StoreContent>,
        hole_punches: &Arc<HolePunchLog>,
        lan: Option<Arc<Lan>>,
    ) -> Result<Self, StartError> {
        let store = &settings.store;
        let db = Arc::new(IndexDb::open(&settings.state_dir.join("index.redb"))?);
        let shared = Arc::new(SharedPaths::default());
        let holders = Arc::new(Holders::default());
        let progress = Arc::new(ScanProgress::default());
        let scan_control = Arc::new(ScanControl::default());
        let kubo = settings.ipfs_api.as_deref().map(KuboRpc::new);
        let scanner = Scanner {
            store: store.clone(),
            content,
            node: Some(node.clone()),
            db: db.clone(),
            progress: progress.clone(),
            control: scan_control.clone(),
            kubo: kubo.clone().map(KuboPublisher::new),
        };
        tokio::spawn(scanner.run(shared.subscribe(), settings.scan_interval));
        let tracker = settings.tracker_url.as_deref().map(|url| {
            let parts = TrackerParts {
                identity: node.identity(),
                holders: holders.clone(),
                node: Some(node.clone()),
            };
            start_tracker(url, parts, settings.http_addr.port(), &shared, &db)
        });
        tokio::spawn(watch_store(store.clone(), shared.clone(), STORE_POLL));
        let shared_here = shared.subscribe();
        run_index(node.clone(), shared, holders.clone()).map_err(StartError::Node)?;
        // What this node serves is reported to the tracker, for the reputation of both sides.
        let served = tracker.as_ref().map(|tracker| {
            let (served, queue) = tokio::sync::mpsc::channel(SERVED_QUEUE);
            let reports = tracker.reports().clone();
            tokio::spawn(report_served(queue, store.clone(), reports, node.peer_id()));
            served
        });
        let answered = Arc::<Answered>::default();
        answer_requests(node, store.clone(), db.clone(), served, answered.clone())
            .map_err(StartError::Node)?;
        let (nar_cache, nars) = nar_stores(settings, &db)?;
        let members_are_near = settings.network_id != DEFAULT_NETWORK_ID;
        let near = Arc::new(NearMembers::new(
            node.clone(),
            holders.clone(),
            members_are_near,
        ));
        let swarms = Swarms::start(node.clone(), near.clone()).map_err(StartError::Node)?;
        let remote = Arc::new(
            Remote::new(
                Some(node.clone()),
                holders.clone(),
                trust,
                settings.filter.clone(),
                nars,
                nar_cache,
                tracker.clone(),
            )
            .with_lan(lan.clone())
            .with_kubo(kubo)
            .with_swarms(Some(swarms.clone()))
            .with_shared_here(shared_here),
        );
        // The same upstream the trust check asks: one connection pool, one memory of answers.
        let upstream = remote
            .trust
            .upstream
            .clone()
            .filter(|_| settings.pull_through);
        let pull_through = upstream
            .map(|upstream| {
                PullThrough::start(PullThroughParts {
                    node: node.clone(),
                    upstream,
                    state_dir: settings.state_dir.clone(),
                    cache_size: settings.cache_size,
                    near,
                    remote: remote.clone(),
                })
            })
            .transpose()
            .map_err(StartError::PullThrough)?;
        let served = Arc::<Served>::default();
        let config = settings.node.as_ref();
        let discovery = PeerSources {
            mode: settings.mode,
            rendezvous: settings.rendezvous,
            mdns: config.is_some_and(|c| c.mdns),
            public_dht: config.is_some_and(|c| c.public_dht),
            bootstrap_peers: config.map_or(0, |c| c.bootstrap_peers.len()),
            tracker: tracker.is_some(),
            bootstrap_url: settings.bootstrap_url.is_some(),
            old_lan: lan.is_some(),
            network_id: settings.network_id.clone(),
        };
        let status = StatusSources {
            mode: settings.mode,
            discovery,
            throughput: Throughput::watch(served.clone(), node.clone()),
            served,
            progress,
            scan_control,
            db,
            holders,
            node: node.clone(),
            hole_punches: hole_punches.clone(),
            tracker,
            lan,
            pull_through: pull_through.clone(),
            swarms: Some(swarms),
            refusals: remote.refusals.clone(),
            lookups: remote.lookups.clone(),
            nix_requests: Arc::default(),
            answered,
        };
        Ok(Self {
            remote,
            pull_through,
            status: Some(status),
        })
    }
}

/// Where the NARs of peers' paths are kept: the NAR cache (`--cache-size`), and the log of the
/// NARs offered to Nix.
pub(super) fn nar_stores(
    settings: &Settings,
    db: &Arc<IndexDb>,
) -> Result<(Option<NarCache>, NarLog), StartError> {
    let nar_cache = (settings.cache_size > 0)
        .then(|| NarCache::open(&settings.state_dir.join("nar-cache"), settings.cache_size))
        .transpose()
        .map_err(StartError::NarCache)?;
    let nars = NarLog::start(db.clone()).map_err(StartError::NarLog)?;
    Ok((nar_cache, nars))
}
