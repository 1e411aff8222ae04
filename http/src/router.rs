//! Routes: `/nix-cache-info`, `/<hash>.narinfo`, `/nar/<filehash>.nar[.xz|.zst|.bz2]`, `/health`,
//! `/metrics`.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures_util::StreamExt;

use crate::encoding::{accepts_zstd, zstd_stream};
use crate::error::FrontError;
use crate::metrics::Outcome;
use crate::{BinaryCache, ByteRange, FrontCounters, Metrics, NarHash, StoreHash};

struct Front<C> {
    cache: C,
    metrics: Arc<Metrics>,
    counters: Arc<FrontCounters>,
    cache_info: String,
}

/// The binary-cache routes over `cache`. GET routes answer HEAD too, without producing bodies.
pub fn router<C: BinaryCache>(cache: C, metrics: Arc<Metrics>) -> Router {
    let cache_info = cache.cache_info().render();
    let front = Arc::new(Front {
        cache,
        counters: metrics.front().clone(),
        metrics,
        cache_info,
    });
    Router::new()
        .route("/nix-cache-info", get(cache_info_route::<C>))
        .route("/{file}", get(narinfo_route::<C>))
        .route("/nar/{file}", get(nar_route::<C>))
        .route(
            "/health",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "application/json")],
                    "{\"status\":\"ok\"}\n",
                )
            }),
        )
        .route("/metrics", get(metrics_route::<C>))
        .with_state(front)
}

async fn cache_info_route<C: BinaryCache>(State(front): State<Arc<Front<C>>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/x-nix-cache-info")],
        front.cache_info.clone(),
    )
        .into_response()
}

async fn metrics_route<C: BinaryCache>(State(front): State<Arc<Front<C>>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        front.metrics.render_all().await,
    )
        .into_response()
}

async fn narinfo_route<C: BinaryCache>(
    State(front): State<Arc<Front<C>>>,
    Path(file): Path<String>,
) -> Response {
    let started = Instant::now();
    let result = narinfo(&front.cache, &file).await;
    let outcome = match &result {
        Ok(_) => Outcome::Hit,
        Err(FrontError::NotFound) => Outcome::Miss,
        Err(FrontError::BadRequest(_)) => Outcome::BadRequest,
        Err(_) => Outcome::Error,
    };
    front.counters.narinfo(outcome, started.elapsed());
    result.into_response()
}

async fn narinfo<C: BinaryCache>(cache: &C, file: &str) -> Result<Response, FrontError> {
    let hash = file.strip_suffix(".narinfo").ok_or(FrontError::NotFound)?;
    let hash = StoreHash::parse(hash).map_err(|_| FrontError::BadRequest("store hash"))?;
    let info = cache.narinfo(hash).await?.ok_or(FrontError::NotFound)?;
    Ok((
        [(header::CONTENT_TYPE, "text/x-nix-narinfo")],
        info.render(),
    )
        .into_response())
}

async fn nar_route<C: BinaryCache>(
    State(front): State<Arc<Front<C>>>,
    method: Method,
    headers: HeaderMap,
    Path(file): Path<String>,
) -> Response {
    let result = nar(&front, &method, &headers, &file).await;
    if let Err(e) = &result {
        if !matches!(
            e,
            FrontError::NotFound | FrontError::RangeNotSatisfiable { .. }
        ) {
            front
                .counters
                .request_failed(matches!(e, FrontError::BadRequest(_)));
        }
    }
    result.into_response()
}

/// The file suffixes of NARs Nix asks for: plain, or compressed the ways upstream caches
/// compress them (a file named by the hash of its own bytes either way).
const NAR_SUFFIXES: [&str; 4] = [".nar", ".nar.xz", ".nar.zst", ".nar.bz2"];

fn nar_file_digest(file: &str) -> Option<&str> {
    NAR_SUFFIXES
        .iter()
        .find_map(|suffix| file.strip_suffix(suffix))
}

async fn nar<C: BinaryCache>(
    front: &Front<C>,
    method: &Method,
    headers: &HeaderMap,
    file: &str,
) -> Result<Response, FrontError> {
    let digest = nar_file_digest(file).ok_or(FrontError::NotFound)?;
    let hash = NarHash::from_base32(digest).map_err(|_| FrontError::BadRequest("NAR hash"))?;
    let nar = front.cache.nar(hash).await?.ok_or(FrontError::NotFound)?;
    let size = nar.size;

    let header_text = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    let range = header_text(header::RANGE).and_then(ByteRange::parse);
    let (start, end) = match range {
        Some(range) => range
            .resolve(size)
            .ok_or(FrontError::RangeNotSatisfiable { size })?,
        None => (0, size),
    };
    // Ranges address the identity bytes, so only whole bodies are compressed.
    let compress =
        range.is_none() && header_text(header::ACCEPT_ENCODING).is_some_and(accepts_zstd);

    let mut response = Response::builder()
        .header(header::CONTENT_TYPE, "application/x-nix-nar")
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::CACHE_CONTROL, "public, max-age=31536000, immutable")
        .header(header::VARY, "Accept-Encoding");
    if range.is_some() {
        response = response.status(StatusCode::PARTIAL_CONTENT).header(
            header::CONTENT_RANGE,
            format!("bytes {start}-{}/{size}", end - 1),
        );
    }
    if compress {
        response = response.header(header::CONTENT_ENCODING, "zstd");
    } else {
        response = response.header(header::CONTENT_LENGTH, end - start);
    }
    if method == Method::HEAD {
        return Ok(response.body(Body::empty()).unwrap_or_default());
    }

    front.counters.nar_started();
    let counters = front.counters.clone();
    let stream = nar.source.stream(start, end).inspect(move |chunk| {
        if let Ok(bytes) = chunk {
            counters.nar_bytes(bytes.len());
        }
    });
    let body = if compress {
        Body::from_stream(zstd_stream(Box::pin(stream)).map_err(crate::CacheError::Io)?)
    } else {
        Body::from_stream(stream)
    };
    Ok(response.body(body).unwrap_or_default())
}
