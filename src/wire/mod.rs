//! The byte formats of Peerix's own protocols between nodes. Pure: no I/O here, so every parser
//! of what peers send can be fuzzed.
//!
//! Every protocol is the network's own: `/peerix/<tag>/index/1.0.0` and so on, the tag being
//! the first 16 hex digits of sha256(network id) (see [`peerix_node::network_protocol`]; the
//! names below leave it out). A node of another network id cannot open them.
//!
//! Every message is a frame: a big-endian u32 length, then that many bytes.
//! - `/peerix/<tag>/index/1.0.0`: the opener announces which store paths it holds: frames of
//!   [`IndexUpdate`]s, the first listing everything, later ones the changes.
//! - `/peerix/<tag>/narinfo/1.0.0`: one frame with a store hash (32 ASCII characters); the answer is
//!   one frame, a [`NarinfoAnswer`]: [`NOT_FOUND`]; [`FOUND`] followed by the narinfo text; or
//!   [`FOUND_WITH_CID`], a u16 length, the binary CID the NAR is published under, then the text.
//! - `/peerix/<tag>/nar/1.0.0`: one frame with a [`NarRequest`]; the answer is one frame, [`NOT_FOUND`]
//!   or [`FOUND`] followed by the u64 length of what follows, then the NAR bytes themselves,
//!   unframed.
//! - `/peerix/<tag>/pull/1.0.0` (only with `--pull-through`): one frame with a store hash, as
//!   for a narinfo; the answer is the NAR protocol's head, then the bytes of the file upstream
//!   serves for that path, unframed and as upstream sent them (compressed or not).
//! - `/peerix/<tag>/swarm/1.0.0`: a notice that the opener is fetching a NAR by its CID, and
//!   whether the answerer fetches it too (see [`swarm`]).

pub mod frames;
pub mod lan;
pub mod swarm;
pub mod tracker;

use cid::Cid;
use peerix_http::{NarHash, StoreHash};
use thiserror::Error;

/// Names within a network: a stream is opened with `NodeHandle::network_protocol(name)`.
pub const INDEX_PROTOCOL: &str = "index/1.0.0";
pub const NARINFO_PROTOCOL: &str = "narinfo/1.0.0";
pub const NAR_PROTOCOL: &str = "nar/1.0.0";
pub const PULL_PROTOCOL: &str = "pull/1.0.0";
pub const SWARM_PROTOCOL: &str = "swarm/1.0.0";

/// Every protocol of Peerix's own in the network `network_id`, for the node to accept (the pull
/// protocol only when `pull_through`: a node without it refuses at once).
pub fn protocols(network_id: &str, pull_through: bool) -> Vec<peerix_node::StreamProtocol> {
    let pull = pull_through.then_some(PULL_PROTOCOL);
    [
        INDEX_PROTOCOL,
        NARINFO_PROTOCOL,
        NAR_PROTOCOL,
        SWARM_PROTOCOL,
    ]
    .into_iter()
    .chain(pull)
    .map(|name| peerix_node::network_protocol(network_id, name))
    .collect()
}

/// The largest frame accepted: 32,768 hashes of an index update, or one narinfo.
pub const MAX_FRAME: usize = 1 << 20;
/// Store hashes per index frame.
pub const HASHES_PER_FRAME: usize = (MAX_FRAME - 1) / HASH_LEN;

pub const NOT_FOUND: u8 = 0;
pub const FOUND: u8 = 1;
/// A narinfo answer that also names the CID of the NAR. (Kind 2 is kept for "busy".)
pub const FOUND_WITH_CID: u8 = 3;

