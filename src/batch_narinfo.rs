//! `POST /batch-narinfo {"hashes": [...]}`: the old program's route for scripts, many narinfos
//! in one request, each looked up as Nix's `/<hash>.narinfo` would be (this store, then peers),
//! answered `{hash: narinfo text or null}`. At most [`MAX_HASHES`] a request, a few at a time.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use futures_util::stream::{self, StreamExt};
use peerix_http::{BinaryCache, BrowserGuard, StoreHash};
use serde::Deserialize;
use thiserror::Error;

use crate::fetch::P2pCache;

/// Hashes one request may ask for, as the old program allowed.
pub const MAX_HASHES: usize = 100;
/// Lookups of one request under way at once.
const AT_ONCE: usize = 8;
/// 100 hashes of 32 characters, quoted and separated, fit well within this.
const MAX_BODY: usize = 16 << 10;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchRequest {
    hashes: Vec<String>,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum BatchError {
    #[error("the body is not {{\"hashes\": [...]}}: {0}")]
    BadBody(String),
    #[error("{0} hashes asked, at most {MAX_HASHES} a request")]
    TooMany(usize),
    #[error("{0:?} is not a store hash")]
    BadHash(String),
}

impl IntoResponse for BatchError {
    fn into_response(self) -> Response {
        let status = match self {
            Self::BadBody(_) | Self::BadHash(_) => StatusCode::BAD_REQUEST,
            Self::TooMany(_) => StatusCode::PAYLOAD_TOO_LARGE,
        };
        (status, format!("{self}\n")).into_response()
    }
}

/// The store hashes a request body asks for, checked.
pub fn parse_request(body: &[u8]) -> Result<Vec<StoreHash>, BatchError> {
    if body.len() > MAX_BODY {
        return Err(BatchError::TooMany(body.len() / 35));
    }
    let request: BatchRequest =
        serde_json::from_slice(body).map_err(|e| BatchError::BadBody(e.to_string()))?;
    if request.hashes.len() > MAX_HASHES {
        return Err(BatchError::TooMany(request.hashes.len()));
    }
    request
        .hashes
        .iter()
        .map(|h| StoreHash::parse(h).map_err(|_| BatchError::BadHash(h.chars().take(64).collect())))
        .collect()
}

/// The route, behind `guard` (it tells what this machine and its peers hold).
pub fn batch_narinfo_router(cache: Arc<P2pCache>, guard: &BrowserGuard) -> Router {
    Router::new()
        .route("/batch-narinfo", post(batch_narinfo))
        .layer(guard.clone())
        .with_state(cache)
}

async fn batch_narinfo(
    State(cache): State<Arc<P2pCache>>,
    body: axum::body::Bytes,
) -> Result<Json<BTreeMap<String, Option<String>>>, BatchError> {
    let hashes = parse_request(&body)?;
    let answers = stream::iter(hashes)
        .map(|hash| {
            let cache = cache.clone();
            async move {
                let narinfo = match cache.narinfo(hash).await {
                    Ok(found) => found.map(|n| n.render()),
                    Err(e) => {
                        tracing::warn!(%hash, error = %e, "batch narinfo lookup failed");
                        None
                    }
                };
                (hash.to_string(), narinfo)
            }
        })
        .buffer_unordered(AT_ONCE)
        .collect()
        .await;
    Ok(Json(answers))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_checked_before_any_lookup() {
        let hash = "7rjj86a15146cq1d3fmbmhdcd6lkb5ln";
        let ok = parse_request(format!(r#"{{"hashes": ["{hash}"]}}"#).as_bytes()).unwrap();
        assert_eq!(ok, vec![StoreHash::parse(hash).unwrap()]);
        assert_eq!(parse_request(br#"{"hashes": []}"#), Ok(vec![]));
        assert!(matches!(
            parse_request(b"nonsense"),
            Err(BatchError::BadBody(_))
        ));
        assert!(matches!(
            parse_request(br#"{"hashes": [], "extra": 1}"#),
            Err(BatchError::BadBody(_))
        ));
        assert_eq!(
            parse_request(br#"{"hashes": ["../etc"]}"#),
            Err(BatchError::BadHash("../etc".to_owned()))
        );
        let many = vec![format!("\"{hash}\""); MAX_HASHES + 1].join(",");
        assert_eq!(
            parse_request(format!(r#"{{"hashes": [{many}]}}"#).as_bytes()),
            Err(BatchError::TooMany(MAX_HASHES + 1))
        );
        assert!(matches!(
            parse_request(&vec![b' '; MAX_BODY + 1]),
            Err(BatchError::TooMany(_))
        ));
    }
}
