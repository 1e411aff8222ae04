//! `GET /why/{hash}`: why Nix does or does not get a path from this node: its own store shares it,
//! a filter pattern hides it, peers hold it, their answer was refused (and for what), or nobody
//! known holds it. Read from what the node knows already (its store, the holders, the refusal
//! log): it fetches nothing, so it costs what a narinfo hit costs.

mod target;

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use peerix_http::{BrowserGuard, StoreHash};
use serde_json::{json, Value};

use crate::fetch::{PullThrough, Remote};
use crate::filter::PathFilter;
use crate::store::LocalStore;
pub use target::{store_hash_of, TargetError};

/// Holders named in the explanation at most (the JSON's `holders` has them all).
const HOLDERS_SHOWN: usize = 8;

#[derive(Clone)]
pub struct WhySources {
    pub store: Arc<LocalStore>,
    pub filter: PathFilter,
    /// What asks peers, when there is an embedded node.
    pub remote: Option<Arc<Remote>>,
    /// What asks the upstream cache for what no peer has (`--pull-through`).
    pub pull_through: Option<Arc<PullThrough>>,
}

/// `/why/{hash}`, behind `guard` like `/status`: it tells what this machine holds.
pub fn why_router(sources: WhySources, guard: &BrowserGuard) -> Router {
    Router::new()
        .route("/why/{target}", get(why))
        .layer(guard.clone())
        .with_state(sources)
}

async fn why(State(sources): State<WhySources>, Path(target): Path<String>) -> Response {
    let hash = match store_hash_of(&target) {
        Ok(hash) => hash,
        Err(e) => {
            let error = json!({ "error": e.to_string() });
            return (StatusCode::BAD_REQUEST, Json(error)).into_response();
        }
    };
    let store = sources.store.clone();
    let filter = sources.filter.clone();
    // The store database is read on a blocking thread, as SQLite may wait for a lock.
    let local = tokio::task::spawn_blocking(move || local_verdict(&store, &filter, hash)).await;
    let verdict = match local {
        Ok(Ok(Some(verdict))) => verdict,
        Ok(Ok(None)) => remote_verdict(
            sources.remote.as_deref(),
            sources.pull_through.as_deref(),
            hash,
        ),
        Ok(Err(e)) => return internal_error(&e),
        Err(e) => return internal_error(&e),
    };
    Json(verdict.into_json(hash)).into_response()
}

/// A failure to read the store: logged, and not described to the client.
fn internal_error(error: &dyn std::fmt::Display) -> Response {
    tracing::warn!(%error, "why: cannot read the local store");
    let error = json!({ "error": "cannot read the local store (see the log)" });
    (StatusCode::INTERNAL_SERVER_ERROR, Json(error)).into_response()
}

/// A verdict: its name, a one-line summary, detail lines, and the facts as JSON fields.
struct Verdict {
    name: &'static str,
    summary: String,
    details: Vec<String>,
    facts: Value,
}

impl Verdict {
    fn into_json(self, hash: StoreHash) -> Value {
        let mut answer = self.facts;
        answer["hash"] = json!(hash.to_string());
        answer["verdict"] = json!(self.name);
        answer["summary"] = json!(self.summary);
        answer["details"] = json!(self.details);
        answer
    }
}

/// What the local store says: shared, hidden by a pattern, or `None` when it lacks the path.
fn local_verdict(
    store: &LocalStore,
    filter: &PathFilter,
    hash: StoreHash,
) -> Result<Option<Verdict>, peerix_http::CacheError> {
    let Some(info) = store.path_info(hash)? else {
        return Ok(None);
    };
    let path = info.path.to_absolute();
    if let Some(pattern) = filter.hiding_pattern(info.path.basename()) {
        return Ok(Some(Verdict {
            name: "filtered",
            summary: format!("{path} is in this machine's store, but the filter hides it"),
            details: vec![
                format!("matches the filter pattern {pattern}"),
                "not served to Nix nor offered to peers (--filter-pattern, --no-default-filters, --no-filter)".to_owned(),
            ],
            facts: json!({ "store_path": path, "pattern": pattern }),
        }));
    }
    let Some(narinfo) = store.shared_narinfo(hash)? else {
        return Ok(None);
    };
    let signed_by: Vec<&str> = narinfo
        .sigs
        .iter()
        .filter_map(|sig| sig.split_once(':').map(|(name, _)| name))
        .collect();
    let signatures = if signed_by.is_empty() {
        "not signed (Nix accepts it only from a cache it trusts unsigned)".to_owned()
    } else {
        format!("signed by {}", signed_by.join(", "))
    };
    Ok(Some(Verdict {
        name: "own_store",
        summary: format!("{path} is in this machine's store, and Peerix serves it"),
        details: vec![format!("NarSize: {}", narinfo.nar_size), signatures],
        facts: json!({
            "store_path": path,
            "nar_size": narinfo.nar_size,
            "signed_by": signed_by,
        }),
    }))
}

