//! A loopback-only subset of kubo's RPC (`/api/v0/...`), so that `peerix ipfs ...` and kubo's own
//! clients can drive the embedded node. Shapes and error bodies follow kubo's.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderName, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::json;

use crate::{BrowserGuard, ByteStream};

mod add;
mod args;

use args::{args, flag, one_arg, url_args, url_params};

/// Failures reported to RPC clients as kubo does: `{"Message", "Code", "Type": "error"}`.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadArgument(String),
    #[error("{0}")]
    Failed(String),
    /// An upload beyond the server's limit (413).
    #[error("{0}")]
    TooLarge(String),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // kubo's error codes: 0 for a failed command (500), 1 for a client's mistake (400).
        let (status, code) = match &self {
            ApiError::BadArgument(_) => (StatusCode::BAD_REQUEST, 1),
            ApiError::Failed(_) => (StatusCode::INTERNAL_SERVER_ERROR, 0),
            ApiError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, 1),
        };
        let body = json!({"Message": self.to_string(), "Code": code, "Type": "error"});
        (status, Json(body)).into_response()
    }
}

pub struct NodeIdentity {
    pub peer_id: String,
    /// kubo's `PublicKey`: the protobuf-encoded public key in base64, when it is known.
    pub public_key: Option<String>,
    pub addresses: Vec<String>,
    pub agent_version: String,
}

/// kubo marks answers that are a stream of JSON values, one a line, with this header.
const CHUNKED_OUTPUT: HeaderName = HeaderName::from_static("x-chunked-output");
/// kubo marks raw byte answers (`cat`, `block/get`) with this header, and sends them as text so
/// that no browser renders them.
const STREAM_OUTPUT: HeaderName = HeaderName::from_static("x-stream-output");

/// A stream of JSON values as kubo sends it: one a line, each ended by a newline.
fn ndjson(values: impl IntoIterator<Item = serde_json::Value>) -> Response {
    let lines: String = values.into_iter().map(|v| format!("{v}\n")).collect();
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (CHUNKED_OUTPUT, "1"),
        ],
        lines,
    )
        .into_response()
}

pub trait IpfsApi: Send + Sync + 'static {
    fn id(&self) -> impl Future<Output = Result<NodeIdentity, ApiError>> + Send;
    /// Connected peers as `(peer id, address)`.
    fn peers(&self) -> impl Future<Output = Result<Vec<(String, String)>, ApiError>> + Send;
    /// Connects to a multiaddr; returns the peer id found there.
    fn connect(&self, addr: &str) -> impl Future<Output = Result<String, ApiError>> + Send;
    fn cat(&self, cid: &str) -> impl Future<Output = Result<ByteStream, ApiError>> + Send;
    /// The node's own state (Peerix's, not a kubo command): addresses, NAT status, traffic.
    fn status(&self) -> impl Future<Output = Result<serde_json::Value, ApiError>> + Send;
    /// Stops (`true`) or resumes (`false`) DHT announcements (Peerix's own command).
    fn pause_announcements(
        &self,
        paused: bool,
    ) -> impl Future<Output = Result<(), ApiError>> + Send;
    /// The raw bytes of one block, verified against `cid`.
    fn block(&self, cid: &str) -> impl Future<Output = Result<Vec<u8>, ApiError>> + Send;
    /// Peer ids of the providers of `cid` found in the DHT.
    fn find_providers(
        &self,
        cid: &str,
    ) -> impl Future<Output = Result<Vec<String>, ApiError>> + Send;
    /// Announces this node as a provider of `cid`.
    fn provide(&self, cid: &str) -> impl Future<Output = Result<(), ApiError>> + Send;
    /// Publishes `content` as a UnixFS file; returns its CID and what kubo reports as its size:
    /// the cumulative size of its DAG (every block's bytes), not the file's length.
    fn add(
        &self,
        content: ByteStream,
    ) -> impl Future<Output = Result<(String, u64), ApiError>> + Send;
}

/// The RPC routes over `api`. They answer loopback clients only (the server must give requests
/// their `ConnectInfo<SocketAddr>`, as [`crate::serve`] does) and only what `guard` lets through;
/// an `add` request body may take `max_add_size` bytes; the other routes read no body.
pub fn ipfs_api_router<A: IpfsApi>(api: A, max_add_size: u64, guard: &BrowserGuard) -> Router {
    let api = Arc::new(api);
    Router::new()
        .route("/api/v0/id", post(id::<A>))
        .route("/api/v0/swarm/peers", post(peers::<A>))
        .route("/api/v0/swarm/connect", post(connect::<A>))
        .route("/api/v0/cat", post(cat::<A>))
        .route("/api/v0/block/get", post(block_get::<A>))
        .route("/api/v0/peerix/status", post(status::<A>))
        .route("/api/v0/peerix/announce", post(announce::<A>))
        .route("/api/v0/routing/findprovs", post(find_providers::<A>))
        .route("/api/v0/routing/provide", post(provide::<A>))
        .route(
            "/api/v0/add",
            post(move |state, query, headers, form| {
                add::add::<A>(state, query, headers, form, max_add_size)
            })
            .layer(DefaultBodyLimit::max(
                usize::try_from(max_add_size).unwrap_or(usize::MAX),
            )),
        )
        .layer(middleware::from_fn(loopback_only))
        .layer(guard.clone())
        .with_state(api)
}

