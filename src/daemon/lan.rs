//! The old LAN protocol's part of the daemon (`--mode lan`, `both`): the `/local/` listener,
//! bound before anything starts so that answers name its port, and the UDP service.

use std::net::SocketAddr;
use std::sync::Arc;

use peerix_http::{CountRequestsLayer, ServerLimits};
use peerix_node::NodeHandle;

use super::front::Front;
use super::{Settings, StartError};
use crate::cli::LanSettings;
use crate::lan::{routes::local_router, Lan};
use crate::store::LocalStore;
use crate::systemd::Shutdown;

/// LAN peers share the `/local/` routes' connections; Nix's front keeps its own.
const LOCAL_ROUTES_CONNECTIONS: usize = 256;

/// The `/local/` listener, bound.
pub struct LanListener {
    listener: std::net::TcpListener,
    addr: SocketAddr,
}

impl LanListener {
    /// Binds the `/local/` routes' port and puts the ports bound into the settings: the UDP
    /// port is the Nix front's, as the old program's is.
    pub fn bind(settings: &mut Settings) -> Result<Option<Self>, StartError> {
        let http_port = settings.http_addr.port();
        let Some(LanSettings { listen, config }) = settings.lan.as_mut() else {
            return Ok(None);
        };
        let (listener, addr) = Front::bind(*listen)?;
        config.http_port = addr.port();
        config.udp_port = http_port;
        Ok(Some(Self { listener, addr }))
    }
}

/// Starts answering on the UDP port.
pub fn start_lan(
    settings: &mut Settings,
    node: Option<&NodeHandle>,
) -> Result<Option<Arc<Lan>>, StartError> {
    let Some(lan) = settings.lan.take() else {
        return Ok(None);
    };
    let started = Lan::start(lan.config, settings.store.clone(), node.cloned())?;
    Ok(Some(started))
}

/// Serves the `/local/` routes until `shutdown`, their requests counted by `count_requests`
/// with the front's.
pub async fn serve_local_routes(
    listener: LanListener,
    lan: Arc<Lan>,
    store: Arc<LocalStore>,
    limits: ServerLimits,
    count_requests: CountRequestsLayer,
    shutdown: Shutdown,
) {
    let LanListener { listener, addr } = listener;
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(listener) => listener,
        Err(e) => {
            tracing::error!(%addr, error = %e, "cannot serve the /local/ routes");
            return;
        }
    };
    tracing::info!(%addr, "serving shared paths to LAN peers under /local/");
    let limits = ServerLimits {
        max_connections: LOCAL_ROUTES_CONNECTIONS,
        ..limits
    };
    peerix_http::serve(
        listener,
        local_router(store, lan).layer(count_requests),
        limits,
        shutdown,
    )
    .await;
}
