//! The latest refusals of what others sent for Nix: a narinfo no trusted key signed, a trusted
//! path under a filtered name, a NAR with the wrong bytes, a CID that gave no NAR. Kept in memory,
//! the last [`KEPT`] of them, for `peerix why` (the latest per path) and the dashboard (the most
//! recent ones). Beside the ring, a count of every refusal by kind since start, which never goes
//! down as the ring drops entries.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::Instant;

use peerix_http::StoreHash;
use peerix_node::PeerId;
use serde_json::{json, Value};

use super::trust::{Refused, Untrusted};

/// Refusals kept at most (a few hundred bytes each); the oldest is dropped first.
pub const KEPT: usize = 4096;

/// Who sent what was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RefusedFrom {
    Peer(PeerId),
    /// A machine on the LAN running the old protocol, by its HTTP address.
    OldPeer(SocketAddr),
    /// Blocks fetched by CID from several holders, when no one peer named the CID.
    Holders,
    /// kubo (`--ipfs-api`), fetching by the CID the tracker maps, with the upstream cache's
    /// narinfo.
    Kubo,
}

impl fmt::Display for RefusedFrom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Peer(peer) => write!(f, "peer {peer}"),
            Self::OldPeer(addr) => write!(f, "old LAN peer {addr}"),
            Self::Holders => f.write_str("the holders (by CID)"),
            Self::Kubo => f.write_str("kubo (by the tracker's CID)"),
        }
    }
}

/// What the upstream cache said of a path no trusted key signed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UpstreamSaid {
    /// No `--upstream-cache` is set.
    NotAsked,
    NoSuchPath,
    /// It names another NAR for the path.
    OtherNar,
    /// It did not answer in time, or failed.
    NoAnswer(String),
}

/// Why something was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reason {
    /// A narinfo no trusted key signed and upstream did not vouch for.
    Untrusted {
        signed_by: Vec<String>,
        upstream: UpstreamSaid,
    },
    /// A trusted narinfo whose name a filter pattern hides.
    Filtered {
        name: String,
        pattern: Option<String>,
    },
    /// A NAR whose bytes or size were not the ones its narinfo announced.
    WrongNar { error: String },
    /// A fetch by the CID a peer named gave no verified NAR.
    CidFailed { cid: String, error: String },
}

impl Reason {
    /// The reason for a narinfo the trust check refused (`upstream_set`: `--upstream-cache`).
    pub fn untrusted(refused: &Untrusted, upstream_set: bool) -> Self {
        let upstream = match &refused.reason {
            Refused::Unvouched if !upstream_set => UpstreamSaid::NotAsked,
            Refused::Unvouched => UpstreamSaid::NoSuchPath,
            Refused::UpstreamDiffers => UpstreamSaid::OtherNar,
            Refused::NotNow(e) => UpstreamSaid::NoAnswer(e.to_string()),
        };
        Self::Untrusted {
            signed_by: refused.signed_by.clone(),
            upstream,
        }
    }

    /// The machine-readable names of the kinds, in the order of [`Reason::kind_index`].
    pub const KINDS: [&'static str; 4] = [
        "untrusted_narinfo",
        "filtered_name",
        "wrong_nar",
        "cid_failed",
    ];

    /// A machine-readable name of the kind.
    pub fn kind(&self) -> &'static str {
        Self::KINDS[self.kind_index()]
    }

    fn kind_index(&self) -> usize {
        match self {
            Self::Untrusted { .. } => 0,
            Self::Filtered { .. } => 1,
            Self::WrongNar { .. } => 2,
            Self::CidFailed { .. } => 3,
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Untrusted {
                signed_by,
                upstream,
            } => {
                f.write_str("no trusted signature: ")?;
                if signed_by.is_empty() {
                    f.write_str("not signed at all")?;
                } else {
                    write!(f, "signed by {} only", signed_by.join(", "))?;
                }
                match upstream {
                    UpstreamSaid::NotAsked => f.write_str("; no upstream cache to ask"),
                    UpstreamSaid::NoSuchPath => f.write_str("; upstream has no such path"),
                    UpstreamSaid::OtherNar => {
                        f.write_str("; upstream names another NAR for this path")
                    }
                    UpstreamSaid::NoAnswer(e) => write!(f, "; upstream did not answer ({e})"),
                }
            }
            Self::Filtered { name, pattern } => match pattern {
                Some(pattern) => write!(f, "its name {name} matches the filter pattern {pattern}"),
                None => write!(f, "its name {name} is filtered"),
            },
            Self::WrongNar { error } => write!(f, "wrong NAR: {error}"),
            Self::CidFailed { cid, error } => {
                write!(f, "fetching the NAR by CID {cid} failed: {error}")
            }
        }
    }
}

