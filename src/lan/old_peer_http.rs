//! HTTP to a machine that answered a LAN request: its narinfo at `/local/<hash>.narinfo`, and
//! the NAR at the URL that narinfo names (relative to the server's root, as the old program
//! resolves it). Nothing here is trusted yet: the caller checks the narinfo and hashes the NAR.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Incoming;
use hyper::{Response, StatusCode};
use hyper_util::rt::TokioIo;
use peerix_http::{NarInfo, StoreHash};
use thiserror::Error;
use tokio::net::TcpStream;

/// The narinfo exchange, connection included: an answerer holds the path, so this is worth more
/// than the query's timeout, but no more.
const NARINFO_DEADLINE: Duration = Duration::from_secs(2);
/// Connecting and getting the head of a NAR answer.
pub const NAR_HEAD_DEADLINE: Duration = Duration::from_secs(6);
/// A narinfo is a few KiB.
const MAX_NARINFO: usize = 64 << 10;
const MAX_URL: usize = 1024;

#[derive(Debug, Error)]
pub enum OldPeerError {
    #[error("no answer from {0} in time")]
    TooSlow(SocketAddr),
    #[error("cannot reach {addr}: {reason}")]
    Unreachable { addr: SocketAddr, reason: String },
    #[error("{addr} answered {status}")]
    Status {
        addr: SocketAddr,
        status: StatusCode,
    },
    #[error("{addr} sent no narinfo: {reason}")]
    BadNarinfo { addr: SocketAddr, reason: String },
    #[error("{addr} sent the narinfo of {got} for {asked}")]
    WrongPath {
        addr: SocketAddr,
        got: String,
        asked: StoreHash,
    },
}

/// A narinfo from an old peer, and where its NAR is.
#[derive(Clone, Debug)]
pub struct OldPeerNarinfo {
    pub narinfo: NarInfo,
    pub nar: NarLocation,
}

/// A NAR on an old peer's HTTP server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NarLocation {
    pub http: SocketAddr,
    /// The request target, starting with `/`.
    pub target: String,
}

/// GETs `target` from `addr`; the answer's head must come within `deadline`.
pub async fn get(
    addr: SocketAddr,
    target: &str,
    deadline: Duration,
) -> Result<Response<Incoming>, OldPeerError> {
    let unreachable = |e: &dyn std::fmt::Display| OldPeerError::Unreachable {
        addr,
        reason: e.to_string(),
    };
    let exchange = async {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| unreachable(&e))?;
        let _ = stream.set_nodelay(true);
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| unreachable(&e))?;
        // Ends with the response body (or when the server closes).
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(%addr, error = %e, "connection to an old peer ended");
            }
        });
        let request = hyper::Request::get(target)
            .header(hyper::header::HOST, addr.to_string())
            .body(Empty::<Bytes>::new())
            .map_err(|e| unreachable(&e))?;
        sender
            .send_request(request)
            .await
            .map_err(|e| unreachable(&e))
    };
    let response = tokio::time::timeout(deadline, exchange)
        .await
        .map_err(|_| OldPeerError::TooSlow(addr))??;
    match response.status() {
        StatusCode::OK => Ok(response),
        status => Err(OldPeerError::Status { addr, status }),
    }
}

/// The narinfo `http` serves for `hash`, checked to be of that path, uncompressed, with a NAR
/// URL on the same server.
pub async fn narinfo(http: SocketAddr, hash: StoreHash) -> Result<OldPeerNarinfo, OldPeerError> {
    let bad = |reason: String| OldPeerError::BadNarinfo { addr: http, reason };
    let read = async {
        let response = get(http, &format!("/local/{hash}.narinfo"), NARINFO_DEADLINE).await?;
        let body = Limited::new(response.into_body(), MAX_NARINFO)
            .collect()
            .await
            .map_err(|e| bad(e.to_string()))?
            .to_bytes();
        Ok::<_, OldPeerError>(body)
    };
    let body = tokio::time::timeout(NARINFO_DEADLINE, read)
        .await
        .map_err(|_| OldPeerError::TooSlow(http))??;
    let text = std::str::from_utf8(&body).map_err(|_| bad("not UTF-8".to_owned()))?;
    let narinfo = NarInfo::parse(text).map_err(|e| bad(e.to_string()))?;
    if narinfo.store_path.hash() != hash {
        return Err(OldPeerError::WrongPath {
            addr: http,
            got: narinfo.store_path.to_string(),
            asked: hash,
        });
    }
    if !matches!(narinfo.compression.as_str(), "" | "none") {
        return Err(bad(format!("compression {:?}", narinfo.compression)));
    }
    let target =
        nar_target(&narinfo.url).ok_or_else(|| bad(format!("NAR URL {:?}", narinfo.url)))?;
    Ok(OldPeerNarinfo {
        narinfo,
        nar: NarLocation { http, target },
    })
}

/// The request target of a NAR URL: a relative path on the same server, in the characters an
/// old peer's URLs use (base64 with `_` for `/`), never `..` or another host.
pub fn nar_target(url: &str) -> Option<String> {
    let allowed =
        |c: char| c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | '-' | '+' | '=');
    let valid = !url.is_empty()
        && url.len() <= MAX_URL
        && !url.starts_with('/')
        && url.chars().all(allowed)
        && url
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..");
    valid.then(|| format!("/{url}"))
}

#[cfg(test)]
mod tests {
    use super::nar_target;

    #[test]
    fn nar_urls_stay_on_the_server() {
        assert_eq!(
            nar_target("local/nar/L25peC9zdG9yZS9hYmM=.nar").as_deref(),
            Some("/local/nar/L25peC9zdG9yZS9hYmM=.nar")
        );
        assert_eq!(
            nar_target("local/nar/0abc.nar").as_deref(),
            Some("/local/nar/0abc.nar")
        );
        for bad in [
            "",
            "/etc/passwd",
            "http://evil/x.nar",
            "local/../../x",
            "local//x",
            "local/./x",
            "local/nar/a?b",
            "local/nar/a%2e",
            "local/nar/a b",
        ] {
            assert_eq!(nar_target(bad), None, "{bad}");
        }
    }
}
