//! `--no-embedded-node`: kubo (`--ipfs-api`) does the peer-to-peer work alone, and a tracker
//! names the CIDs. The scan publishes to kubo, the tracker learns the shared paths and their
//! CIDs (signed with the node's identity, which exists without the node), and a path the
//! tracker maps reaches Nix with the upstream cache's narinfo, verified like any other, and its
//! NAR through kubo's `cat`, hashed. The parts are those of the embedded path, given no node.

use std::sync::Arc;

use peerix_node::Identity;

use super::peering::{nar_stores, start_tracker, Peering, TrackerParts, STORE_POLL};
use super::{Settings, StartError};
use crate::discovery::Holders;
use crate::fetch::{Remote, Trust};
use crate::kubo_rpc::KuboRpc;
use crate::publish::{IndexDb, KuboPublisher, ScanControl, ScanProgress, Scanner, StoreContent};
use crate::store::{watch_store, SharedPaths};

/// Starts kubo's peering, given a kubo and a tracker; without a tracker only the local store
/// and the RPC are served (`--check-config` refuses that), and `None` is returned.
pub fn start(
    settings: &Settings,
    trust: Trust,
    content: Arc<StoreContent>,
) -> Result<Option<Peering>, StartError> {
    let (Some(api), Some(tracker_url)) = (&settings.ipfs_api, &settings.tracker_url) else {
        tracing::warn!(
            "--no-embedded-node without --tracker-url: nothing names CIDs, so only this store \
             and the RPC are served"
        );
        return Ok(None);
    };
    let kubo = KuboRpc::new(api);
    let store = &settings.store;
    let db = Arc::new(IndexDb::open(&settings.state_dir.join("index.redb"))?);
    let shared = Arc::new(SharedPaths::default());
    let scanner = Scanner {
        store: store.clone(),
        content,
        node: None,
        db: db.clone(),
        progress: Arc::new(ScanProgress::default()),
        control: Arc::new(ScanControl::default()),
        kubo: Some(KuboPublisher::new(kubo.clone())),
    };
    tokio::spawn(scanner.run(shared.subscribe(), settings.scan_interval));
    let identity =
        Identity::load_or_create(&settings.identity_file).map_err(StartError::Identity)?;
    // No holder is ever dialled: the tracker's holders are only counted in its membership.
    let holders = Arc::new(Holders::default());
    let parts = TrackerParts {
        identity,
        holders: holders.clone(),
        node: None,
    };
    let tracker = start_tracker(tracker_url, parts, settings.http_addr.port(), &shared, &db);
    tokio::spawn(watch_store(store.clone(), shared, STORE_POLL));
    let (nar_cache, nars) = nar_stores(settings, &db)?;
    let remote = Remote::new(
        None,
        holders,
        trust,
        settings.filter.clone(),
        nars,
        nar_cache,
        Some(tracker),
    )
    .with_kubo(Some(kubo));
    Ok(Some(Peering {
        remote: Arc::new(remote),
        pull_through: None,
        status: None,
    }))
}
