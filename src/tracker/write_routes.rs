//! The write routes: one handler, since every write is the same envelope. It reads the body
//! within [`MAX_BODY`], verifies the signature for the route, the timestamp and the rate of the
//! peer, then the nonce and the write itself in the store; it answers after the commit.

use std::error::Error;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, Uri};
use axum::Json;
use bytes::Bytes;
use peerix_http::TooSlow;
use serde_json::Value;

use super::errors::ApiError;
use super::server::{unix_now, Tracker};
use super::store::Announce;
use super::transfers::Outcome;
use crate::wire::tracker::{
    EnvelopeError, SignedWrite, TransferAnswer, VerifiedWrite, WriteAnswer, WritePayload, MAX_BODY,
};

pub(super) async fn read_body(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        match std::iter::successors(Some(&e as &(dyn Error + 'static)), |e| (*e).source())
            .find_map(|e| e.downcast_ref::<TooSlow>())
        {
            Some(slow) => ApiError::TooSlow(slow.to_string()),
            None => ApiError::TooLarge(format!(
                "request body exceeds the limit of {limit} bytes (or was cut off)"
            )),
        }
    })
}

/// An old client's write: JSON without the envelope's signature.
fn is_unsigned(body: &[u8]) -> bool {
    serde_json::from_slice::<Value>(body)
        .is_ok_and(|v| v.is_object() && v.get("signature").is_none())
}

pub(super) async fn write(
    State(tracker): State<Arc<Tracker>>,
    ConnectInfo(socket): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    uri: Uri,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let body = read_body(body, MAX_BODY).await?;
    let seen_from = tracker.client_ip(socket, &headers);
    let route = uri.path().to_owned();
    // Parsing and verifying a batch of 100,000 hashes takes milliseconds: off the runtime's
    // threads, with the commit.
    tokio::task::spawn_blocking(move || {
        let write = match SignedWrite::parse(&body) {
            Ok(write) => write,
            Err(EnvelopeError::Malformed(_)) if is_unsigned(&body) => {
                return Err(ApiError::Unsigned)
            }
            Err(e) => return Err(e.into()),
        };
        let verified = write.verify(&route, unix_now(), tracker.max_skew)?;
        tracker.admit_write(verified.peer)?;
        apply(&tracker, verified, seen_from)
    })
    .await
    .map_err(|e| ApiError::Unavailable(format!("write failed: {e}")))?
}

/// Runs on a blocking thread: every store call commits to disk before it returns.
fn apply(
    tracker: &Tracker,
    write: VerifiedWrite,
    seen_from: std::net::IpAddr,
) -> Result<Json<Value>, ApiError> {
    let store = &tracker.store;
    let peer = write.peer;
    // A transfer's report is checked against the transfer itself; every other write needs a
    // live peer, or room for a new one.
    if !matches!(write.payload, WritePayload::Report { .. }) {
        let registers = matches!(write.payload, WritePayload::Announce { .. });
        store.admits(peer, registers)?;
    }
    if !store.remember_nonce(peer, &write.nonce, write.timestamp)? {
        return Err(ApiError::Forbidden(
            "this write was made before (same signed timestamp and nonce): a replay".to_owned(),
        ));
    }
    let ok = WriteAnswer {
        ok: true,
        addr: None,
    };
    let answer = match write.payload {
        WritePayload::Announce { port, addrs } => {
            let announce = Announce {
                ip: seen_from,
                port,
                addrs,
            };
            store.announce(peer, announce, unix_now())?;
            to_value(WriteAnswer {
                ok: true,
                addr: Some(seen_from.to_string()),
            })
        }
        WritePayload::PackagesBatch { hashes } => {
            store.replace_packages(peer, &hashes)?;
            to_value(ok)
        }
        WritePayload::PackagesDelta { added, removed } => {
            store.apply_delta(peer, &added, &removed)?;
            to_value(ok)
        }
        WritePayload::Cid { hash, cid } => {
            store.set_cid(peer, hash, cid)?;
            to_value(ok)
        }
        WritePayload::CidBatch { mappings } => {
            store.set_cids(peer, &mappings)?;
            to_value(ok)
        }
        WritePayload::TransferInit {
            sender,
            receiver,
            hash,
        } => {
            let transfer_id = tracker
                .transfers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .open(peer, sender, receiver, hash, unix_now())?;
            to_value(TransferAnswer { transfer_id })
        }
        WritePayload::Report {
            transfer_id,
            role,
            bytes,
        } => {
            let outcome = tracker
                .transfers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .report(peer, transfer_id, role, bytes)?;
            match outcome {
                Some(Outcome::Agreed {
                    sender,
                    receiver,
                    bytes,
                }) => store.record_transfer(sender, receiver, bytes)?,
                Some(Outcome::Disputed { sender }) => store.record_failure(sender)?,
                None => {}
            }
            to_value(ok)
        }
    };
    Ok(Json(answer))
}

fn to_value(answer: impl serde::Serialize) -> Value {
    // Plain structs of strings, numbers and booleans always serialise.
    serde_json::to_value(answer).unwrap_or_default()
}
