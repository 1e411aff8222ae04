//! Publishing the store: an index of every shared path with its narinfo and the CID its NAR is
//! published under in the embedded node, kept current by a resumable scan.

mod content;
mod db;
mod scan;

pub use content::StoreContent;
pub use db::{IndexDb, RemoteNar};
pub use scan::{ScanProgress, Scanner};

use std::sync::Arc;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

/// `GET /status`: the publication scan's progress and the size of the index, as JSON.
pub fn status_router(progress: Arc<ScanProgress>, db: Arc<IndexDb>) -> Router {
    Router::new()
        .route("/status", get(status))
        .with_state((progress, db))
}

async fn status(State((progress, db)): State<(Arc<ScanProgress>, Arc<IndexDb>)>) -> Json<Value> {
    let indexed = tokio::task::spawn_blocking(move || db.count().ok())
        .await
        .ok()
        .flatten();
    Json(json!({
        "scan": progress.report(),
        "indexed_paths": indexed,
    }))
}
