//! A layer that keeps web pages off local control routes (the RPC, `/status`, the dashboard).
//!
//! A page in the user's browser can send requests to `127.0.0.1` (a form's POST needs no CORS
//! preflight), and through DNS rebinding a name it owns can point at `127.0.0.1` too. Browsers
//! always tell where a request comes from, so the layer refuses (403, the inner service is never
//! called) a request
//! - whose `Host` is not a loopback address (`127.0.0.0/8`, `[::1]`), `localhost` or a name under
//!   `.localhost` (RFC 6761: browsers resolve those to loopback themselves, never through DNS, so
//!   no page can rebind one), or a host the user allowed, with or without a port; a request with
//!   no `Host` at all, or more than one, is refused as well, since every browser and every HTTP/1.1
//!   client sends exactly one;
//! - whose `Origin` (or, without one, `Referer`) is present and is not `http://<that Host>`
//!   (`Origin: null`, sent by sandboxed frames and some redirects, is refused);
//! - whose `Sec-Fetch-Site` is `cross-site` or `same-site`.
//!
//! Requests with none of these headers (curl, scripts, kubo's clients) pass.
//!
//! The routes meant for Nix, monitoring and other nodes (the binary cache, `/health`,
//! `/metrics`, `/bootstrap`) are behind [`BrowserGuard::for_public_routes`]: the same rules, but
//! when the front listens beyond loopback, where other machines name it as they like, any `Host`.

use std::future::{ready, Ready};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::future::Either;
use tower::{Layer, Service};

const SEC_FETCH_SITE: HeaderName = HeaderName::from_static("sec-fetch-site");

/// Why a request was refused; the text is the 403's body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the request has no single Host header")]
    NoHost,
    #[error("the Host header names neither this machine nor an allowed host")]
    ForeignHost,
    #[error("the request comes from another origin (Origin header)")]
    ForeignOrigin,
    #[error("the request comes from another origin (Referer header)")]
    ForeignReferer,
    #[error("the request comes from another site (Sec-Fetch-Site header)")]
    CrossSite,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        (
            StatusCode::FORBIDDEN,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("refused: {self}\n"),
        )
            .into_response()
    }
}

/// The browser guard: a `tower` layer (`router.layer(guard.clone())`) and the check it applies.
#[derive(Clone, Debug, Default)]
pub struct BrowserGuard {
    /// Host names (or IP literals, IPv6 in brackets) allowed besides loopback, lower case.
    allowed_hosts: Arc<[String]>,
    /// Whether the `Host` rule is off (see [`BrowserGuard::for_public_routes`]).
    any_host: bool,
}

impl BrowserGuard {
    /// A guard that also accepts the `Host` names in `allowed_hosts` (any port, any case).
    pub fn new<S: AsRef<str>>(allowed_hosts: impl IntoIterator<Item = S>) -> Self {
        let allowed_hosts = allowed_hosts
            .into_iter()
            .map(|h| h.as_ref().trim().to_ascii_lowercase())
            .filter(|h| !h.is_empty())
            .collect();
        Self {
            allowed_hosts,
            any_host: false,
        }
    }

    /// This guard for the routes that Nix, monitoring and other nodes use. A web page may not
    /// reach them either: they tell what this machine and its peers hold, and a lookup makes
    /// the node ask its peers (and, with pull-through, download). While the front listens on
    /// loopback alone, no other machine is a client, so the `Host` rule holds; otherwise other
    /// machines name this one as they like, and only the `Origin`, `Referer` and
    /// `Sec-Fetch-Site` rules hold.
    pub fn for_public_routes(&self, listens_on_loopback_only: bool) -> Self {
        Self {
            allowed_hosts: self.allowed_hosts.clone(),
            any_host: !listens_on_loopback_only,
        }
    }

