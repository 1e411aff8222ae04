//! The JSON answers of the tracker's routes: written by `peerix tracker`, parsed by the nodes
//! that ask it. Pure: no I/O. Field names are the old tracker's where a reader depended on them.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The largest answer a client reads: a full membership set of a million store hashes.
pub const MAX_READ_BODY: usize = 48 << 20;
/// Hashes per `POST /cids/batch`.
pub const MAX_CIDS_BATCH: usize = 1_000;

/// `GET /find/{hash}`: who shares the store path, best first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FindAnswer {
    pub hash: String,
    pub providers: Vec<Provider>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Provider {
    /// The libp2p peer id (as `libp2p_peer_id`: old readers used either).
    pub peer_id: String,
    /// The IP address the peer's last announce came from.
    pub addr: String,
    /// The port of the peer's binary-cache front, as it announced it.
    pub port: u16,
    pub libp2p_peer_id: String,
    pub last_seen: u64,
    pub score: f64,
    /// Where to dial it, each ending in `/p2p/<peer id>`.
    pub multiaddrs: Vec<String>,
    /// The CID the peer publishes the NAR under, when the tracker has it at hand.
    pub cid: Option<String>,
}

/// `GET /membership[?since=EPOCH.VERSION]`: the store hashes at least one live peer shares,
/// whole (`full`) or as the changes since the version given.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembershipAnswer {
    /// Random per tracker start: versions of another epoch are not comparable.
    pub epoch: u64,
    pub version: u64,
    pub full: bool,
    pub added: Vec<String>,
    pub removed: Vec<String>,
}

/// `GET /peers`: every live peer, best score first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PeersAnswer {
    pub peers: Vec<PeerEntry>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PeerEntry {
    pub peer_id: String,
    pub addr: String,
    pub port: u16,
    pub libp2p_peer_id: String,
    pub last_seen: u64,
    pub score: f64,
    pub multiaddrs: Vec<String>,
    /// Store paths it shares.
    pub packages: u64,
}

/// `GET /status`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusAnswer {
    pub status: String,
    pub peers: u64,
    /// Holdings: one per peer and store path.
    pub packages: u64,
    pub distinct_packages: u64,
    pub cid_mappings: u64,
    pub version: String,
}

/// `GET /cid/{hash}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CidAnswer {
    pub hash: String,
    pub cid: String,
}

/// `GET /cids` and `POST /cids/batch`: store hash -> CID.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CidsAnswer {
    pub cids: BTreeMap<String, String>,
}

/// The body of `POST /cids/batch` (a read: it is not signed).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CidsBatchRequest {
    pub nar_hashes: Vec<String>,
}

/// `GET /reputation/{peer_id}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReputationAnswer {
    pub peer_id: String,
    pub total_shared: u64,
    pub total_received: u64,
    pub successful_transfers: u64,
    pub failed_transfers: u64,
    pub score: f64,
}

/// The answer to a write: `{"ok": true}`, an announce's with the address the tracker saw.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteAnswer {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addr: Option<String>,
}

/// The answer to `POST /transfer/init`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferAnswer {
    pub transfer_id: u64,
}

/// Every refusal: a status code and this body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorAnswer {
    pub error: String,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ReadError {
    #[error("tracker answer of {0} bytes exceeds the limit of {MAX_READ_BODY}")]
    TooLarge(usize),
    #[error("malformed tracker answer: {0}")]
    Malformed(String),
}

/// Parses a tracker's answer of type `T`, refusing bodies over [`MAX_READ_BODY`].
pub fn parse_answer<T: DeserializeOwned>(body: &[u8]) -> Result<T, ReadError> {
    if body.len() > MAX_READ_BODY {
        return Err(ReadError::TooLarge(body.len()));
    }
    serde_json::from_slice(body).map_err(|e| ReadError::Malformed(e.to_string()))
}
