//! The `/local/` routes old peers fetch from, on a listener of their own that LAN peers can
//! reach (the Nix front stays on loopback): `GET /local/<hash>.narinfo`, whose URL is
//! `local/nar/<nar hash>.nar` (old peers resolve it against the server's root), and that NAR.
//! Only shared paths, only to hosts on a local subnet or named in `--extra-hosts`; anything
//! else is 403 or 404. Old peers and Peerix name the server by its IP address and send no
//! browser headers: a request naming it otherwise (a DNS-rebinding page's) or coming from a page
//! is refused, so no web page can read what this machine shares.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
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
    if let Err(refusal) = not_from_a_browser(request.headers()) {
        tracing::debug!(%client, %refusal, "a browser asked for /local/");
        return (StatusCode::FORBIDDEN, format!("refused: {refusal}\n")).into_response();
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

/// Why a request for `/local/` looks like a browser's.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
enum BrowserRefusal {
    #[error("the Host header is not an IP address")]
    HostNotAnAddress,
    #[error("the request comes from a web page ({0} header)")]
    FromAPage(&'static str),
}

fn not_from_a_browser(headers: &HeaderMap) -> Result<(), BrowserRefusal> {
    for name in ["origin", "referer", "sec-fetch-site", "sec-fetch-mode"] {
        if headers.contains_key(name) {
            return Err(BrowserRefusal::FromAPage(name));
        }
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let addr = host
        .parse::<SocketAddr>()
        .map(|a| a.ip())
        .or_else(|_| host.parse::<IpAddr>());
    match addr {
        Ok(_) => Ok(()),
        Err(_) => Err(BrowserRefusal::HostNotAnAddress),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn only_requests_naming_an_address_and_from_no_page_pass() {
        assert_eq!(
            not_from_a_browser(&headers(&[("host", "10.0.0.5:12306")])),
            Ok(())
        );
        assert_eq!(
            not_from_a_browser(&headers(&[("host", "10.0.0.5")])),
            Ok(())
        );
        assert_eq!(
            not_from_a_browser(&headers(&[("host", "[fd00::1]:12306")])),
            Ok(())
        );
        assert_eq!(
            not_from_a_browser(&headers(&[("host", "rebind.example:12306")])),
            Err(BrowserRefusal::HostNotAnAddress)
        );
        assert_eq!(
            not_from_a_browser(&headers(&[])),
            Err(BrowserRefusal::HostNotAnAddress)
        );
        assert_eq!(
            not_from_a_browser(&headers(&[
                ("host", "10.0.0.5:12306"),
                ("origin", "http://evil.example")
            ])),
            Err(BrowserRefusal::FromAPage("origin"))
        );
        assert_eq!(
            not_from_a_browser(&headers(&[
                ("host", "10.0.0.5:12306"),
                ("sec-fetch-site", "cross-site")
            ])),
            Err(BrowserRefusal::FromAPage("sec-fetch-site"))
        );
    }
}
