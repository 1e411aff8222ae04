//! `peerix serve`: the binary-cache front over the local store.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use peerix_http::{BrowserGuard, Metrics, ServerLimits};
use tokio::net::TcpListener;

use crate::cli::ServeArgs;
use crate::discovery::{
    bootstrap_router, discover_network, follow_bootstrap_url, run_index, Holders,
};
use crate::fetch::{NarCache, NarLog, P2pCache, Remote, Trust};
use crate::filter::PathFilter;
use crate::kubo_rpc::KuboRpc;
use crate::nix::signing::SecretKey;
use crate::node_api::NodeApi;
use crate::publish::{answer_requests, IndexDb, ScanProgress, Scanner, StoreContent};
use crate::status::{status_router, HolePunchLog, StatusSources};
use crate::store::{watch_store, CachingSigner, LocalStore, SharedPaths};

/// How often the store database is checked for added or removed paths (a cheap query).
const STORE_POLL: Duration = Duration::from_secs(2);

fn load_signer(args: &ServeArgs) -> Result<Option<SecretKey>, String> {
    let Some(file) = args.private_key_file() else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(&file)
        .map_err(|e| format!("cannot read secret key {}: {e}", file.display()))?;
    SecretKey::parse(&text)
        .map(Some)
        .map_err(|e| format!("secret key {}: {e}", file.display()))
}

pub fn run(args: ServeArgs) -> Result<(), String> {
    let addr = args.listen_addr()?;
    let signer = load_signer(&args)?;
    let filter = PathFilter::new(
        !args.filter.no_filter,
        !args.filter.no_default_filters,
        &args.filter.patterns,
    )
    .map_err(|e| format!("bad --filter-pattern: {e}"))?;
    let state_dir = args.state_dir()?;
    tracing::info!(
        %addr,
        store_root = %args.store_root.display(),
        state_dir = %state_dir.display(),
        signing = signer.as_ref().map(|k| k.name()),
        filter_patterns = filter.pattern_count(),
        offline = args.offline,
        "starting"
    );

    let node_config = peerix_node::NodeConfig {
        app_protocols: crate::wire::protocols(),
        // The scan first withdraws paths collected or filtered since the last run.
        announce_provided_at_start: false,
        ..args.node_config(&state_dir)?
    };
    let trust = Trust {
        own_key_name: signer.as_ref().map(|k| k.name().to_owned()),
        ..args.trust()?
    };
    let blobs_dir = state_dir.join("added");
    let guard = BrowserGuard::new(&args.http.allowed_hosts);
    let limits = args.http.server_limits();
    let signer = signer.map(CachingSigner::new);
    let store = Arc::new(LocalStore::new(
        &args.store_root,
        filter.clone(),
        signer,
        args.priority,
    ));

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start runtime: {e}"))?;
    // Nix's requests get threads of their own: however much work peers make for the node
    // (negotiating and answering their streams), it never queues ahead of them.
    let front_runtime = tokio::runtime::Builder::new_multi_thread()
        .thread_name("peerix-front")
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the HTTP front's runtime: {e}"))?;
    let front_threads = front_runtime.handle().clone();
    runtime.block_on(async move {
        // One reader of the store for the node and the scan, so they share NAR layouts.
        let content = Arc::new(StoreContent::new(store.clone()));
        let node = if args.node.no_embedded_node {
            None
        } else {
            let node = peerix_node::start_with(node_config, content.clone())
                .await
                .map_err(|e| format!("cannot start the peer-to-peer node: {e}"))?;
            let status = node.status().await.map_err(|e| e.to_string())?;
            tracing::info!(peer_id = %status.peer_id, listen = ?status.listen_addrs, "node started");
            Some(node)
        };
        let progress = Arc::new(ScanProgress::default());
        let hole_punches = node.as_ref().map(HolePunchLog::watch);
        let mut status = None;
        let remote = match &node {
            Some(node) => {
                let shared = Arc::new(SharedPaths::default());
                let db = IndexDb::open(&state_dir.join("index.redb"))
                    .map_err(|e| format!("cannot open the index: {e}"))?;
                let db = Arc::new(db);
                let holders = Arc::new(Holders::default());
                status = Some(StatusSources {
                    progress: progress.clone(),
                    db: db.clone(),
                    holders: holders.clone(),
                    node: node.clone(),
                    hole_punches: hole_punches.clone().unwrap_or_default(),
                });
                let scanner = Scanner {
                    store: store.clone(),
                    content: content.clone(),
                    node: node.clone(),
                    db: db.clone(),
                    progress: progress.clone(),
                };
                let interval = (args.scan_interval > 0)
                    .then(|| Duration::from_secs(args.scan_interval));
                tokio::spawn(scanner.run(shared.subscribe(), interval));
                let nar_cache = (args.cache_size > 0)
                    .then(|| NarCache::open(&state_dir.join("nar-cache"), args.cache_size))
                    .transpose()
                    .map_err(|e| format!("cannot open the NAR cache: {e}"))?;
                let remote = start_substitution(
                    node,
                    (&store, &shared, holders),
                    (trust, filter),
                    db,
                    nar_cache,
                )?;
                Some(remote)
            }
            None => None,
        };
        let mut front = peerix_http::router(
            P2pCache::new(store, remote),
            Arc::new(Metrics::default()),
        );
        if let Some(status) = status {
            front = front.merge(status_router(status, &guard));
        }
        if let Some(node) = &node {
            let network_id = args.node.network_id.clone();
            front = front.merge(bootstrap_router(node.clone(), network_id.clone()));
            tokio::spawn(discover_network(node.clone(), network_id.clone()));
            if let Some(url) = args.node.bootstrap_url.clone() {
                tokio::spawn(follow_bootstrap_url(node.clone(), url, network_id));
            }
        }
        let api = NodeApi::new(
            node,
            hole_punches.unwrap_or_default(),
            args.node.ipfs_api.as_deref().map(KuboRpc::new),
            blobs_dir,
        );
        let app = front.merge(peerix_http::ipfs_api_router(
            api,
            args.http.max_add_size,
            &guard,
        ));
        front_threads
            .spawn(serve_front(addr, app, limits))
            .await
            .map_err(|e| format!("the HTTP front failed: {e}"))?
            .map_err(|e| format!("cannot listen on {addr}: {e}"))
    })
}