/// One refusal.
#[derive(Clone, Debug)]
pub struct Refusal {
    pub hash: StoreHash,
    pub from: RefusedFrom,
    pub reason: Reason,
    pub at: Instant,
}

impl Refusal {
    pub fn to_json(&self) -> Value {
        let (peer_id, old_peer) = match &self.from {
            RefusedFrom::Peer(peer) => (Some(peer.to_string()), None),
            RefusedFrom::OldPeer(addr) => (None, Some(addr.to_string())),
            RefusedFrom::Holders | RefusedFrom::Kubo => (None, None),
        };
        let mut details = match &self.reason {
            Reason::Untrusted {
                signed_by,
                upstream,
            } => json!({
                "signed_by": signed_by,
                "upstream": match upstream {
                    UpstreamSaid::NotAsked => "not_asked",
                    UpstreamSaid::NoSuchPath => "no_such_path",
                    UpstreamSaid::OtherNar => "other_nar",
                    UpstreamSaid::NoAnswer(_) => "no_answer",
                },
            }),
            Reason::Filtered { name, pattern } => json!({ "name": name, "pattern": pattern }),
            Reason::WrongNar { error } => json!({ "error": error }),
            Reason::CidFailed { cid, error } => json!({ "cid": cid, "error": error }),
        };
        details["hash"] = json!(self.hash.to_string());
        details["kind"] = json!(self.reason.kind());
        details["reason"] = json!(self.reason.to_string());
        details["from"] = json!(self.from.to_string());
        details["peer_id"] = json!(peer_id);
        details["old_peer"] = json!(old_peer);
        details["seconds_ago"] = json!(self.at.elapsed().as_secs());
        details
    }
}

/// The bounded log, and the counts by kind.
#[derive(Default)]
pub struct Refusals {
    log: Mutex<Log>,
    /// Refusals since start, by [`Reason::kind_index`].
    by_kind: [AtomicU64; Reason::KINDS.len()],
}

#[derive(Default)]
struct Log {
    /// Oldest first, each with its sequence number (consecutive: `events[i]` has the front's + i).
    events: VecDeque<(u64, Refusal)>,
    /// The sequence number of each path's latest refusal still in `events`.
    latest: HashMap<StoreHash, u64>,
    next: u64,
}

impl Refusals {
    pub fn record(&self, hash: StoreHash, from: RefusedFrom, reason: Reason) {
        self.by_kind[reason.kind_index()].fetch_add(1, Relaxed);
        let Ok(mut log) = self.log.lock() else {
            return;
        };
        let seq = log.next;
        log.next += 1;
        let refusal = Refusal {
            hash,
            from,
            reason,
            at: Instant::now(),
        };
        log.events.push_back((seq, refusal));
        log.latest.insert(hash, seq);
        if log.events.len() > KEPT {
            if let Some((dropped, old)) = log.events.pop_front() {
                if log.latest.get(&old.hash) == Some(&dropped) {
                    log.latest.remove(&old.hash);
                }
            }
        }
    }

    /// An answer for `hash` passed since: its refusals no longer explain anything about it
    /// (they stay among the recent ones).
    pub fn passed(&self, hash: &StoreHash) {
        if let Ok(mut log) = self.log.lock() {
            log.latest.remove(hash);
        }
    }

