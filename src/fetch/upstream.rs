//! The upstream cache (`--upstream-cache`), asked for the narinfo of a path no trusted key signed,
//! or of one no peer holds (`--pull-through`). Nix asked Peerix first because it should be fast:
//! an answer must come within [`DEADLINE`] or the path is "not verified now"; answers are
//! remembered, found or not, so a fleet asking for the same paths asks upstream once.
//!
//! Requests run on the asking task over kept-alive connections ([`UpstreamClient`]). Behind a
//! proxy named by the environment (`HTTPS_PROXY` and the like), or for an answer that redirects,
//! they run on a few blocking threads with the blocking client, which follows both.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hyper::StatusCode;
use peerix_http::{NarInfo, StoreHash};

use super::upstream_client::{ClientError, UpstreamClient};
use crate::blocking_pool::{BlockingPool, PoolError};

/// The whole exchange with upstream, waiting for a free connection included.
const DEADLINE: Duration = Duration::from_millis(500);
/// How long an answer is reused: a path upstream has never changes; one it lacks may come.
const FOUND_FOR: Duration = Duration::from_secs(3600);
const ABSENT_FOR: Duration = Duration::from_secs(60);
/// Answers remembered at most (about 1 KiB each).
const ANSWERS: usize = 1 << 14;
/// Requests to upstream at once, and as many idle connections kept.
const AT_ONCE: usize = 8;
/// A narinfo is a few KiB; more is not one.
const MAX_BODY: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("the upstream cache did not answer within {DEADLINE:?}")]
    TooSlow,
    #[error("the upstream cache failed: {0}")]
    Failed(String),
}

impl From<PoolError> for UpstreamError {
    fn from(e: PoolError) -> Self {
        match e {
            PoolError::TooSlow(_) => Self::TooSlow,
            PoolError::Failed(e) => Self::Failed(e),
        }
    }
}

impl From<ClientError> for UpstreamError {
    fn from(e: ClientError) -> Self {
        Self::Failed(e.to_string())
    }
}

pub struct Upstream {
    url: String,
    /// `None` behind a proxy.
    direct: Option<UpstreamClient>,
    /// For what only it does: proxies, redirections.
    blocking: ureq::Agent,
    pool: BlockingPool,
    answers: Mutex<HashMap<StoreHash, (Instant, Option<NarInfo>)>>,
}

impl Upstream {
    pub fn new(url: &str) -> Self {
        let url = url.trim_end_matches('/').to_owned();
        let direct = match ureq::Proxy::try_from_env() {
            None => UpstreamClient::new(&url, AT_ONCE)
                .inspect_err(
                    |e| tracing::warn!(%url, error = %e, "upstream: asked on blocking threads"),
                )
                .ok(),
            Some(_) => None,
        };
        // As many idle connections kept as requests run at once: a request that finds none
        // pays a new connection (a TLS handshake, for a real upstream).
        let blocking = ureq::Agent::config_builder()
            .timeout_global(Some(DEADLINE))
            .http_status_as_error(false)
            .max_idle_connections(AT_ONCE)
            .max_idle_connections_per_host(AT_ONCE)
            .build()
            .into();
        Self {
            url,
            direct,
            blocking,
            pool: BlockingPool::new(AT_ONCE, DEADLINE),
            answers: Mutex::new(HashMap::new()),
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Upstream's narinfo for `hash`, `None` if it has none.
    pub async fn narinfo(&self, hash: StoreHash) -> Result<Option<NarInfo>, UpstreamError> {
        if let Some(known) = self.remembered(hash) {
            return Ok(known);
        }
        let (status, body) = self.get(&format!("{hash}.narinfo")).await?;
        let answer = match status {
            StatusCode::OK => std::str::from_utf8(&body)
                .ok()
                .and_then(|text| NarInfo::parse(text).ok()),
            StatusCode::NOT_FOUND | StatusCode::FORBIDDEN => None,
            status => return Err(UpstreamError::Failed(format!("answered {status}"))),
        };
        // Upstream may only speak for the path asked about.
        let answer = answer.filter(|n| n.store_path.hash() == hash);
        if let Ok(mut answers) = self.answers.lock() {
            if answers.len() >= ANSWERS {
                answers.retain(|_, (until, _)| *until > Instant::now());
                if answers.len() >= ANSWERS {
                    answers.clear();
                }
            }
            let ttl = if answer.is_some() {
                FOUND_FOR
            } else {
                ABSENT_FOR
            };
            answers.insert(hash, (Instant::now() + ttl, answer.clone()));
        }
        Ok(answer)
    }

    /// How long upstream takes to answer `/nix-cache-info` over the connections narinfo
    /// requests use (which this keeps warm).
    pub async fn round_trip(&self) -> Result<Duration, UpstreamError> {
        let started = Instant::now();
        match self.get("nix-cache-info").await? {
            (StatusCode::OK, _) => Ok(started.elapsed()),
            (status, _) => Err(UpstreamError::Failed(format!("answered {status}"))),
        }
    }

    /// GETs `path` under upstream's URL within [`DEADLINE`]: its status and body.
    async fn get(&self, path: &str) -> Result<(StatusCode, bytes::Bytes), UpstreamError> {
        let exchange = async {
            if let Some(direct) = &self.direct {
                let answer = direct.get(path, MAX_BODY).await?;
                if !answer.0.is_redirection() {
                    return Ok(answer);
                }
            }
            let (agent, url) = (self.blocking.clone(), format!("{}/{path}", self.url));
            self.pool.run(move || blocking_get(&agent, &url)).await?
        };
        tokio::time::timeout(DEADLINE, exchange)
            .await
            .map_err(|_| UpstreamError::TooSlow)?
    }

    fn remembered(&self, hash: StoreHash) -> Option<Option<NarInfo>> {
        let answers = self.answers.lock().ok()?;
        let (until, answer) = answers.get(&hash)?;
        (*until > Instant::now()).then(|| answer.clone())
    }
}

/// One GET (blocking), redirections followed.
fn blocking_get(
    agent: &ureq::Agent,
    url: &str,
) -> Result<(StatusCode, bytes::Bytes), UpstreamError> {
    let failed = |e: ureq::Error| UpstreamError::Failed(e.to_string());
    let mut response = agent.get(url).call().map_err(failed)?;
    let status = StatusCode::from_u16(response.status().as_u16())
        .map_err(|e| UpstreamError::Failed(e.to_string()))?;
    let body = response
        .body_mut()
        .with_config()
        .limit(MAX_BODY as u64)
        .read_to_vec()
        .map_err(failed)?;
    Ok((status, body.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_silent_upstream_costs_at_most_the_deadline() {
        // Accepts connections and never answers.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let upstream = Upstream::new(&format!("http://{}", listener.local_addr().unwrap()));
        let hash = StoreHash::parse("7rjj86a15146cq1d3fmbmhdcd6lkb5ln").unwrap();
        let started = Instant::now();
        assert!(upstream.narinfo(hash).await.is_err());
        assert!(started.elapsed() < DEADLINE * 2, "{:?}", started.elapsed());
        // Not remembered: the next request asks again.
        assert!(upstream.remembered(hash).is_none());
    }
}