const HASH_LEN: usize = 32;
const ADD: u8 = 1;
const REMOVE: u8 = 2;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum WireError {
    #[error("frame of {0} bytes exceeds the limit")]
    TooLarge(usize),
    #[error("empty frame")]
    Empty,
    #[error("unknown message kind {0}")]
    UnknownKind(u8),
    #[error("{0} bytes is not a whole number of store hashes")]
    RaggedHashes(usize),
    #[error("bad store hash")]
    BadHash,
    #[error("narinfo is not UTF-8")]
    NotText,
    #[error("NAR request of {0} bytes, expected 48")]
    BadNarRequest(usize),
    #[error("answer of {0} bytes is malformed")]
    BadAnswer(usize),
    #[error("bad CID: {0}")]
    BadCid(String),
}

/// A change to the set of paths a peer holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IndexUpdate {
    Add(Vec<StoreHash>),
    Remove(Vec<StoreHash>),
}

impl IndexUpdate {
    pub fn encode(&self) -> Vec<u8> {
        let (kind, hashes) = match self {
            Self::Add(h) => (ADD, h),
            Self::Remove(h) => (REMOVE, h),
        };
        let mut out = Vec::with_capacity(1 + hashes.len() * HASH_LEN);
        out.push(kind);
        for hash in hashes {
            out.extend_from_slice(hash.as_str().as_bytes());
        }
        out
    }

    pub fn decode(frame: &[u8]) -> Result<Self, WireError> {
        let (&kind, body) = frame.split_first().ok_or(WireError::Empty)?;
        if body.len() % HASH_LEN != 0 {
            return Err(WireError::RaggedHashes(body.len()));
        }
        let hashes = body
            .chunks_exact(HASH_LEN)
            .map(decode_hash)
            .collect::<Result<Vec<_>, _>>()?;
        match kind {
            ADD => Ok(Self::Add(hashes)),
            REMOVE => Ok(Self::Remove(hashes)),
            other => Err(WireError::UnknownKind(other)),
        }
    }

    /// Splits `hashes` into frames of at most [`HASHES_PER_FRAME`].
    pub fn batches(adding: bool, hashes: &[StoreHash]) -> Vec<IndexUpdate> {
        hashes
            .chunks(HASHES_PER_FRAME)
            .map(|chunk| match adding {
                true => Self::Add(chunk.to_vec()),
                false => Self::Remove(chunk.to_vec()),
            })
            .collect()
    }
}

fn decode_hash(bytes: &[u8]) -> Result<StoreHash, WireError> {
    let text = std::str::from_utf8(bytes).map_err(|_| WireError::BadHash)?;
    StoreHash::parse(text).map_err(|_| WireError::BadHash)
}

pub fn encode_hash(hash: &StoreHash) -> Vec<u8> {
    hash.as_str().as_bytes().to_vec()
}

pub fn decode_narinfo_request(frame: &[u8]) -> Result<StoreHash, WireError> {
    if frame.len() != HASH_LEN {
        return Err(WireError::BadHash);
    }
    decode_hash(frame)
}

/// A peer's answer to a narinfo request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NarinfoAnswer {
    NotFound,
    /// The narinfo text, and the CID its NAR is published under once it is.
    Found {
        text: String,
        cid: Option<Cid>,
    },
}

impl NarinfoAnswer {
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Self::NotFound => vec![NOT_FOUND],
            Self::Found { text, cid: None } => {
                let mut out = Vec::with_capacity(1 + text.len());
                out.push(FOUND);
                out.extend_from_slice(text.as_bytes());
                out
            }
            Self::Found {
                text,
                cid: Some(cid),
            } => {
                let cid = cid.to_bytes();
                let mut out = Vec::with_capacity(3 + cid.len() + text.len());
                out.push(FOUND_WITH_CID);
                // A CID is a few dozen bytes; a u16 always holds its length.
                out.extend_from_slice(&(cid.len() as u16).to_be_bytes());
                out.extend_from_slice(&cid);
                out.extend_from_slice(text.as_bytes());
                out
            }
        }
    }

    pub fn decode(frame: &[u8]) -> Result<Self, WireError> {
        let text = |bytes: &[u8]| String::from_utf8(bytes.to_vec()).map_err(|_| WireError::NotText);
        match frame.split_first() {
            Some((&NOT_FOUND, [])) => Ok(Self::NotFound),
            Some((&FOUND, body)) => Ok(Self::Found {
                text: text(body)?,
                cid: None,
            }),
            Some((&FOUND_WITH_CID, body)) => {
                let bad = || WireError::BadAnswer(frame.len());
                let (len, rest) = body.split_first_chunk::<2>().ok_or_else(bad)?;
                let len = usize::from(u16::from_be_bytes(*len));
                if rest.len() < len {
                    return Err(bad());
                }
                let (cid, body) = rest.split_at(len);
                Ok(Self::Found {
                    text: text(body)?,
                    cid: Some(decode_cid(cid)?),
                })
            }
            _ => Err(WireError::BadAnswer(frame.len())),
        }
    }
}

