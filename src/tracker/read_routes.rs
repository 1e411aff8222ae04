//! The read routes: answered from memory, but for the CID routes (a range of the database).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;
use peerix_http::StoreHash;
use peerix_node::PeerId;
use serde::Deserialize;

use super::errors::ApiError;
use super::server::Tracker;
use super::write_routes::read_body;
use crate::wire::tracker::{
    CidAnswer, CidsAnswer, CidsBatchRequest, MembershipAnswer, PeerEntry, PeersAnswer,
    ReputationAnswer, StatusAnswer, MAX_CIDS_BATCH, MAX_ID_LEN,
};

/// Providers per `/find` answer.
pub const MAX_PROVIDERS: usize = 20;
/// The body of a full `/cids/batch`: 1,000 quoted hashes and then some.
const MAX_BATCH_BODY: usize = 64 << 10;

type Answer<T> = Result<Json<T>, ApiError>;

fn parse_hash(text: &str) -> Result<StoreHash, ApiError> {
    StoreHash::parse(text).map_err(|_| {
        ApiError::Malformed(format!(
            "{:?} is not a store hash (32 nixbase32 characters)",
            text.chars().take(64).collect::<String>()
        ))
    })
}

pub(super) async fn status(State(tracker): State<Arc<Tracker>>) -> Answer<StatusAnswer> {
    let (peers, packages, distinct_packages, cid_mappings) = tracker.store.counts();
    Ok(Json(StatusAnswer {
        status: "ok".to_owned(),
        peers,
        packages,
        distinct_packages,
        cid_mappings,
        version: env!("CARGO_PKG_VERSION").to_owned(),
    }))
}

/// Peers a `/peers?sample=N` answer holds at most.
pub const MAX_SAMPLE: usize = 64;

#[derive(Deserialize)]
pub(super) struct PeersQuery {
    sample: Option<String>,
}

/// Every live peer, best first; with `?sample=N`, N of them at random (what a node that wants
/// a few peers to connect to asks, so that a large network's list is not sent every time).
pub(super) async fn peers(
    State(tracker): State<Arc<Tracker>>,
    Query(query): Query<PeersQuery>,
) -> Answer<PeersAnswer> {
    let peers = match query.sample.as_deref() {
        None => tracker.store.peers(),
        Some(text) => {
            let count = text
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=MAX_SAMPLE).contains(n))
                .ok_or_else(|| {
                    ApiError::Malformed(format!("sample must be a number from 1 to {MAX_SAMPLE}"))
                })?;
            tracker.store.sample_peers(count)
        }
    };
    let peers = peers
        .into_iter()
        .map(|p| PeerEntry {
            peer_id: p.peer.to_string(),
            addr: p.ip.to_string(),
            port: p.port,
            libp2p_peer_id: p.peer.to_string(),
            last_seen: p.last_seen,
            score: p.score,
            packages: p.packages,
            multiaddrs: p.dial_addrs,
        })
        .collect();
    Ok(Json(PeersAnswer { peers }))
}

/// Written from pieces rendered per peer (see `find_answer.rs`): a
/// [`crate::wire::tracker::FindAnswer`].
pub(super) async fn find(
    State(tracker): State<Arc<Tracker>>,
    Path(hash): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let hash = parse_hash(&hash)?;
    let body = tracker.store.find_json(&hash, MAX_PROVIDERS);
    Ok(([(header::CONTENT_TYPE, "application/json")], body))
}

#[derive(Deserialize)]
pub(super) struct MembershipQuery {
    since: Option<String>,
}

pub(super) async fn membership(
    State(tracker): State<Arc<Tracker>>,
    Query(query): Query<MembershipQuery>,
) -> Answer<MembershipAnswer> {
    let since = match query.since.as_deref() {
        None => None,
        Some(text) => Some(
            text.split_once('.')
                .and_then(|(e, v)| Some((e.parse().ok()?, v.parse().ok()?)))
                .ok_or_else(|| {
                    ApiError::Malformed("since must be EPOCH.VERSION, two integers".to_owned())
                })?,
        ),
    };
    let store = &tracker.store;
    Ok(Json(store.membership(since)))
}

pub(super) async fn cid(
    State(tracker): State<Arc<Tracker>>,
    Path(hash): Path<String>,
) -> Answer<CidAnswer> {
    let hash = parse_hash(&hash)?;
    match tracker.store.cid(&hash)? {
        Some(cid) => Ok(Json(CidAnswer {
            hash: hash.to_string(),
            cid: cid.to_string(),
        })),
        None => Err(ApiError::NotFound(format!("no CID known for {hash}"))),
    }
}

#[derive(Deserialize)]
pub(super) struct CidsQuery {
    after: Option<String>,
    limit: Option<usize>,
}

pub(super) async fn cids(
    State(tracker): State<Arc<Tracker>>,
    Query(query): Query<CidsQuery>,
) -> Answer<CidsAnswer> {
    let after = query.after.as_deref().map(parse_hash).transpose()?;
    let limit = query.limit.unwrap_or(MAX_CIDS_BATCH).min(MAX_CIDS_BATCH);
    let cids = tracker
        .store
        .cids_after(after.as_ref(), limit)?
        .into_iter()
        .map(|(hash, cid)| (hash.to_string(), cid.to_string()))
        .collect();
    Ok(Json(CidsAnswer { cids }))
}

pub(super) async fn cids_batch(
    State(tracker): State<Arc<Tracker>>,
    body: Body,
) -> Answer<CidsAnswer> {
    let body = read_body(body, MAX_BATCH_BODY).await?;
    let request: CidsBatchRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::Malformed(format!("expected {{\"nar_hashes\": [...]}}: {e}")))?;
    if request.nar_hashes.len() > MAX_CIDS_BATCH {
        return Err(ApiError::TooLarge(format!(
            "{} hashes; at most {MAX_CIDS_BATCH} per batch",
            request.nar_hashes.len()
        )));
    }
    let mut cids = std::collections::BTreeMap::new();
    for text in &request.nar_hashes {
        let hash = parse_hash(text)?;
        if let Some(cid) = tracker.store.cid(&hash)? {
            cids.insert(hash.to_string(), cid.to_string());
        }
    }
    Ok(Json(CidsAnswer { cids }))
}

pub(super) async fn reputation(
    State(tracker): State<Arc<Tracker>>,
    Path(peer): Path<String>,
) -> Answer<ReputationAnswer> {
    let peer: PeerId = (peer.len() <= MAX_ID_LEN)
        .then(|| peer.parse().ok())
        .flatten()
        .ok_or_else(|| ApiError::Malformed("not a libp2p peer id".to_owned()))?;
    let reputation = tracker.store.reputation(peer);
    Ok(Json(ReputationAnswer {
        peer_id: peer.to_string(),
        total_shared: reputation.bytes_shared,
        total_received: reputation.bytes_received,
        successful_transfers: reputation.successful,
        failed_transfers: reputation.failed,
        score: reputation.score(),
    }))
}