/// Serves `app` on `addr` until a shutdown signal; runs on the front's own runtime.
async fn serve_front(addr: SocketAddr, app: Router, limits: ServerLimits) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    eprintln!(
        "peerix: serving the Nix store at http://{}",
        listener.local_addr().unwrap_or(addr)
    );
    peerix_http::serve(listener, app, limits, shutdown_signal()).await;
    Ok(())
}

/// Joins the node to the store: announces this store's paths to peers, answers their requests,
/// and returns what the front needs to ask them.
fn start_substitution(
    node: &peerix_node::NodeHandle,
    (store, shared, holders): (&Arc<LocalStore>, &Arc<SharedPaths>, Arc<Holders>),
    (trust, filter): (Trust, PathFilter),
    db: Arc<IndexDb>,
    nar_cache: Option<NarCache>,
) -> Result<Arc<Remote>, String> {
    tokio::spawn(watch_store(store.clone(), shared.clone(), STORE_POLL));
    run_index(node.clone(), shared.clone(), holders.clone())?;
    answer_requests(node, store.clone(), db.clone())?;
    let nars = NarLog::start(db).map_err(|e| format!("cannot start the NAR log: {e}"))?;
    Ok(Arc::new(Remote::new(
        node.clone(),
        holders,
        trust,
        filter,
        nars,
        nar_cache,
    )))
}

async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sig) => {
                sig.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}