    /// Passes a request with these headers, or says which rule refuses it.
    pub fn check(&self, headers: &HeaderMap) -> Result<(), Refusal> {
        let host = match single(headers, &header::HOST) {
            Some(Some(host)) => Some(host),
            _ if self.any_host => None,
            _ => return Err(Refusal::NoHost),
        };
        if !self.any_host {
            let name = host.and_then(host_name).ok_or(Refusal::ForeignHost)?;
            if !is_loopback_name(name)
                && !self
                    .allowed_hosts
                    .iter()
                    .any(|a| a.eq_ignore_ascii_case(name))
            {
                return Err(Refusal::ForeignHost);
            }
        }
        let of_host =
            |check: fn(&str, &str) -> bool, value: &str| host.is_some_and(|h| check(value, h));
        match single(headers, &header::ORIGIN) {
            Some(Some(origin)) if of_host(is_origin_of, origin) => {}
            Some(_) => return Err(Refusal::ForeignOrigin),
            None => match single(headers, &header::REFERER) {
                Some(Some(referer)) if of_host(is_page_of, referer) => {}
                Some(_) => return Err(Refusal::ForeignReferer),
                None => {}
            },
        }
        for site in headers.get_all(SEC_FETCH_SITE) {
            let site = site.as_bytes();
            if site.eq_ignore_ascii_case(b"cross-site") || site.eq_ignore_ascii_case(b"same-site") {
                return Err(Refusal::CrossSite);
            }
        }
        Ok(())
    }
}

/// `None`: no such header; `Some(None)`: several, or one that is not text.
fn single<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<Option<&'a str>> {
    let mut values = headers.get_all(name).iter();
    let first = values.next()?;
    if values.next().is_some() {
        return Some(None);
    }
    Some(first.to_str().ok())
}

/// The host part of a `Host` value (`name`, `name:port`, `[v6]`, `[v6]:port`), as written: the
/// callers compare it without regard to case. `None` when malformed.
fn host_name(host: &str) -> Option<&str> {
    let (name, port) = if host.starts_with('[') {
        let end = host.find(']')? + 1;
        let rest = &host[end..];
        let port = if rest.is_empty() {
            None
        } else {
            Some(rest.strip_prefix(':')?)
        };
        (&host[..end], port)
    } else {
        match host.split_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (host, None),
        }
    };
    if let Some(port) = port {
        port.parse::<u16>()
            .ok()
            .filter(|_| port.bytes().all(|b| b.is_ascii_digit()))?;
    }
    let valid = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._[]:".contains(&b));
    valid.then_some(name)
}

/// Whether a host name (`[::1]`, `127.0.0.1`, `localhost`, `x.localhost`) names this machine.
pub fn is_loopback_name(name: &str) -> bool {
    if let Some(v6) = name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
        return v6.parse::<Ipv6Addr>().is_ok_and(|ip| ip.is_loopback());
    }
    if let Ok(v4) = name.parse::<Ipv4Addr>() {
        return v4.is_loopback();
    }
    let lower = name.to_ascii_lowercase();
    lower == "localhost" || (lower.ends_with(".localhost") && lower.len() > ".localhost".len())
}

/// `origin` is exactly `http://<host>`.
fn is_origin_of(origin: &str, host: &str) -> bool {
    origin
        .get(..7)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("http://"))
        && origin[7..].eq_ignore_ascii_case(host)
}

/// `referer` is a page at `http://<host>/...`.
fn is_page_of(referer: &str, host: &str) -> bool {
    let origin_end = 7 + host.len();
    referer
        .get(..origin_end)
        .is_some_and(|origin| is_origin_of(origin, host))
        && referer[origin_end..].starts_with('/')
}

impl<S> Layer<S> for BrowserGuard {
    type Service = Guarded<S>;

    fn layer(&self, inner: S) -> Guarded<S> {
        Guarded {
            guard: self.clone(),
            inner,
        }
    }
}

/// A service behind a [`BrowserGuard`].
#[derive(Clone, Debug)]
pub struct Guarded<S> {
    guard: BrowserGuard,
    inner: S,
}