    /// The latest refusal for `hash` since an answer for it last passed, if it is still kept.
    pub fn latest_for(&self, hash: &StoreHash) -> Option<Refusal> {
        let log = self.log.lock().ok()?;
        let seq = *log.latest.get(hash)?;
        let (first, _) = log.events.front()?;
        let index = usize::try_from(seq.checked_sub(*first)?).ok()?;
        log.events.get(index).map(|(_, refusal)| refusal.clone())
    }

    /// How many refusals are kept (at most [`KEPT`]).
    pub fn kept(&self) -> usize {
        self.log.lock().map_or(0, |log| log.events.len())
    }

    /// Refusals since start, by kind (each of [`Reason::KINDS`]).
    pub fn by_kind(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        Reason::KINDS
            .iter()
            .zip(&self.by_kind)
            .map(|(kind, count)| (*kind, count.load(Relaxed)))
    }

    /// The `n` latest refusals, newest first.
    pub fn recent(&self, n: usize) -> Vec<Refusal> {
        let Ok(log) = self.log.lock() else {
            return Vec::new();
        };
        log.events
            .iter()
            .rev()
            .take(n)
            .map(|(_, refusal)| refusal.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(n: usize) -> StoreHash {
        let alphabet = b"0123456789abcdfghijklmnpqrsvwxyz";
        let text: String = (0..32)
            .map(|i| alphabet[(n >> (5 * (i % 4))) % 32] as char)
            .collect();
        StoreHash::parse(&text).unwrap()
    }

    fn wrong(n: usize) -> Reason {
        Reason::WrongNar {
            error: format!("bad {n}"),
        }
    }

    #[test]
    fn keeps_the_latest_per_path_and_drops_the_oldest_past_the_bound() {
        let refusals = Refusals::default();
        let peer = RefusedFrom::Peer(PeerId::random());
        for n in 0..KEPT + 10 {
            refusals.record(hash(n), peer.clone(), wrong(n));
        }
        // The first ten were dropped; the rest are there.
        assert!(refusals.latest_for(&hash(0)).is_none());
        assert!(refusals.latest_for(&hash(9)).is_none());
        assert_eq!(refusals.latest_for(&hash(10)).unwrap().reason, wrong(10));
        assert_eq!(refusals.recent(usize::MAX).len(), KEPT);
        assert_eq!(refusals.kept(), KEPT);
        // The counts keep what the ring dropped.
        let counts: Vec<_> = refusals.by_kind().collect();
        assert_eq!(
            counts,
            [
                ("untrusted_narinfo", 0),
                ("filtered_name", 0),
                ("wrong_nar", KEPT as u64 + 10),
                ("cid_failed", 0)
            ]
        );
        let recent = refusals.recent(2);
        assert_eq!(recent[0].reason, wrong(KEPT + 9));
        assert_eq!(recent[1].reason, wrong(KEPT + 8));

        // A newer refusal for a path replaces its latest; the older one stays among the recent
        // and leaving the log does not drop the newer.
        refusals.record(hash(10), peer.clone(), wrong(1));
        assert_eq!(refusals.latest_for(&hash(10)).unwrap().reason, wrong(1));
        refusals.record(hash(99_999), peer.clone(), wrong(2));
        assert_eq!(refusals.latest_for(&hash(10)).unwrap().reason, wrong(1));

        // Once an answer passed, the path has no refusal to explain it.
        refusals.passed(&hash(10));
        assert!(refusals.latest_for(&hash(10)).is_none());
        assert_eq!(refusals.recent(3)[1].reason, wrong(1));
    }

    #[test]
    fn reasons_read_as_the_operator_needs_them() {
        let untrusted = Reason::Untrusted {
            signed_by: vec!["stranger-1".to_owned()],
            upstream: UpstreamSaid::NoSuchPath,
        };
        assert_eq!(
            untrusted.to_string(),
            "no trusted signature: signed by stranger-1 only; upstream has no such path"
        );
        let filtered = Reason::Filtered {
            name: "x-secrets-db".to_owned(),
            pattern: Some("*-secrets-*".to_owned()),
        };
        assert!(filtered.to_string().contains("*-secrets-*"));
    }
}
