//! Every refusal of the tracker: one enum, its status codes in one exhaustive `match`, and a
//! JSON body `{"error": "..."}` a person can act on.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use thiserror::Error;

use super::store::StoreError;
use super::transfers::TransferError;
use crate::wire::tracker::{EnvelopeError, ErrorAnswer};

#[derive(Debug, Error)]
pub enum ApiError {
    #[error("{0}")]
    Malformed(String),
    #[error(
        "writes must be signed by the peer's libp2p (ed25519) key: this body is an unsigned \
         write of an old client; see \"Tracker\" in Peerix's README"
    )]
    Unsigned,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0} has not announced itself: announce first")]
    UnknownPeer(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    TooSlow(String),
    #[error("too many requests; retry after {retry_after} s")]
    RateLimited { retry_after: u64 },
    #[error("{0}")]
    Unavailable(String),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match &self {
            Self::Malformed(_) => StatusCode::BAD_REQUEST,
            Self::Unsigned => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::UnknownPeer(_) | Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::TooSlow(_) => StatusCode::REQUEST_TIMEOUT,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        let retry_after = match &self {
            Self::RateLimited { retry_after } => Some(*retry_after),
            _ => None,
        };
        let mut response = (
            status,
            Json(ErrorAnswer {
                error: self.to_string(),
            }),
        )
            .into_response();
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

impl From<EnvelopeError> for ApiError {
    fn from(e: EnvelopeError) -> Self {
        let text = e.to_string();
        match e {
            EnvelopeError::TooLarge(_) | EnvelopeError::TooMany { .. } => Self::TooLarge(text),
            EnvelopeError::Malformed(_)
            | EnvelopeError::UnsupportedKey
            | EnvelopeError::WrongRoute { .. } => Self::Malformed(text),
            EnvelopeError::BadSignature
            | EnvelopeError::Stale { .. }
            | EnvelopeError::FromTheFuture { .. } => Self::Forbidden(text),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        let text = e.to_string();
        match e {
            StoreError::UnknownPeer(peer) => Self::UnknownPeer(peer.to_string()),
            StoreError::NotHolder { .. } => Self::Forbidden(text),
            StoreError::TooManyPackages { .. } => Self::TooLarge(text),
            StoreError::AddressTooLong(_) => Self::Malformed(text),
            StoreError::TooManyNonces => Self::RateLimited { retry_after: 5 },
            StoreError::Database(_)
            | StoreError::TooManyPeers(_)
            | StoreError::TooManyReputations(_)
            | StoreError::Corrupt(_) => Self::Unavailable(text),
        }
    }
}

impl From<TransferError> for ApiError {
    fn from(e: TransferError) -> Self {
        let text = e.to_string();
        match e {
            TransferError::NotAParty
            | TransferError::WrongRole(..)
            | TransferError::AlreadyReported(..) => Self::Forbidden(text),
            TransferError::SamePeer => Self::Malformed(text),
            TransferError::Unknown(_) => Self::NotFound(text),
            TransferError::TooMany => Self::RateLimited { retry_after: 10 },
        }
    }
}
