//! The local controls of the publication scan and the DHT announcements, under the old
//! program's routes that users' scripts call: `POST /scan/{pause,resume}`, `POST /scan/now`,
//! `POST /reannounce/{pause,resume}` and `GET /announce-status`; and the emergency stop of all
//! peer-to-peer traffic, `POST /p2p/{stop,start}`. Each answers the state it leaves, and sits
//! behind the browser guard: a web page can neither press them nor read them.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use peerix_http::BrowserGuard;
use serde_json::{json, Value};
use thiserror::Error;

use crate::status::{announcements_json, scan_json, StatusSources};

#[derive(Debug, Error)]
pub enum ControlError {
    #[error("no such control: {0:?} (pause or resume; stop or start)")]
    UnknownAction(String),
    #[error("the node does not answer: {0}")]
    Node(peerix_node::NodeError),
}

impl IntoResponse for ControlError {
    fn into_response(self) -> Response {
        let status = match self {
            Self::UnknownAction(_) => StatusCode::NOT_FOUND,
            Self::Node(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        (status, Json(json!({ "error": self.to_string() }))).into_response()
    }
}

pub fn control_router(sources: StatusSources, guard: &BrowserGuard) -> Router {
    Router::new()
        .route("/scan/now", post(rescan_now))
        .route("/scan/{action}", post(scan))
        .route("/reannounce/{action}", post(reannounce))
        .route("/announce-status", get(announce_status))
        .route("/p2p/{action}", post(traffic))
        .layer(guard.clone())
        .with_state(sources)
}

fn paused(action: &str) -> Result<bool, ControlError> {
    match action {
        "pause" => Ok(true),
        "resume" => Ok(false),
        other => Err(ControlError::UnknownAction(
            other.chars().take(32).collect(),
        )),
    }
}

async fn scan(
    State(sources): State<StatusSources>,
    Path(action): Path<String>,
) -> Result<Json<Value>, ControlError> {
    sources.scan_control.pause(paused(&action)?);
    Ok(Json(scan_json(&sources)))
}

async fn rescan_now(State(sources): State<StatusSources>) -> Json<Value> {
    sources.scan_control.rescan_now();
    Json(scan_json(&sources))
}

async fn reannounce(
    State(sources): State<StatusSources>,
    Path(action): Path<String>,
) -> Result<Json<Value>, ControlError> {
    let paused = paused(&action)?;
    sources
        .node
        .pause_announcements(paused)
        .await
        .map_err(ControlError::Node)?;
    announce_status(State(sources)).await
}

async fn traffic(
    State(sources): State<StatusSources>,
    Path(action): Path<String>,
) -> Result<Json<Value>, ControlError> {
    let stopped = match action.as_str() {
        "stop" => true,
        "start" => false,
        other => {
            return Err(ControlError::UnknownAction(
                other.chars().take(32).collect(),
            ))
        }
    };
    let node = &sources.node;
    node.stop_traffic(stopped)
        .await
        .map_err(ControlError::Node)?;
    let status = node.status().await.map_err(ControlError::Node)?;
    Ok(Json(json!({
        "traffic_stopped": status.traffic_stopped,
        "peers": status.peers.len(),
    })))
}

async fn announce_status(
    State(sources): State<StatusSources>,
) -> Result<Json<Value>, ControlError> {
    let status = sources.node.status().await.map_err(ControlError::Node)?;
    let mut answer = announcements_json(&status.announcements);
    answer["provided_keys"] = json!(status.provided_keys);
    Ok(Json(answer))
}
