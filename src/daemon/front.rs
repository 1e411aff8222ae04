//! The HTTP front: Nix's binary cache, `/status`, `/bootstrap` and the kubo-style RPC on one
//! listener, served until a shutdown signal.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use peerix_http::{CountRequestsLayer, Metrics, ServerLimits};
use peerix_node::NodeHandle;
use tokio::net::TcpListener;

use super::{Peering, Settings, StartError};
use crate::batch_narinfo::batch_narinfo_router;
use crate::control_routes::control_router;
use crate::dashboard::dashboard_router;
use crate::discovery::{bootstrap_router, discover_network, follow_bootstrap_url, warn_when_alone};
use crate::fetch::P2pCache;
use crate::kubo_rpc::KuboRpc;
use crate::node_api::NodeApi;
use crate::node_metrics::NodeMetrics;
use crate::status::{status_router, HolePunchLog};
use crate::systemd::Shutdown;
use crate::why::{why_router, WhySources};

pub struct Front {
    routes: Router,
    count_requests: CountRequestsLayer,
}

impl Front {
    /// The routes, over the local store and (with a node) its peers. Starts the node's
    /// network discovery too, which `/bootstrap` answers for.
    pub fn assemble(
        settings: &Settings,
        node: Option<NodeHandle>,
        peering: Option<Peering>,
        hole_punches: Arc<HolePunchLog>,
    ) -> Self {
        let (remote, pull_through, status) = match peering {
            Some(peering) => (Some(peering.remote), peering.pull_through, peering.status),
            None => (None, None, None),
        };
        // Said when the node finds no peer: the ways it looks, as `/status` tells them.
        let peer_sources = status.as_ref().map(|status| status.discovery.clone());
        let why = WhySources {
            store: settings.store.clone(),
            filter: settings.filter.clone(),
            remote: remote.clone(),
            pull_through: pull_through.clone(),
        };
        // What Nix got and where narinfos were looked for, counted once for every route that
        // serves them.
        let served = status
            .as_ref()
            .map_or_else(Default::default, |status| status.served.clone());
        let lookups = status
            .as_ref()
            .map_or_else(Default::default, |status| status.lookups.clone());
        let metrics = Arc::new(match &status {
            Some(status) => Metrics::new(
                status.nix_requests.clone(),
                Some(Arc::new(NodeMetrics(status.clone()))),
            ),
            None => Metrics::default(),
        });
        let count_requests = metrics.count_requests();
        let cache = |served, lookups| {
            P2pCache::new(settings.store.clone(), remote.clone(), served, lookups)
                .with_pull_through(pull_through.clone())
        };
        let public = settings
            .guard
            .for_public_routes(settings.http_addr.ip().is_loopback());
        let mut routes = peerix_http::router(cache(served.clone(), lookups.clone()), metrics)
            .layer(public.clone())
            .merge(batch_narinfo_router(
                Arc::new(cache(served, lookups)),
                &settings.guard,
            ))
            .merge(why_router(why, &settings.guard));
        if let Some(status) = status {
            routes = routes
                .merge(control_router(status.clone(), &settings.guard))
                .merge(dashboard_router(status.clone(), &settings.guard))
                .merge(status_router(status, &settings.guard));
        }
        if let Some(node) = &node {
            let network_id = settings.network_id.clone();
            routes = routes
                .merge(bootstrap_router(node.clone(), network_id.clone()).layer(public.clone()));
            if settings.rendezvous {
                tokio::spawn(discover_network(node.clone(), network_id.clone()));
            }
            if let Some(url) = settings.bootstrap_url.clone() {
                tokio::spawn(follow_bootstrap_url(node.clone(), url, network_id));
            }
            if let (false, Some(sources)) = (settings.offline, peer_sources) {
                tokio::spawn(warn_when_alone(node.clone(), sources));
            }
        }
        let api = NodeApi::new(
            node,
            hole_punches,
            settings.ipfs_api.as_deref().map(KuboRpc::new),
            settings.state_dir.join("added"),
        );
        let routes = routes.merge(peerix_http::ipfs_api_router(
            api,
            settings.max_add_size,
            &settings.guard,
        ));
        Self {
            routes: routes.layer(count_requests.clone()),
            count_requests,
        }
    }

    /// The layer counting the front's requests by route and status, for the other listeners'
    /// routes to be counted with them.
    pub fn count_requests(&self) -> CountRequestsLayer {
        self.count_requests.clone()
    }

    /// Binds `addr` before anything else starts, so that every part knows the port (a given
    /// 0 included); returns the listener and the address bound.
    pub fn bind(addr: SocketAddr) -> Result<(std::net::TcpListener, SocketAddr), StartError> {
        let bind = || {
            let listener = std::net::TcpListener::bind(addr)?;
            listener.set_nonblocking(true)?;
            let bound = listener.local_addr()?;
            Ok((listener, bound))
        };
        bind().map_err(|source| StartError::Listen { addr, source })
    }

    /// Serves on `listener`, bound to `addr`, until `shutdown`; `serving` is called once
    /// requests are answered from then on (and never if the listener cannot be served).
    pub async fn serve(
        self,
        listener: std::net::TcpListener,
        addr: SocketAddr,
        limits: ServerLimits,
        shutdown: Shutdown,
        serving: impl FnOnce(),
    ) -> Result<(), StartError> {
        let listener = TcpListener::from_std(listener)
            .map_err(|source| StartError::Listen { addr, source })?;
        eprintln!("peerix: serving the Nix store at http://{addr}");
        serving();
        peerix_http::serve(listener, self.routes, limits, shutdown).await;
        Ok(())
    }
}
