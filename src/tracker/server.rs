//! `peerix tracker`: the HTTP server over the store. Every write is verified (signature, route,
//! timestamp, nonce) before it reaches the store and answered only after its commit.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use peerix_http::ServerLimits;
use peerix_node::PeerId;
use thiserror::Error;

use super::errors::ApiError;
use super::store::{Limits, StoreError, TrackerStore};
use super::transfers::{TransferLimits, Transfers};
use super::trusted_proxy::{client_ip, Cidr};
use super::{read_routes, write_routes};
use crate::rate_limit::{ip_key, Buckets, RateLimit};
use crate::systemd::{ShutdownSignal, Systemd};

/// Clients (IPs, IPv6 /64s) and peers whose buckets are kept at once.
const MAX_BUCKETS: usize = 100_000;

#[derive(Clone, Debug)]
pub struct Settings {
    pub listen: SocketAddr,
    pub db_path: PathBuf,
    pub trusted_proxies: Vec<Cidr>,
    /// Seconds after its last heartbeat a peer and its packages go.
    pub ttl: u64,
    pub max_skew: u64,
    pub per_ip: RateLimit,
    pub per_peer: RateLimit,
    pub server_limits: ServerLimits,
}

#[derive(Debug, Error)]
pub enum ServerError {
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
    #[error("cannot open the tracker database {path}: {source}")]
    Store {
        path: PathBuf,
        source: Box<StoreError>,
    },
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot listen for shutdown signals: {0}")]
    Signals(std::io::Error),
    #[error("--db-path {path}: cannot create or write it: {source}")]
    DbPath {
        path: PathBuf,
        source: std::io::Error,
    },
}

pub(super) struct Tracker {
    pub(super) store: TrackerStore,
    pub(super) transfers: Mutex<Transfers>,
    pub(super) max_skew: u64,
    trusted_proxies: Vec<Cidr>,
    per_ip: Buckets<IpAddr>,
    per_peer: Buckets<PeerId>,
}

impl Tracker {
    /// A write of `peer` may go on, or is refused for its rate.
    pub(super) fn admit_write(&self, peer: PeerId) -> Result<(), ApiError> {
        self.per_peer
            .take(peer, Instant::now())
            .map_err(|retry_after| ApiError::RateLimited { retry_after })
    }

    pub(super) fn client_ip(&self, socket: SocketAddr, headers: &axum::http::HeaderMap) -> IpAddr {
        client_ip(socket.ip(), headers, &self.trusted_proxies)
    }
}

pub(super) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A random number below 2^53, so JavaScript clients read it exactly.
fn random_id() -> u64 {
    let mut bytes = [0; 8];
    // Without the OS's randomness the ids only lose their protection across restarts.
    let _ = getrandom::getrandom(&mut bytes);
    u64::from_le_bytes(bytes) >> 11
}

pub fn run(settings: Settings) -> Result<(), ServerError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(ServerError::Runtime)?;
    runtime.block_on(serve(settings))
}

async fn serve(settings: Settings) -> Result<(), ServerError> {
    let limits = Limits {
        max_skew: settings.max_skew,
        ..Limits::default()
    };
    let store = TrackerStore::open(&settings.db_path, limits, random_id()).map_err(|source| {
        ServerError::Store {
            path: settings.db_path.clone(),
            source: Box::new(source),
        }
    })?;
    let tracker = Arc::new(Tracker {
        store,
        transfers: Mutex::new(Transfers::new(TransferLimits::default(), random_id())),
        max_skew: settings.max_skew,
        trusted_proxies: settings.trusted_proxies.clone(),
        per_ip: Buckets::new(settings.per_ip, MAX_BUCKETS),
        per_peer: Buckets::new(settings.per_peer, MAX_BUCKETS),
    });
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .map_err(|source| ServerError::Listen {
            addr: settings.listen,
            source,
        })?;
    let bound = listener.local_addr().unwrap_or(settings.listen);
    // Tests and operators read where it listens (with --port 0, the port the kernel chose).
    eprintln!("peerix tracker: listening on http://{bound}");
    tokio::spawn(expire_forever(tracker.clone(), settings.ttl));
    let signal = ShutdownSignal::listen().map_err(ServerError::Signals)?;
    let systemd = Systemd::from_env();
    let shutdown = systemd.clone().stopping_at(signal);
    systemd.ready(
        &format!("tracking on http://{bound}"),
        vec![tokio::runtime::Handle::current()],
    );
    let app = router(tracker);
    peerix_http::serve(listener, app, settings.server_limits, shutdown).await;
    Ok(())
}

fn router(tracker: Arc<Tracker>) -> Router {
    Router::new()
        .route("/status", get(read_routes::status))
        .route("/peers", get(read_routes::peers))
        .route("/find/{hash}", get(read_routes::find))
        .route("/membership", get(read_routes::membership))
        .route("/cid/{hash}", get(read_routes::cid))
        .route("/cids", get(read_routes::cids))
        .route("/cids/batch", post(read_routes::cids_batch))
        .route("/reputation/{peer_id}", get(read_routes::reputation))
        .route("/announce", post(write_routes::write))
        .route("/packages/batch", post(write_routes::write))
        .route("/packages/delta", post(write_routes::write))
        .route("/cid", post(write_routes::write))
        .route("/cid/batch", post(write_routes::write))
        .route("/transfer/init", post(write_routes::write))
        .route("/report", post(write_routes::write))
        .fallback(|| async { ApiError::NotFound("no such route".to_owned()) })
        .layer(axum::middleware::from_fn_with_state(
            tracker.clone(),
            limit_per_ip,
        ))
        .with_state(tracker)
}

async fn limit_per_ip(
    State(tracker): State<Arc<Tracker>>,
    ConnectInfo(socket): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    let ip = tracker.client_ip(socket, request.headers());
    match tracker.per_ip.take(ip_key(ip), Instant::now()) {
        Ok(()) => next.run(request).await,
        Err(retry_after) => ApiError::RateLimited { retry_after }.into_response(),
    }
}

/// Removes silent peers every half ttl (at most every minute), and forgets old transfers.
async fn expire_forever(tracker: Arc<Tracker>, ttl: u64) {
    let period = Duration::from_secs((ttl / 2).clamp(1, 60));
    let mut ticks = tokio::time::interval(period);
    loop {
        ticks.tick().await;
        let now = unix_now();
        tracker
            .transfers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .expire(now);
        let worker = tracker.clone();
        match tokio::task::spawn_blocking(move || worker.store.expire(now, ttl)).await {
            Ok(Ok(gone)) if !gone.is_empty() => {
                tracing::info!(peers = gone.len(), "expired silent peers");
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot expire silent peers"),
            Err(e) => tracing::warn!(error = %e, "expiry task failed"),
        }
    }
}
