//! `peerix serve`: the binary-cache front over the local store.

use std::net::SocketAddr;
use std::sync::Arc;

use peerix_http::Metrics;
use tokio::net::TcpListener;

use crate::cli::ServeArgs;
use crate::filter::PathFilter;
use crate::kubo_rpc::KuboRpc;
use crate::nix::signing::SecretKey;
use crate::node_api::NodeApi;
use crate::store::{CachingSigner, LocalStore};

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

    let node_config = args.node_config(&state_dir)?;
    let blobs_dir = state_dir.join("added");
    let signer = signer.map(CachingSigner::new);
    let store = LocalStore::new(&args.store_root, filter, signer, args.priority);
    let front = peerix_http::router(store, Arc::new(Metrics::default()));

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start runtime: {e}"))?;
    runtime.block_on(async move {
        let node = if args.node.no_embedded_node {
            None
        } else {
            let node = peerix_node::start(node_config)
                .await
                .map_err(|e| format!("cannot start the peer-to-peer node: {e}"))?;
            let status = node.status().await.map_err(|e| e.to_string())?;
            tracing::info!(peer_id = %status.peer_id, listen = ?status.listen_addrs, "node started");
            Some(node)
        };
        let api = NodeApi {
            node,
            kubo: args.node.ipfs_api.as_deref().map(KuboRpc::new),
            blobs: blobs_dir,
        };
        let app = front.merge(peerix_http::ipfs_api_router(api));
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        eprintln!(
            "peerix: serving the Nix store at http://{}",
            listener.local_addr().unwrap_or(addr)
        );
        let app = app.into_make_service_with_connect_info::<SocketAddr>();
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown_signal())
            .await
            .map_err(|e| format!("server failed: {e}"))
    })
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