impl<S> Service<Request> for Guarded<S>
where
    S: Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Either<S::Future, Ready<Result<Response, S::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        match self.guard.check(request.headers()) {
            Ok(()) => Either::Left(self.inner.call(request)),
            Err(refusal) => {
                tracing::debug!(
                    uri = %request.uri(),
                    host = ?request.headers().get(header::HOST).map(HeaderValue::as_bytes),
                    %refusal,
                    "refused a browser-reachable request"
                );
                Either::Right(ready(Ok(refusal.into_response())))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    #[test]
    fn loopback_hosts_pass_and_others_do_not() {
        let guard = BrowserGuard::new(["Peerix.LAN"]);
        for host in [
            "127.0.0.1",
            "127.0.0.1:12304",
            "127.8.9.10:1",
            "[::1]",
            "[::1]:12304",
            "localhost",
            "LOCALHOST:80",
            "dash.localhost:12304",
            "peerix.lan:12304",
            "PEERIX.lan",
        ] {
            assert_eq!(guard.check(&headers(&[("host", host)])), Ok(()), "{host}");
        }
        for host in [
            "evil.example",
            "evil.example:12304",
            "localhost.evil.example",
            ".localhost",
            "128.0.0.1",
            "0.0.0.0",
            "[::2]",
            "[::1]x",
            "127.0.0.1:",
            "127.0.0.1:99999",
            "127.0.0.1:+80",
            "127.0.0.1:80:80",
            "[::1",
            "",
            "peerix.lan.evil",
            "127.0.0.1@evil.example",
        ] {
            assert_eq!(
                guard.check(&headers(&[("host", host)])),
                Err(Refusal::ForeignHost),
                "{host}"
            );
        }
        assert_eq!(guard.check(&headers(&[])), Err(Refusal::NoHost));
        assert_eq!(
            guard.check(&headers(&[("host", "127.0.0.1"), ("host", "127.0.0.1")])),
            Err(Refusal::NoHost)
        );
    }

    #[test]
    fn public_routes_take_any_host_only_beyond_loopback() {
        let on_loopback = BrowserGuard::new(["peerix.lan"]).for_public_routes(true);
        let beyond = BrowserGuard::new(["peerix.lan"]).for_public_routes(false);
        for host in ["127.0.0.1:12304", "localhost", "peerix.lan:12304"] {
            assert_eq!(
                on_loopback.check(&headers(&[("host", host)])),
                Ok(()),
                "{host}"
            );
        }
        let rebound = headers(&[("host", "cache.example:12304")]);
        assert_eq!(on_loopback.check(&rebound), Err(Refusal::ForeignHost));
        assert_eq!(beyond.check(&rebound), Ok(()));
        assert_eq!(beyond.check(&HeaderMap::new()), Ok(()));
        for hostile in [
            ("origin", "https://evil.example"),
            ("origin", "null"),
            ("referer", "https://evil.example/page"),
            ("sec-fetch-site", "cross-site"),
            ("sec-fetch-site", "same-site"),
        ] {
            let request = headers(&[("host", "cache.example:12304"), hostile]);
            assert!(beyond.check(&request).is_err(), "{hostile:?}");
            let request = headers(&[("host", "127.0.0.1:12304"), hostile]);
            assert!(on_loopback.check(&request).is_err(), "{hostile:?}");
        }
        let own_page = headers(&[
            ("host", "cache.example:12304"),
            ("origin", "http://cache.example:12304"),
        ]);
        assert_eq!(beyond.check(&own_page), Ok(()));
    }

    #[test]
    fn only_the_hosts_own_origin_passes() {
        let guard = BrowserGuard::default();
        let host = ("host", "127.0.0.1:12304");
        let check = |extra: &[(&str, &str)]| {
            let mut all = vec![host];
            all.extend_from_slice(extra);
            guard.check(&headers(&all))
        };
        assert_eq!(check(&[("origin", "http://127.0.0.1:12304")]), Ok(()));
        assert_eq!(check(&[("referer", "http://127.0.0.1:12304/")]), Ok(()));
        assert_eq!(check(&[("referer", "http://127.0.0.1:12304/x?y")]), Ok(()));
        assert_eq!(check(&[("sec-fetch-site", "same-origin")]), Ok(()));
        assert_eq!(check(&[("sec-fetch-site", "none")]), Ok(()));
        for origin in [
            "https://evil.example",
            "null",
            "http://127.0.0.1",
            "https://127.0.0.1:12304",
            "http://127.0.0.1:123045",
            "http://localhost:12304",
            "",
        ] {
            assert_eq!(
                check(&[("origin", origin)]),
                Err(Refusal::ForeignOrigin),
                "{origin}"
            );
        }
        // The Origin decides; a Referer does not rescue a foreign one.
        assert_eq!(
            check(&[("origin", "null"), ("referer", "http://127.0.0.1:12304/")]),
            Err(Refusal::ForeignOrigin)
        );
        for referer in [
            "https://evil.example/x",
            "http://127.0.0.1:12304",
            "http://127.0.0.1:12304.evil.example/",
            "http://127.0.0.1:12304@evil.example/",
        ] {
            assert_eq!(
                check(&[("referer", referer)]),
                Err(Refusal::ForeignReferer),
                "{referer}"
            );
        }
        for site in ["cross-site", "same-site", "Cross-Site"] {
            assert_eq!(
                check(&[("sec-fetch-site", site)]),
                Err(Refusal::CrossSite),
                "{site}"
            );
        }
    }
}
