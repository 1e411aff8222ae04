//! `GET /status`: what this node is doing, as JSON for scripts and the dashboard: the publication
//! scan's progress, the size of the index, and what connected peers hold.

use std::sync::Arc;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::index::{IndexDb, ScanProgress};
use crate::p2p::Holders;

#[derive(Clone)]
pub struct StatusSources {
    pub progress: Arc<ScanProgress>,
    pub db: Arc<IndexDb>,
    pub holders: Arc<Holders>,
}

pub fn status_router(sources: StatusSources) -> Router {
    Router::new()
        .route("/status", get(status))
        .with_state(sources)
}

async fn status(State(sources): State<StatusSources>) -> Json<Value> {
    let db = sources.db.clone();
    let indexed = tokio::task::spawn_blocking(move || db.count().ok())
        .await
        .ok()
        .flatten();
    let (holders, remote_paths) = sources.holders.summary();
    Json(json!({
        "scan": sources.progress.report(),
        "indexed_paths": indexed,
        "peers": {
            "holders": holders,
            "paths": remote_paths,
        },
    }))
}
