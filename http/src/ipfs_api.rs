//! A loopback-only subset of kubo's RPC (`/api/v0/...`), so that `peerix ipfs ...` and kubo's own
//! clients can drive the embedded node. Shapes and error bodies follow kubo's.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Multipart, RawQuery, Request, State};
use axum::http::{header, HeaderName, StatusCode};
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
        // kubo's error codes: 0 for a failed command (500), 1 for a client's mistake (400).
        let (status, code) = match &self {
            ApiError::BadArgument(_) => (StatusCode::BAD_REQUEST, 1),
            ApiError::Failed(_) => (StatusCode::INTERNAL_SERVER_ERROR, 0),
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

/// `?arg=...` values, in order, as kubo's RPC passes positional arguments.
fn args(request_query: Option<&str>) -> Vec<String> {
    let query = request_query.unwrap_or_default();
    url_args(query)
}

fn url_args(query: &str) -> Vec<String> {
    url_params(query)
        .into_iter()
        .filter(|(key, _)| key == "arg")
        .map(|(_, value)| value)
        .collect()
}

/// Every `key=value` of a query, decoded, in order.
fn url_params(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(key), percent_decode(value))
        })
        .collect()
}

/// A boolean option as kubo reads one: a bare `?flag` is true.
fn flag(key: &str, value: &str) -> Result<bool, ApiError> {
    match value.to_ascii_lowercase().as_str() {
        "" | "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(ApiError::BadArgument(format!(
            "option \"{key}\": could not parse value \"{value}\" as bool"
        ))),
    }
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
        .route("/api/v0/peerix/announce", post(announce::<A>))
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

/// The one layout Peerix imports files in, kubo's `ipfs add --cid-version=1`.
const ADD_LAYOUT: &str =
    "Peerix adds files only as CIDv1 with raw leaves, sha2-256, 256 KiB chunks and a balanced DAG";

/// Refuses `add` options that ask for another CID or DAG than the one layout Peerix builds, or
/// for what it does not do, rather than silently answering something else. Options that change
/// only the output (`progress`, `quiet`, `stream-channels`...) or concern kubo's repo (`pin`)
/// are accepted.
fn check_add_options(params: &[(String, String)]) -> Result<(), ApiError> {
    for (key, value) in params {
        let supported = match key.as_str() {
            "cid-version" => value == "1",
            "raw-leaves" => flag(key, value)?,
            "hash" => value == "sha2-256",
            "chunker" => value == "size-262144",
            "cid-base" => value == "base32",
            "trickle"
            | "only-hash"
            | "wrap-with-directory"
            | "inline"
            | "preserve-mode"
            | "preserve-mtime" => !flag(key, value)?,
            "mode" | "mtime" | "mtime-nsecs" | "to-files" => false,
            _ => true,
        };
        if !supported {
            let option = if value.is_empty() {
                key.clone()
            } else {
                format!("{key}={value}")
            };
            return Err(ApiError::BadArgument(format!(
                "option \"{option}\" is not supported: {ADD_LAYOUT}"
            )));
        }
    }
    Ok(())
}

/// kubo's `add`: multipart form data, one part a file (kubo-rpc-client names them `file`,
/// `file-1`...); answers one `{"Name", "Hash", "Size"}` line a file. Without `cid-version` the
/// file is still CIDv1, as from a kubo whose `Import.CidVersion` is 1; other layouts, directories
/// and UnixFS metadata (mode, mtime) are refused.
async fn add<A: IpfsApi>(
    State(api): State<Arc<A>>,
    RawQuery(query): RawQuery,
    form: Result<Multipart, MultipartRejection>,
) -> Result<Response, ApiError> {
    let mut form = form.map_err(|e| ApiError::BadArgument(e.body_text()))?;
    let added = add_files(&*api, query.as_deref().unwrap_or_default(), &mut form).await;
    if added.is_err() {
        // A client still sending its upload would see the connection closed, not the error.
        while let Ok(Some(mut field)) = form.next_field().await {
            while let Ok(Some(_)) = field.chunk().await {}
        }
    }
    Ok(ndjson(added?))
}

/// Publishes every file part of `form`; returns one `add` answer line each.
async fn add_files<A: IpfsApi>(
    api: &A,
    query: &str,
    form: &mut Multipart,
) -> Result<Vec<serde_json::Value>, ApiError> {
    check_add_options(&url_params(query))?;
    let bad = |e: axum::extract::multipart::MultipartError| ApiError::BadArgument(e.body_text());
    let mut added = Vec::new();
    while let Some(field) = form.next_field().await.map_err(bad)? {
        // kubo takes any other part as a regular file, whatever its type.
        let content_type = field.content_type().unwrap_or_default();
        if content_type == "application/x-directory"
            || content_type == "application/symlink"
            || content_type.starts_with("multipart/")
        {
            return Err(ApiError::BadArgument(format!(
                "{content_type} parts are not supported: add regular files, one part each"
            )));
        }
        // kubo reads a file's mode and mtime from the part's name (`file?mode=...`).
        if field.name().unwrap_or_default().contains('?') {
            return Err(ApiError::BadArgument(format!(
                "file mode and mtime are not supported: {ADD_LAYOUT}"
            )));
        }
        // Clients percent-encode file names; kubo decodes them and takes them as paths.
        let name = percent_decode(field.file_name().unwrap_or_default());
        let name = name.trim_start_matches('/').to_owned();
        if name.contains('/') {
            return Err(ApiError::BadArgument(format!(
                "{name}: directories are not supported: add files one by one"
            )));
        }
        let (cid, size) = add_part(api, field).await?;
        // kubo names a nameless file by its CID.
        let name = if name.is_empty() { cid.clone() } else { name };
        added.push(json!({"Name": name, "Hash": cid, "Size": size.to_string()}));
    }
    if added.is_empty() {
        return Err(ApiError::BadArgument("no file in the request".to_owned()));
    }
    Ok(added)
}

/// Publishes one multipart part; returns what [`IpfsApi::add`] does.
async fn add_part<A: IpfsApi>(
    api: &A,
    field: axum::extract::multipart::Field<'_>,
) -> Result<(String, u64), ApiError> {
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
    added
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

    #[test]
    fn refuses_add_options_for_other_layouts() {
        let check = |query: &str| check_add_options(&url_params(query));
        // What kubo-rpc-client sends by default, and `peerix ipfs add`.
        assert!(check("stream-channels=true&progress=false").is_ok());
        assert!(check("cid-version=1&raw-leaves=true&hash=sha2-256&pin=false").is_ok());
        assert!(check("chunker=size-262144&trickle=false&only-hash=False").is_ok());
        for refused in [
            "cid-version=0",
            "raw-leaves=false",
            "hash=blake2b-256",
            "chunker=rabin",
            "trickle",
            "only-hash=true",
            "wrap-with-directory=TRUE",
            "mtime=1",
        ] {
            let error = check(refused).unwrap_err();
            assert!(matches!(error, ApiError::BadArgument(_)), "{refused}");
        }
        assert!(check("trickle=maybe")
            .unwrap_err()
            .to_string()
            .contains("as bool"));
    }
}
