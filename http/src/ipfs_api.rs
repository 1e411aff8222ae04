//! A loopback-only subset of kubo's RPC (`/api/v0/...`), so that `peerix ipfs ...` and kubo's own
//! clients can drive the embedded node. Shapes and error bodies follow kubo's.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Multipart, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::json;

use crate::ByteStream;

/// Failures reported to RPC clients as kubo does: `{"Message", "Code", "Type": "error"}`.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadArgument(String),
    #[error("{0}")]
    Failed(String),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match &self {
            ApiError::BadArgument(_) => StatusCode::BAD_REQUEST,
            ApiError::Failed(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let body = json!({"Message": self.to_string(), "Code": 0, "Type": "error"});
        (status, Json(body)).into_response()
    }
}

pub struct NodeIdentity {
    pub peer_id: String,
    pub addresses: Vec<String>,
    pub agent_version: String,
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
    /// The raw bytes of one block, verified against `cid`.
    fn block(&self, cid: &str) -> impl Future<Output = Result<Vec<u8>, ApiError>> + Send;
    /// Peer ids of the providers of `cid` found in the DHT.
    fn find_providers(
        &self,
        cid: &str,
    ) -> impl Future<Output = Result<Vec<String>, ApiError>> + Send;
    /// Announces this node as a provider of `cid`.
    fn provide(&self, cid: &str) -> impl Future<Output = Result<(), ApiError>> + Send;
    /// Publishes `content` as a UnixFS file; returns its CID and size.
    fn add(
        &self,
        content: ByteStream,
    ) -> impl Future<Output = Result<(String, u64), ApiError>> + Send;
}

/// `?arg=...` values, in order, as kubo's RPC passes positional arguments.
fn args(request_query: Option<&str>) -> Vec<String> {
    let query = request_query.unwrap_or_default();
    url_args(query)
}

fn url_args(query: &str) -> Vec<String> {
    query
        .split('&')
        .filter_map(|pair| pair.strip_prefix("arg="))
        .map(percent_decode)
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn one_arg(query: Option<&str>) -> Result<String, ApiError> {
    args(query)
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::BadArgument("argument \"arg\" is required".to_owned()))
}

/// The RPC routes over `api`; they answer loopback clients only (the server must be run with
/// connection info, see `into_make_service_with_connect_info`).
pub fn ipfs_api_router<A: IpfsApi>(api: A) -> Router {
    let api = Arc::new(api);
    Router::new()
        .route("/api/v0/id", post(id::<A>))
        .route("/api/v0/swarm/peers", post(peers::<A>))
        .route("/api/v0/swarm/connect", post(connect::<A>))
        .route("/api/v0/cat", post(cat::<A>))
        .route("/api/v0/block/get", post(block_get::<A>))
        .route("/api/v0/peerix/status", post(status::<A>))
        .route("/api/v0/routing/findprovs", post(find_providers::<A>))
        .route("/api/v0/routing/provide", post(provide::<A>))
        // Uploads go to the node's storage; the default 2 MiB body limit would refuse most files.
        .route(
            "/api/v0/add",
            post(add::<A>).layer(DefaultBodyLimit::disable()),
        )
        .layer(middleware::from_fn(loopback_only))
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
    let body = json!({
        "ID": identity.peer_id,
        "Addresses": identity.addresses,
        "AgentVersion": identity.agent_version,
        "Protocols": [],
    });
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
    let cid = one_arg(request.uri().query())?;
    let stream = api.cat(&cid).await?;
    Ok((
        [(header::CONTENT_TYPE, "application/octet-stream")],
        Body::from_stream(stream),
    )
        .into_response())
}

async fn status<A: IpfsApi>(State(api): State<Arc<A>>) -> Result<Response, ApiError> {
    Ok(Json(api.status().await?).into_response())
}

async fn block_get<A: IpfsApi>(
    State(api): State<Arc<A>>,
    request: Request,
) -> Result<Response, ApiError> {
    let cid = one_arg(request.uri().query())?;
    let block = api.block(&cid).await?;
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], block).into_response())
}

/// kubo's query-event shape: type 4 is "provider", one response a peer.
async fn find_providers<A: IpfsApi>(
    State(api): State<Arc<A>>,
    request: Request,
) -> Result<Response, ApiError> {
    let cid = one_arg(request.uri().query())?;
    let lines: String = api
        .find_providers(&cid)
        .await?
        .into_iter()
        .map(|peer| {
            format!(
                "{}\n",
                json!({"Type": 4, "Responses": [{"ID": peer, "Addrs": []}]})
            )
        })
        .collect();
    Ok(([(header::CONTENT_TYPE, "application/json")], lines).into_response())
}

async fn provide<A: IpfsApi>(
    State(api): State<Arc<A>>,
    request: Request,
) -> Result<Response, ApiError> {
    let cid = one_arg(request.uri().query())?;
    api.provide(&cid).await?;
    Ok(Json(json!({"Type": 5, "ID": "", "Responses": null})).into_response())
}

/// kubo's `add`: multipart form data, one file part; answers `{"Name", "Hash", "Size"}`.
async fn add<A: IpfsApi>(
    State(api): State<Arc<A>>,
    mut form: Multipart,
) -> Result<Response, ApiError> {
    let bad = |e: axum::extract::multipart::MultipartError| ApiError::BadArgument(e.body_text());
    let field = form
        .next_field()
        .await
        .map_err(bad)?
        .ok_or_else(|| ApiError::BadArgument("no file in the request".to_owned()))?;
    let name = field.file_name().unwrap_or_default().to_owned();
    // The part borrows the request, so it is fed through a channel to the 'static stream `add` takes.
    let (chunks, received) = tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(4);
    let feed = async move {
        let mut field = field;
        loop {
            let next = match field.chunk().await {
                Ok(Some(chunk)) => Ok(chunk),
                Ok(None) => return,
                Err(e) => Err(std::io::Error::other(e.body_text())),
            };
            if chunks.send(next).await.is_err() {
                return;
            }
        }
    };
    let content = futures_util::stream::unfold(received, |mut received| async move {
        received.recv().await.map(|chunk| (chunk, received))
    });
    let ((), added) = tokio::join!(feed, api.add(Box::pin(content)));
    let (cid, size) = added?;
    let body = json!({"Name": if name.is_empty() { cid.clone() } else { name }, "Hash": cid, "Size": size.to_string()});
    Ok(Json(body).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_kubo_style_arguments() {
        assert_eq!(
            url_args("arg=%2Fip4%2F127.0.0.1%2Ftcp%2F1&arg=b+c&other=x"),
            vec!["/ip4/127.0.0.1/tcp/1".to_owned(), "b c".to_owned()]
        );
        assert_eq!(url_args("arg=%zz"), vec!["%zz".to_owned()]);
        assert!(url_args("").is_empty());
    }
}
