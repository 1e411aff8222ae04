//! `GET /dashboard`: a live page for the operator, served whole by this node (no outside asset, so
//! it works offline). The page is static: everything it shows it reads from `/status` and
//! `/status/throughput`, and every button is a POST to the control routes, all of them behind the
//! browser guard. The page itself reveals nothing, so a link from elsewhere may open it; a
//! strict content security policy keeps it from running any script but its own and from being
//! framed by another page (no clicking its buttons through a disguise).

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Json, Router};
use peerix_http::BrowserGuard;
use serde_json::Value;

use crate::status::StatusSources;

const PAGE: &str = include_str!("assets/dashboard.html");
const SCRIPT: &str = include_str!("assets/dashboard.js");
const STYLE: &str = include_str!("assets/dashboard.css");
const ICON: &str = include_str!("assets/icon.svg");

const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; \
    frame-ancestors 'none'";

pub fn dashboard_router(sources: StatusSources, guard: &BrowserGuard) -> Router {
    let data = Router::new()
        .route("/status/throughput", get(throughput))
        .layer(guard.clone())
        .with_state(sources);
    Router::new()
        .route("/", get(|| async { Redirect::temporary("/dashboard") }))
        .route("/dashboard", get(|| async { asset(PAGE, "text/html") }))
        .route(
            "/dashboard/dashboard.js",
            get(|| async { asset(SCRIPT, "text/javascript") }),
        )
        .route(
            "/dashboard/dashboard.css",
            get(|| async { asset(STYLE, "text/css") }),
        )
        .route(
            "/dashboard/icon.svg",
            get(|| async { asset(ICON, "image/svg+xml") }),
        )
        .merge(data)
}

/// The page's files are not cached, so an upgraded node's page is the one loaded.
fn asset(body: &'static str, kind: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, format!("{kind}; charset=utf-8")),
            (header::CACHE_CONTROL, "no-store".to_owned()),
            (header::CONTENT_SECURITY_POLICY, POLICY.to_owned()),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
            (header::X_FRAME_OPTIONS, "DENY".to_owned()),
            (header::REFERRER_POLICY, "same-origin".to_owned()),
        ],
        body,
    )
        .into_response()
}

async fn throughput(State(sources): State<StatusSources>) -> Json<Value> {
    Json(sources.throughput.json())
}