/// A binary CID, exactly: no bytes after it, and in the one encoding it re-encodes to.
fn decode_cid(bytes: &[u8]) -> Result<Cid, WireError> {
    let cid = Cid::try_from(bytes).map_err(|e| WireError::BadCid(e.to_string()))?;
    if cid.to_bytes() != bytes {
        return Err(WireError::BadCid("not in canonical form".to_owned()));
    }
    Ok(cid)
}

/// Bytes `start..end` of the NAR whose hash is `nar_hash`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NarRequest {
    pub nar_hash: NarHash,
    pub start: u64,
    pub end: u64,
}

impl NarRequest {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = self.nar_hash.0.to_vec();
        out.extend_from_slice(&self.start.to_be_bytes());
        out.extend_from_slice(&self.end.to_be_bytes());
        out
    }

    pub fn decode(frame: &[u8]) -> Result<Self, WireError> {
        let bad = || WireError::BadNarRequest(frame.len());
        let (hash, rest) = frame.split_first_chunk::<32>().ok_or_else(bad)?;
        let (start, rest) = rest.split_first_chunk::<8>().ok_or_else(bad)?;
        let (end, rest) = rest.split_first_chunk::<8>().ok_or_else(bad)?;
        if !rest.is_empty() {
            return Err(bad());
        }
        let (start, end) = (u64::from_be_bytes(*start), u64::from_be_bytes(*end));
        if start > end {
            return Err(bad());
        }
        Ok(Self {
            nar_hash: NarHash(*hash),
            start,
            end,
        })
    }
}

/// The head of a NAR answer: the number of bytes that follow, or `None` when not found.
pub fn encode_nar_answer(len: Option<u64>) -> Vec<u8> {
    match len {
        None => vec![NOT_FOUND],
        Some(len) => {
            let mut out = vec![FOUND];
            out.extend_from_slice(&len.to_be_bytes());
            out
        }
    }
}

pub fn decode_nar_answer(frame: &[u8]) -> Result<Option<u64>, WireError> {
    match frame.split_first() {
        Some((&NOT_FOUND, [])) => Ok(None),
        Some((&FOUND, len)) => len
            .try_into()
            .map(|b| Some(u64::from_be_bytes(b)))
            .map_err(|_| WireError::BadAnswer(frame.len())),
        _ => Err(WireError::BadAnswer(frame.len())),
    }
}

/// The length prefix of a frame of `len` bytes, if that is within the limit.
pub fn frame_header(len: usize) -> Result<[u8; 4], WireError> {
    if len > MAX_FRAME {
        return Err(WireError::TooLarge(len));
    }
    Ok(u32::try_from(len)
        .map_err(|_| WireError::TooLarge(len))?
        .to_be_bytes())
}

