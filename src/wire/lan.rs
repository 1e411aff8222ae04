//! The datagrams of the old program's LAN protocol (UDP, port 12304), which machines still
//! running it send and answer:
//! - a request: byte `0x00`, a big-endian u32 request id, the store hash (32 ASCII characters);
//! - an answer, sent back to the asker alone: byte `0x01`, the id echoed, the HTTP port as a
//!   big-endian u32, then `local/<hash>.narinfo`, the path to fetch from the answerer.
//!
//! Pure: no I/O. Whether an answer matches a request in flight is the caller's to check.
//!
//! Peerix's own requests carry ids of a shape of their own (the high half a fixed function of
//! the random low half), so Peerix nodes tell them from an old peer's: they neither answer them
//! (a Peerix node asks the LAN only for old peers' paths) nor take them as a sign that an old
//! peer is on the link. An old peer's id has that shape once in 65,536.

use peerix_http::StoreHash;
use thiserror::Error;

pub const REQUEST: u8 = 0x00;
pub const ANSWER: u8 = 0x01;
/// Both kinds are under 64 bytes; anything much longer is no datagram of this protocol.
pub const MAX_DATAGRAM: usize = 512;
const HEAD: usize = 1 + 4;
const HASH_LEN: usize = 32;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LanDatagram {
    Request {
        id: u32,
        hash: StoreHash,
    },
    /// The answerer serves `hash`'s narinfo at `http://<its address>:<port>/local/<hash>.narinfo`.
    Answer {
        id: u32,
        port: u16,
        hash: StoreHash,
    },
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum LanDatagramError {
    #[error("datagram of {0} bytes is too short")]
    TooShort(usize),
    #[error("datagram of {0} bytes exceeds {MAX_DATAGRAM}")]
    TooLong(usize),
    #[error("unknown datagram kind {0:#04x}")]
    UnknownKind(u8),
    #[error("not a store hash")]
    BadHash,
    #[error("port {0} is not a TCP port")]
    BadPort(u32),
    #[error("the answer names no local/<hash>.narinfo path")]
    BadPath,
}

impl LanDatagram {
    pub fn parse(bytes: &[u8]) -> Result<Self, LanDatagramError> {
        if bytes.len() > MAX_DATAGRAM {
            return Err(LanDatagramError::TooLong(bytes.len()));
        }
        let (&kind, rest) = bytes
            .split_first()
            .ok_or(LanDatagramError::TooShort(bytes.len()))?;
        let (id, rest) = split_u32(rest).ok_or(LanDatagramError::TooShort(bytes.len()))?;
        match kind {
            REQUEST => Ok(Self::Request {
                id,
                hash: parse_hash(rest)?,
            }),
            ANSWER => {
                let (port, path) =
                    split_u32(rest).ok_or(LanDatagramError::TooShort(bytes.len()))?;
                let port = u16::try_from(port)
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or(LanDatagramError::BadPort(port))?;
                let hash = path
                    .strip_prefix(b"local/")
                    .and_then(|p| p.strip_suffix(b".narinfo"))
                    .ok_or(LanDatagramError::BadPath)?;
                Ok(Self::Answer {
                    id,
                    port,
                    hash: parse_hash(hash)?,
                })
            }
            other => Err(LanDatagramError::UnknownKind(other)),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEAD + 4 + HASH_LEN + 16);
        match self {
            Self::Request { id, hash } => {
                out.push(REQUEST);
                out.extend_from_slice(&id.to_be_bytes());
                out.extend_from_slice(hash.as_str().as_bytes());
            }
            Self::Answer { id, port, hash } => {
                out.push(ANSWER);
                out.extend_from_slice(&id.to_be_bytes());
                out.extend_from_slice(&u32::from(*port).to_be_bytes());
                out.extend_from_slice(format!("local/{hash}.narinfo").as_bytes());
            }
        }
        out
    }
}

/// The id of a Peerix request made of 16 random bits.
pub fn peerix_request_id(random: u16) -> u32 {
    (u32::from(peerix_tag(random)) << 16) | u32::from(random)
}

pub fn is_peerix_request_id(id: u32) -> bool {
    let (high, low) = ((id >> 16) as u16, id as u16);
    high == peerix_tag(low)
}

/// A bijection of the 16-bit values (odd multiplier), so every tag is as likely.
fn peerix_tag(low: u16) -> u16 {
    low.wrapping_mul(0x9e37) ^ 0x5058
}

fn split_u32(bytes: &[u8]) -> Option<(u32, &[u8])> {
    let (head, rest) = bytes.split_first_chunk::<4>()?;
    Some((u32::from_be_bytes(*head), rest))
}

fn parse_hash(bytes: &[u8]) -> Result<StoreHash, LanDatagramError> {
    let text = std::str::from_utf8(bytes).map_err(|_| LanDatagramError::BadHash)?;
    StoreHash::parse(text).map_err(|_| LanDatagramError::BadHash)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "7rjj86a15146cq1d3fmbmhdcd6lkb5ln";

    fn hash() -> StoreHash {
        StoreHash::parse(HASH).unwrap()
    }

    #[test]
    fn the_old_program_s_bytes_parse_and_round_trip() {
        let mut request = vec![0x00, 0, 0, 1, 2];
        request.extend_from_slice(HASH.as_bytes());
        let parsed = LanDatagram::parse(&request).unwrap();
        assert_eq!(
            parsed,
            LanDatagram::Request {
                id: 258,
                hash: hash()
            }
        );
        assert_eq!(parsed.encode(), request);

        let mut answer = vec![0x01, 0xff, 0, 0, 7, 0, 0, 0x30, 0x10];
        answer.extend_from_slice(format!("local/{HASH}.narinfo").as_bytes());
        let parsed = LanDatagram::parse(&answer).unwrap();
        let expected = LanDatagram::Answer {
            id: 0xff00_0007,
            port: 12304,
            hash: hash(),
        };
        assert_eq!(parsed, expected);
        assert_eq!(parsed.encode(), answer);
    }

    #[test]
    fn peerix_ids_are_told_from_old_peers_sequential_ones() {
        for random in [0, 1, 0x1234, u16::MAX] {
            assert!(is_peerix_request_id(peerix_request_id(random)));
        }
        // The old program counts up from 0: one of its first 65,536 ids has the shape.
        let looking_like_peerix = (0..=u32::from(u16::MAX))
            .filter(|id| is_peerix_request_id(*id))
            .count();
        assert_eq!(looking_like_peerix, 1);
    }

    #[test]
    fn anything_else_is_refused_with_its_reason() {
        let parse = LanDatagram::parse;
        assert_eq!(parse(&[]), Err(LanDatagramError::TooShort(0)));
        assert_eq!(parse(&[0, 1, 2]), Err(LanDatagramError::TooShort(3)));
        assert_eq!(
            parse(&[0u8; MAX_DATAGRAM + 1]),
            Err(LanDatagramError::TooLong(MAX_DATAGRAM + 1))
        );
        assert_eq!(
            parse(&[2, 0, 0, 0, 0]),
            Err(LanDatagramError::UnknownKind(2))
        );
        let mut bad_hash = vec![0, 0, 0, 0, 1];
        bad_hash.extend_from_slice(b"eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee");
        assert_eq!(parse(&bad_hash), Err(LanDatagramError::BadHash));
        let mut trailing = vec![0, 0, 0, 0, 1];
        trailing.extend_from_slice(format!("{HASH}\n").as_bytes());
        assert_eq!(parse(&trailing), Err(LanDatagramError::BadHash));
        let answer = |port: u32, path: String| {
            let mut bytes = vec![1, 0, 0, 0, 1];
            bytes.extend_from_slice(&port.to_be_bytes());
            bytes.extend_from_slice(path.as_bytes());
            parse(&bytes)
        };
        let path = format!("local/{HASH}.narinfo");
        assert_eq!(
            answer(70_000, path.clone()),
            Err(LanDatagramError::BadPort(70_000))
        );
        assert_eq!(answer(0, path.clone()), Err(LanDatagramError::BadPort(0)));
        assert_eq!(
            answer(80, format!("/etc/{HASH}.narinfo")),
            Err(LanDatagramError::BadPath)
        );
        assert_eq!(
            answer(80, format!("local/{HASH}.nar")),
            Err(LanDatagramError::BadPath)
        );
        assert!(answer(80, path).is_ok());
    }
}