async fn loopback_only(
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    if peer.ip().is_loopback() {
        next.run(request).await
    } else {
        (
            StatusCode::FORBIDDEN,
            "the RPC API answers loopback clients only\n",
        )
            .into_response()
    }
}

async fn id<A: IpfsApi>(State(api): State<Arc<A>>) -> Result<Response, ApiError> {
    let identity = api.id().await?;
    let mut body = json!({
        "ID": identity.peer_id,
        "Addresses": identity.addresses,
        "AgentVersion": identity.agent_version,
        "Protocols": [],
    });
    if let Some(key) = identity.public_key {
        body["PublicKey"] = key.into();
    }
    Ok(Json(body).into_response())
}

async fn peers<A: IpfsApi>(State(api): State<Arc<A>>) -> Result<Response, ApiError> {
    let peers: Vec<_> = api
        .peers()
        .await?
        .into_iter()
        .map(|(peer, addr)| json!({"Peer": peer, "Addr": addr}))
        .collect();
    Ok(Json(json!({ "Peers": peers })).into_response())
}

async fn connect<A: IpfsApi>(
    State(api): State<Arc<A>>,
    request: Request,
) -> Result<Response, ApiError> {
    let addrs = args(request.uri().query());
    if addrs.is_empty() {
        return Err(ApiError::BadArgument(
            "argument \"address\" is required".to_owned(),
        ));
    }
    let mut strings = Vec::new();
    for addr in addrs {
        let peer = api.connect(&addr).await?;
        strings.push(format!("connect {peer} success"));
    }
    Ok(Json(json!({ "Strings": strings })).into_response())
}

async fn cat<A: IpfsApi>(
    State(api): State<Arc<A>>,
    request: Request,
) -> Result<Response, ApiError> {
    let query = request.uri().query().unwrap_or_default();
    // Parts of a file are not served: the whole file would be the wrong answer.
    for (key, _) in url_params(query) {
        if key == "offset" || key == "length" {
            return Err(ApiError::BadArgument(format!(
                "option \"{key}\" is not supported: cat reads whole files"
            )));
        }
    }
    let path = one_arg(Some(query))?;
    // kubo takes an IPFS path as well as a bare CID.
    let cid = path.strip_prefix("/ipfs/").unwrap_or(&path);
    let stream = api.cat(cid).await?;
    Ok((
        [(header::CONTENT_TYPE, "text/plain"), (STREAM_OUTPUT, "1")],
        Body::from_stream(stream),
    )
        .into_response())
}

async fn status<A: IpfsApi>(State(api): State<Arc<A>>) -> Result<Response, ApiError> {
    Ok(Json(api.status().await?).into_response())
}

/// `?arg=pause` or `?arg=resume`.
async fn announce<A: IpfsApi>(
    State(api): State<Arc<A>>,
    request: Request,
) -> Result<Response, ApiError> {
    let paused = match one_arg(request.uri().query())?.as_str() {
        "pause" => true,
        "resume" => false,
        other => {
            return Err(ApiError::BadArgument(format!(
                "{other:?}: expected pause or resume"
            )))
        }
    };
    api.pause_announcements(paused).await?;
    Ok(Json(json!({ "paused": paused })).into_response())
}

async fn block_get<A: IpfsApi>(
    State(api): State<Arc<A>>,
    request: Request,
) -> Result<Response, ApiError> {
    let cid = one_arg(request.uri().query())?;
    let block = api.block(&cid).await?;
    Ok((
        [(header::CONTENT_TYPE, "text/plain"), (STREAM_OUTPUT, "1")],
        block,
    )
        .into_response())
}

/// kubo's query events (go-libp2p's `routing.QueryEvent`), one a line: type 4 is "provider",
/// with one response a peer.
async fn find_providers<A: IpfsApi>(
    State(api): State<Arc<A>>,
    request: Request,
) -> Result<Response, ApiError> {
    let cid = one_arg(request.uri().query())?;
    let providers = api.find_providers(&cid).await?;
    Ok(ndjson(providers.into_iter().map(
        |peer| json!({"Extra": "", "ID": "", "Responses": [{"Addrs": [], "ID": peer}], "Type": 4}),
    )))
}

/// kubo streams the DHT's query events while it provides, and nothing else. The embedded node
/// reports none, so a success is an empty stream; a failure is an error.
async fn provide<A: IpfsApi>(
    State(api): State<Arc<A>>,
    request: Request,
) -> Result<Response, ApiError> {
    let query = request.uri().query().unwrap_or_default();
    for (key, value) in url_params(query) {
        // The node announces a file by its root alone, never block by block.
        if key == "recursive" && flag(&key, &value)? {
            return Err(ApiError::BadArgument(
                "option \"recursive\" is not supported: files are announced by their root"
                    .to_owned(),
            ));
        }
    }
    let cids = url_args(query);
    if cids.is_empty() {
        return Err(ApiError::BadArgument(
            "argument \"key\" is required".to_owned(),
        ));
    }
    for cid in cids {
        api.provide(&cid).await?;
    }
    Ok(ndjson([]))
}
