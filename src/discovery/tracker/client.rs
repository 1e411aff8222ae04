//! HTTP to the tracker: signed writes and bounded reads, on a [`BlockingPool`] of their own,
//! so that a tracker that accepts and never answers costs a request its deadline and no more.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cid::Cid;
use peerix_http::StoreHash;
use peerix_node::{Identity, PeerId};
use serde::de::DeserializeOwned;
use thiserror::Error;

use crate::blocking_pool::{BlockingPool, PoolError};
use crate::wire::tracker::{
    parse_answer, CidAnswer, EnvelopeError, FindAnswer, MembershipAnswer, PeersAnswer, ReadError,
    SignedWrite, WritePayload, MAX_READ_BODY, NONCE_LEN,
};

/// Requests to the tracker at once; more wait for a turn (within their deadline).
const AT_ONCE: usize = 4;

#[derive(Debug, Error)]
pub enum TrackerError {
    #[error("the tracker did not answer within {0:?}")]
    TooSlow(Duration),
    #[error("cannot reach the tracker: {0}")]
    Unreachable(String),
    /// The tracker does not know this node (it expired, or the tracker lost its state).
    #[error("the tracker does not know this node")]
    UnknownPeer,
    #[error("the tracker refused the request ({status}): {message}")]
    Refused { status: u16, message: String },
    #[error(transparent)]
    BadAnswer(#[from] ReadError),
    #[error("cannot make the write: {0}")]
    Write(#[from] EnvelopeError),
    #[error("cannot sign: {0}")]
    Sign(String),
}

#[derive(Clone)]
pub struct TrackerClient {
    url: Arc<str>,
    agent: ureq::Agent,
    identity: Identity,
    pool: BlockingPool,
}

impl TrackerClient {
    /// A client of the tracker at `url`, signing with `identity` (the node's).
    pub fn new(url: &str, identity: Identity, deadline: Duration) -> Self {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(deadline))
            .http_status_as_error(false)
            .build()
            .into();
        Self {
            url: url.trim_end_matches('/').into(),
            agent,
            identity,
            pool: BlockingPool::new(AT_ONCE, deadline),
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Who this client writes as.
    pub fn peer_id(&self) -> PeerId {
        self.identity.peer_id()
    }

    /// Signs `payload` with this node's key and posts it to its route; the answer is a
    /// [`WriteAnswer`](crate::wire::tracker::WriteAnswer) but for a transfer's opening.
    pub async fn write<T: DeserializeOwned + Send + 'static>(
        &self,
        payload: WritePayload,
    ) -> Result<T, TrackerError> {
        let route = payload.route();
        let mut nonce = [0; NONCE_LEN];
        getrandom::getrandom(&mut nonce).map_err(|e| TrackerError::Sign(e.to_string()))?;
        let mut failure = None;
        let key = self.identity.public_key();
        let sign = |message: &[u8]| {
            self.identity.sign(message).unwrap_or_else(|e| {
                failure = Some(e.to_string());
                Vec::new()
            })
        };
        let signed = SignedWrite::sign_with(&key, sign, route, payload, unix_now(), nonce);
        if let Some(e) = failure {
            return Err(TrackerError::Sign(e));
        }
        let body = signed?.to_json();
        self.request(route.to_owned(), Some(body)).await
    }

    pub async fn find(&self, hash: StoreHash) -> Result<FindAnswer, TrackerError> {
        self.request(format!("/find/{hash}"), None).await
    }

    /// The CID a peer registered for `hash`'s NAR, `None` if none did.
    pub async fn cid(&self, hash: StoreHash) -> Result<Option<Cid>, TrackerError> {
        let answer = match self
            .request::<CidAnswer>(format!("/cid/{hash}"), None)
            .await
        {
            Ok(answer) => answer,
            Err(TrackerError::Refused { status: 404, .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        match Cid::try_from(answer.cid.as_str()) {
            Ok(cid) if answer.hash == hash.as_str() => Ok(Some(cid)),
            _ => Err(TrackerError::BadAnswer(ReadError::Malformed(format!(
                "no CID of {hash}: {answer:?}"
            )))),
        }
    }

    /// `count` of the tracker's live peers, at random.
    pub async fn sample_peers(&self, count: usize) -> Result<PeersAnswer, TrackerError> {
        self.request(format!("/peers?sample={count}"), None).await
    }

    /// The network's holdings, whole or as the changes since `since` (epoch, version).
    pub async fn membership(
        &self,
        since: Option<(u64, u64)>,
    ) -> Result<MembershipAnswer, TrackerError> {
        let query = since
            .map(|(epoch, version)| format!("?since={epoch}.{version}"))
            .unwrap_or_default();
        self.request(format!("/membership{query}"), None).await
    }

    async fn request<T: DeserializeOwned + Send + 'static>(
        &self,
        path: String,
        body: Option<Vec<u8>>,
    ) -> Result<T, TrackerError> {
        let agent = self.agent.clone();
        let url = format!("{}{path}", self.url);
        self.pool
            .run(move || exchange(&agent, &url, body))
            .await
            .map_err(|e| match e {
                PoolError::TooSlow(deadline) => TrackerError::TooSlow(deadline),
                PoolError::Failed(e) => TrackerError::Unreachable(e),
            })?
    }
}

/// One request (blocking), its answer parsed as `T`.
fn exchange<T: DeserializeOwned>(
    agent: &ureq::Agent,
    url: &str,
    body: Option<Vec<u8>>,
) -> Result<T, TrackerError> {
    let write = body.is_some();
    let sent = match body {
        Some(body) => agent
            .post(url)
            .header("content-type", "application/json")
            .send(&body[..]),
        None => agent.get(url).call(),
    };
    let mut response = sent.map_err(|e| TrackerError::Unreachable(e.to_string()))?;
    let status = response.status().as_u16();
    let text = response
        .body_mut()
        .with_config()
        .limit(MAX_READ_BODY as u64)
        .read_to_vec()
        .map_err(|e| TrackerError::Unreachable(e.to_string()))?;
    match status {
        200 => Ok(parse_answer(&text)?),
        // A write's 404: it must announce first.
        404 if write => Err(TrackerError::UnknownPeer),
        _ => Err(TrackerError::Refused {
            status,
            message: error_message(&text),
        }),
    }
}

/// The tracker's `{"error": ...}`, or the start of whatever it sent.
fn error_message(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("error")?.as_str().map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned())
}

pub(super) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
