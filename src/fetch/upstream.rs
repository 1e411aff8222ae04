//! The upstream cache (`--upstream-cache`), asked for the narinfo of a path no trusted key signed.
//! Nix asked Peerix first because it should be fast: an answer must come within [`DEADLINE`] or
//! the path is "not verified now"; answers are remembered, found or not, so a fleet asking for the
//! same paths asks upstream once.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use peerix_http::{NarInfo, StoreHash};

use crate::blocking_pool::{BlockingPool, PoolError};

/// The whole exchange with upstream, waiting for a free thread included.
const DEADLINE: Duration = Duration::from_millis(500);
/// How long an answer is reused: a path upstream has never changes; one it lacks may come.
const FOUND_FOR: Duration = Duration::from_secs(3600);
const ABSENT_FOR: Duration = Duration::from_secs(60);
/// Answers remembered at most (about 1 KiB each).
const ANSWERS: usize = 1 << 14;
/// Requests to upstream at once, each on a blocking thread.
const AT_ONCE: usize = 8;
/// A narinfo is a few KiB; more is not one.
const MAX_BODY: u64 = 1 << 20;

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

pub struct Upstream {
    url: String,
    agent: ureq::Agent,
    answers: Mutex<HashMap<StoreHash, (Instant, Option<NarInfo>)>>,
    pool: BlockingPool,
}

impl Upstream {
    pub fn new(url: &str) -> Self {
        // As many idle connections kept as requests run at once: a request that finds none
        // pays a new connection (a TLS handshake, for a real upstream).
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(DEADLINE))
            .max_idle_connections(AT_ONCE)
            .max_idle_connections_per_host(AT_ONCE)
            .build()
            .into();
        Self {
            url: url.trim_end_matches('/').to_owned(),
            agent,
            answers: Mutex::new(HashMap::new()),
            pool: BlockingPool::new(AT_ONCE, DEADLINE),
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
        let agent = self.agent.clone();
        let url = format!("{}/{hash}.narinfo", self.url);
        let answer = self.pool.run(move || fetch(&agent, &url)).await??;
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
        let agent = self.agent.clone();
        let url = format!("{}/nix-cache-info", self.url);
        let started = Instant::now();
        self.pool
            .run(move || {
                let failed = |e: ureq::Error| UpstreamError::Failed(e.to_string());
                let mut response = agent.get(&url).call().map_err(failed)?;
                let body = response.body_mut().with_config().limit(MAX_BODY);
                body.read_to_string().map(drop).map_err(failed)
            })
            .await??;
        Ok(started.elapsed())
    }

    fn remembered(&self, hash: StoreHash) -> Option<Option<NarInfo>> {
        let answers = self.answers.lock().ok()?;
        let (until, answer) = answers.get(&hash)?;
        (*until > Instant::now()).then(|| answer.clone())
    }
}

/// One GET (blocking): a 404 or a body that is no narinfo means upstream has none.
fn fetch(agent: &ureq::Agent, url: &str) -> Result<Option<NarInfo>, UpstreamError> {
    let mut response = match agent.get(url).call() {
        Ok(response) => response,
        Err(ureq::Error::StatusCode(404 | 403)) => return Ok(None),
        Err(e) => return Err(UpstreamError::Failed(e.to_string())),
    };
    let text = response
        .body_mut()
        .with_config()
        .limit(MAX_BODY)
        .read_to_string()
        .map_err(|e| UpstreamError::Failed(e.to_string()))?;
    Ok(NarInfo::parse(&text).ok())
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
