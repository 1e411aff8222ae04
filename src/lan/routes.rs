//! The `/local/` routes old peers fetch from, on a listener of their own that LAN peers can
//! reach (the Nix front stays on loopback): `GET /local/<hash>.narinfo`, whose URL is
//! `local/nar/<nar hash>.nar` (old peers resolve it against the server's root), and that NAR.
//! Only shared paths, only to hosts on a local subnet or named in `--extra-hosts`; anything
//! else is 403 or 404.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use peerix_http::{BinaryCache, CacheError, CacheInfo, Metrics, Nar, NarHash, NarInfo, StoreHash};

use super::Lan;
use crate::store::LocalStore;

/// The shared part of the local store, under the URLs old peers follow.
struct SharedStore(Arc<LocalStore>);

impl BinaryCache for SharedStore {
    fn cache_info(&self) -> CacheInfo {
        self.0.cache_info()
    }

    async fn narinfo(&self, hash: StoreHash) -> Result<Option<NarInfo>, CacheError> {
        let Some(mut narinfo) = self.0.shared_narinfo(hash)? else {
            return Ok(None);
        };
        narinfo.url = format!("local/nar/{}.nar", narinfo.nar_hash.to_base32());
        Ok(Some(narinfo))
    }

    async fn nar(&self, hash: NarHash) -> Result<Option<Nar>, CacheError> {
        self.0.nar(hash).await
    }
}

pub fn local_router(store: Arc<LocalStore>, lan: Arc<Lan>) -> Router {
    let share = peerix_http::router(SharedStore(store), Arc::new(Metrics::default()));
    Router::new()
        .nest("/local", share)
        .layer(middleware::from_fn_with_state(lan, only_lan_hosts))
}

/// Lets through a narinfo or NAR request from a host that may fetch; nothing else.
async fn only_lan_hosts(
    State(lan): State<Arc<Lan>>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    if !lan.may_fetch(client.ip()) {
        tracing::debug!(%client, "a host off the local networks asked for /local/");
        return (StatusCode::FORBIDDEN, "only hosts on this network\n").into_response();
    }
    let path = request.uri().path();
    let served = match path.strip_prefix("/local/") {
        Some(rest) => rest.starts_with("nar/") || rest.ends_with(".narinfo"),
        None => false,
    };
    if !served {
        return StatusCode::NOT_FOUND.into_response();
    }
    next.run(request).await
}