/// What the peers say of a path the local store lacks.
fn remote_verdict(
    remote: Option<&Remote>,
    pull_through: Option<&PullThrough>,
    hash: StoreHash,
) -> Verdict {
    let Some(remote) = remote else {
        return Verdict {
            name: "absent",
            summary: format!("nobody known holds {hash}"),
            details: vec!["asked: the local store; no peers (no embedded node)".to_owned()],
            facts: json!({ "asked": { "local_store": true, "peers": 0 } }),
        };
    };
    let holders = remote.holders.holders_of(&hash);
    let holder_ids: Vec<String> = holders.iter().map(ToString::to_string).collect();
    let shown = holder_ids
        .iter()
        .take(HOLDERS_SHOWN)
        .map(|p| format!("held by peer {p}"));
    if let Some(refusal) = remote.refusals.latest_for(&hash) {
        let mut details = vec![
            format!(
                "from {}, {} s ago",
                refusal.from,
                refusal.at.elapsed().as_secs()
            ),
            format!("holders now: {}", holders.len()),
        ];
        details.extend(shown);
        return Verdict {
            name: "refused",
            summary: refusal.reason.to_string(),
            details,
            facts: json!({ "holders": holder_ids, "refusal": refusal.to_json() }),
        };
    }
    if !holders.is_empty() {
        let mut details: Vec<String> = shown.collect();
        details.push("no answer for it was refused: Peerix passes it to Nix once a holder's narinfo is trusted".to_owned());
        let company = remote.swarms().map(|s| s.company(&holders));
        if let Some(company) = company.filter(|n| *n > 0) {
            details.push(format!(
                "a large NAR of it comes with a swarm: {company} near node(s) fetching it at the same time share its blocks"
            ));
        }
        return Verdict {
            name: "peer",
            summary: format!("{} peer(s) hold {hash}", holders.len()),
            details,
            facts: json!({ "holders": holder_ids, "refusal": null, "swarm_company": company }),
        };
    }
    absent(remote, pull_through, hash)
}

/// Nobody known holds it: which sources there were to ask.
fn absent(remote: &Remote, pull_through: Option<&PullThrough>, hash: StoreHash) -> Verdict {
    let (announcing, _) = remote.holders.summary();
    let tracker = remote.tracker().map(|t| t.status());
    let lan = remote.lan().map(|l| l.status());
    let mut asked = vec![
        "the local store".to_owned(),
        format!("{announcing} peer(s)' indexes"),
    ];
    match &tracker {
        Some(status) => asked.push(format!(
            "the tracker {} ({})",
            status["url"].as_str().unwrap_or_default(),
            if status["reachable"] == true {
                "reachable"
            } else {
                "unreachable"
            }
        )),
        None => asked.push("no tracker".to_owned()),
    }
    match &lan {
        Some(status) => asked.push(format!(
            "the LAN ({} old peer(s) heard)",
            status.old_peers_heard.len()
        )),
        None => asked.push("not the LAN".to_owned()),
    }
    let upstream = pull_through.map(PullThrough::status);
    match &upstream {
        Some(status) => asked.push(format!(
            "the upstream cache {} through pull-through ({})",
            status["upstream"].as_str().unwrap_or_default(),
            if status["upstream_answers"] == true {
                "answering: Nix gets it from there through this node if upstream has it"
            } else {
                "not answering now"
            }
        )),
        None => asked.push("no pull-through".to_owned()),
    }
    Verdict {
        name: "absent",
        summary: format!("nobody known holds {hash}"),
        details: vec![format!("asked: {}", asked.join(", "))],
        facts: json!({
            "asked": {
                "local_store": true,
                "peers": announcing,
                "tracker": tracker,
                "lan_old_peers": lan.map(|l| l.old_peers_heard.len()),
                "pull_through": upstream,
            },
        }),
    }
}