/// The frame length announced by a header, if within the limit.
pub fn frame_len(header: [u8; 4]) -> Result<usize, WireError> {
    let len = u32::from_be_bytes(header) as usize;
    if len > MAX_FRAME {
        return Err(WireError::TooLarge(len));
    }
    Ok(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cid() -> Cid {
        "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"
            .parse()
            .unwrap()
    }

    fn hash(c: char) -> StoreHash {
        StoreHash::parse(&c.to_string().repeat(32)).unwrap()
    }

    #[test]
    fn index_updates_round_trip() {
        for update in [
            IndexUpdate::Add(vec![hash('a'), hash('b')]),
            IndexUpdate::Remove(vec![hash('c')]),
            IndexUpdate::Add(vec![]),
        ] {
            assert_eq!(IndexUpdate::decode(&update.encode()), Ok(update));
        }
        let many: Vec<_> = (0..HASHES_PER_FRAME + 1).map(|_| hash('d')).collect();
        let batches = IndexUpdate::batches(true, &many);
        assert_eq!(batches.len(), 2);
        assert!(batches.iter().all(|b| b.encode().len() <= MAX_FRAME));
    }

    #[test]
    fn rejects_malformed_frames() {
        assert_eq!(IndexUpdate::decode(&[]), Err(WireError::Empty));
        assert_eq!(IndexUpdate::decode(&[9]), Err(WireError::UnknownKind(9)));
        assert_eq!(
            IndexUpdate::decode(&[1, b'a']),
            Err(WireError::RaggedHashes(1))
        );
        let mut bad = vec![1];
        bad.extend_from_slice(&[b'e'; 32]); // 'e' is not a nixbase32 digit
        assert_eq!(IndexUpdate::decode(&bad), Err(WireError::BadHash));
        assert!(NarinfoAnswer::decode(&[]).is_err());
        assert!(NarinfoAnswer::decode(&[0, 1]).is_err());
        assert!(NarinfoAnswer::decode(&[1, 0xff]).is_err());
        assert!(NarinfoAnswer::decode(&[2]).is_err());
        assert!(NarinfoAnswer::decode(&[3, 0]).is_err());
        assert!(NarinfoAnswer::decode(&[3, 0, 9, 1, 2]).is_err());
        // A CID followed by a stray byte inside its announced length.
        let mut cid = cid().to_bytes();
        cid.push(0);
        let mut frame = vec![3];
        frame.extend_from_slice(&(cid.len() as u16).to_be_bytes());
        frame.extend_from_slice(&cid);
        assert!(matches!(
            NarinfoAnswer::decode(&frame),
            Err(WireError::BadCid(_))
        ));
        assert!(NarRequest::decode(&[0; 47]).is_err());
        let mut backwards = vec![0; 32];
        backwards.extend_from_slice(&9u64.to_be_bytes());
        backwards.extend_from_slice(&1u64.to_be_bytes());
        assert!(NarRequest::decode(&backwards).is_err());
        assert!(decode_nar_answer(&[1, 2, 3]).is_err());
        assert!(frame_len((MAX_FRAME as u32 + 1).to_be_bytes()).is_err());
        assert!(frame_header(MAX_FRAME + 1).is_err());
    }

    #[test]
    fn requests_and_answers_round_trip() {
        let request = NarRequest {
            nar_hash: NarHash([7; 32]),
            start: 5,
            end: 9,
        };
        assert_eq!(NarRequest::decode(&request.encode()), Ok(request));
        assert_eq!(
            decode_nar_answer(&encode_nar_answer(Some(42))),
            Ok(Some(42))
        );
        assert_eq!(decode_nar_answer(&encode_nar_answer(None)), Ok(None));
        for answer in [
            NarinfoAnswer::NotFound,
            NarinfoAnswer::Found {
                text: "StorePath: x\n".to_owned(),
                cid: None,
            },
            NarinfoAnswer::Found {
                text: "StorePath: x\n".to_owned(),
                cid: Some(cid()),
            },
        ] {
            assert_eq!(NarinfoAnswer::decode(&answer.encode()), Ok(answer));
        }
        assert_eq!(NarinfoAnswer::NotFound.encode(), [NOT_FOUND]);
        assert_eq!(
            decode_narinfo_request(&encode_hash(&hash('a'))),
            Ok(hash('a'))
        );
    }
}
