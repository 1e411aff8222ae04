//! One error type for every route, turned into a status by one exhaustive match.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use thiserror::Error;

use crate::CacheError;

#[derive(Debug, Error)]
pub enum FrontError {
    #[error("malformed request: {0}")]
    BadRequest(&'static str),
    #[error("not found")]
    NotFound,
    #[error("range not satisfiable for a {size}-byte NAR")]
    RangeNotSatisfiable { size: u64 },
    #[error(transparent)]
    Cache(#[from] CacheError),
}

impl IntoResponse for FrontError {
    fn into_response(self) -> Response {
        let status = match &self {
            FrontError::BadRequest(_) => StatusCode::BAD_REQUEST,
            FrontError::NotFound => StatusCode::NOT_FOUND,
            FrontError::RangeNotSatisfiable { .. } => StatusCode::RANGE_NOT_SATISFIABLE,
            FrontError::Cache(
                CacheError::Database(_) | CacheError::Io(_) | CacheError::Corrupt(_),
            ) => {
                tracing::error!(error = %self, "request failed");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        let body = match &self {
            FrontError::BadRequest(what) => format!("bad request: {what}\n"),
            FrontError::Cache(_) => "internal error\n".to_owned(),
            other => format!("{other}\n"),
        };
        let mut response = (status, body).into_response();
        if let FrontError::RangeNotSatisfiable { size } = self {
            if let Ok(value) = format!("bytes */{size}").parse() {
                response.headers_mut().insert(header::CONTENT_RANGE, value);
            }
        }
        response
    }
}
