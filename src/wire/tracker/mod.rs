//! The signed envelope of every write to the tracker. Pure: no I/O.
//!
//! A write is a JSON body `{"key", "timestamp", "nonce", "payload", "signature"}`: the writer's
//! libp2p public key (protobuf encoding, base64), unix seconds, 16 random bytes (hex), the typed
//! payload (`{"kind": ..., fields}`) and an ed25519 signature (base64) over [`signed_bytes`]. The
//! signature never covers the JSON itself, whose field order and spacing may vary: it covers a
//! byte string defined here, with every variable-length part length-prefixed so no two writes
//! share one. The writer's peer id is derived from the key, never read from the body.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use cid::Cid;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use peerix_http::StoreHash;
use peerix_node::{Multiaddr, PeerId};
use serde::{Deserialize, Serialize};
use thiserror::Error;

mod json;
mod reads;

pub use reads::*;

use json::{hex, parse_nonce, RawPayload, RawWrite};

/// Separates these signatures from any other use of the same key.
pub const DOMAIN: &[u8] = b"peerix-tracker-v1";
/// The largest body accepted: a full batch of [`MAX_HASHES`] store hashes as JSON strings.
pub const MAX_BODY: usize = 4 << 20;
/// Store hashes per batch, and added plus removed per delta.
pub const MAX_HASHES: usize = 100_000;
/// Addresses per announce, and characters per address.
pub const MAX_ADDRS: usize = 16;
pub const MAX_ADDR_LEN: usize = 256;
/// CID mappings per batch: some 100 bytes of JSON each.
pub const MAX_CIDS: usize = 10_000;
/// Characters of a CID or peer id in a payload.
pub const MAX_ID_LEN: usize = 128;
pub const NONCE_LEN: usize = 16;

/// libp2p's protobuf encoding of an ed25519 public key: field 1 (key type) = 1 (Ed25519),
/// field 2 (data) of 32 bytes, then the key.
const ED25519_KEY_PREFIX: [u8; 4] = [0x08, 0x01, 0x12, 0x20];
const PROTOBUF_KEY_LEN: usize = ED25519_KEY_PREFIX.len() + 32;
/// The identity multihash (code 0, length 36) that makes a peer id of a key that short.
const IDENTITY_MULTIHASH_PREFIX: [u8; 2] = [0x00, PROTOBUF_KEY_LEN as u8];

#[derive(Debug, Error, PartialEq, Eq)]
pub enum EnvelopeError {
    #[error("body of {0} bytes exceeds the limit of {MAX_BODY}")]
    TooLarge(usize),
    #[error("malformed write: {0}")]
    Malformed(String),
    #[error("only ed25519 keys are accepted")]
    UnsupportedKey,
    #[error("{what}: {len} exceeds the limit of {max}")]
    TooMany {
        what: &'static str,
        len: usize,
        max: usize,
    },
    #[error("the payload is a {kind} write, sent to {route}")]
    WrongRoute { kind: &'static str, route: String },
    #[error("signature does not verify")]
    BadSignature,
    #[error("timestamp {timestamp} is older than {max_skew} s (now {now})")]
    Stale {
        timestamp: u64,
        now: u64,
        max_skew: u64,
    },
    #[error("timestamp {timestamp} is more than {max_skew} s ahead (now {now})")]
    FromTheFuture {
        timestamp: u64,
        now: u64,
        max_skew: u64,
    },
}

fn malformed(e: impl std::fmt::Display) -> EnvelopeError {
    EnvelopeError::Malformed(e.to_string())
}

/// The side of a transfer a report comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Sender,
    Receiver,
}

/// What a write asks of the tracker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WritePayload {
    /// A heartbeat: the port of the writer's binary-cache front and its libp2p addresses.
    Announce { port: u16, addrs: Vec<Multiaddr> },
    /// The whole set of store hashes the writer shares, replacing the last one.
    PackagesBatch { hashes: Vec<StoreHash> },
    PackagesDelta {
        added: Vec<StoreHash>,
        removed: Vec<StoreHash>,
    },
    /// The CID the writer publishes the NAR of `hash` under.
    Cid { hash: StoreHash, cid: Cid },
    /// A transfer of the NAR of `hash` about to start; either side may say so, and both learn
    /// the same id.
    /// Several CIDs at once (a node's whole set at start, then what it published since).
    CidBatch { mappings: Vec<(StoreHash, Cid)> },
    TransferInit {
        sender: PeerId,
        receiver: PeerId,
        hash: StoreHash,
    },
    Report {
        transfer_id: u64,
        role: Role,
        bytes: u64,
    },
}

impl WritePayload {
    /// The route this payload is written to.
    pub fn route(&self) -> &'static str {
        match self {
            Self::Announce { .. } => "/announce",
            Self::PackagesBatch { .. } => "/packages/batch",
            Self::PackagesDelta { .. } => "/packages/delta",
            Self::Cid { .. } => "/cid",
            Self::CidBatch { .. } => "/cid/batch",
            Self::TransferInit { .. } => "/transfer/init",
            Self::Report { .. } => "/report",
        }
    }

    /// The payload's part of the signed bytes: a kind byte, then every field in a fixed order.
    fn canonical_bytes(&self, out: &mut Vec<u8>) {
        let hashes = |out: &mut Vec<u8>, hashes: &[StoreHash]| {
            put_len(out, hashes.len());
            for hash in hashes {
                out.extend_from_slice(hash.as_str().as_bytes());
            }
        };
        match self {
            Self::Announce { port, addrs } => {
                out.push(1);
                out.extend_from_slice(&port.to_be_bytes());
                put_len(out, addrs.len());
                for addr in addrs {
                    put_bytes(out, &addr.to_vec());
                }
            }
            Self::PackagesBatch { hashes: list } => {
                out.push(2);
                hashes(out, list);
            }
            Self::PackagesDelta { added, removed } => {
                out.push(3);
                hashes(out, added);
                hashes(out, removed);
            }
            Self::Cid { hash, cid } => {
                out.push(4);
                out.extend_from_slice(hash.as_str().as_bytes());
                put_bytes(out, &cid.to_bytes());
            }
            Self::CidBatch { mappings } => {
                out.push(7);
                put_len(out, mappings.len());
                for (hash, cid) in mappings {
                    out.extend_from_slice(hash.as_str().as_bytes());
                    put_bytes(out, &cid.to_bytes());
                }
            }
            Self::TransferInit {
                sender,
                receiver,
                hash,
            } => {
                out.push(5);
                put_bytes(out, &sender.to_bytes());
                put_bytes(out, &receiver.to_bytes());
                out.extend_from_slice(hash.as_str().as_bytes());
            }
            Self::Report {
                transfer_id,
                role,
                bytes,
            } => {
                out.push(6);
                out.extend_from_slice(&transfer_id.to_be_bytes());
                out.push(match role {
                    Role::Sender => 1,
                    Role::Receiver => 2,
                });
                out.extend_from_slice(&bytes.to_be_bytes());
            }
        }
    }

    fn check_bounds(&self) -> Result<(), EnvelopeError> {
        let bound = |what, len, max| match len > max {
            true => Err(EnvelopeError::TooMany { what, len, max }),
            false => Ok(()),
        };
        match self {
            Self::Announce { addrs, .. } => bound("addresses", addrs.len(), MAX_ADDRS),
            Self::PackagesBatch { hashes } => bound("store hashes", hashes.len(), MAX_HASHES),
            Self::PackagesDelta { added, removed } => bound(
                "store hashes",
                added.len().saturating_add(removed.len()),
                MAX_HASHES,
            ),
            Self::CidBatch { mappings } => bound("CID mappings", mappings.len(), MAX_CIDS),
            Self::Cid { .. } | Self::TransferInit { .. } | Self::Report { .. } => Ok(()),
        }
    }
}

/// Lengths are bounded far below `u32::MAX` by [`MAX_BODY`].
fn put_len(out: &mut Vec<u8>, len: usize) {
    out.extend_from_slice(&(len as u32).to_be_bytes());
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_len(out, bytes.len());
    out.extend_from_slice(bytes);
}

/// The bytes a write's signature covers.
pub fn signed_bytes(
    key: &VerifyingKey,
    route: &str,
    timestamp: u64,
    nonce: &[u8; NONCE_LEN],
    payload: &WritePayload,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    put_bytes(&mut out, DOMAIN);
    put_bytes(&mut out, &protobuf_key(key));
    put_bytes(&mut out, route.as_bytes());
    out.extend_from_slice(&timestamp.to_be_bytes());
    out.extend_from_slice(nonce);
    payload.canonical_bytes(&mut out);
    out
}

fn protobuf_key(key: &VerifyingKey) -> [u8; PROTOBUF_KEY_LEN] {
    let mut out = [0; PROTOBUF_KEY_LEN];
    out[..ED25519_KEY_PREFIX.len()].copy_from_slice(&ED25519_KEY_PREFIX);
    out[ED25519_KEY_PREFIX.len()..].copy_from_slice(key.as_bytes());
    out
}

/// The peer id libp2p gives `key`: the identity multihash of its protobuf encoding.
pub fn peer_id(key: &VerifyingKey) -> Result<PeerId, EnvelopeError> {
    let mut bytes = IDENTITY_MULTIHASH_PREFIX.to_vec();
    bytes.extend_from_slice(&protobuf_key(key));
    PeerId::from_bytes(&bytes).map_err(|_| EnvelopeError::UnsupportedKey)
}

fn parse_key(bytes: &[u8]) -> Result<VerifyingKey, EnvelopeError> {
    let raw = bytes
        .strip_prefix(&ED25519_KEY_PREFIX)
        .ok_or(EnvelopeError::UnsupportedKey)?;
    let raw: &[u8; 32] = raw.try_into().map_err(|_| EnvelopeError::UnsupportedKey)?;
    VerifyingKey::from_bytes(raw).map_err(|_| EnvelopeError::UnsupportedKey)
}

/// A write as it travels, parsed but not yet verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedWrite {
    key: VerifyingKey,
    /// Derived from `key`.
    peer: PeerId,
    timestamp: u64,
    nonce: [u8; NONCE_LEN],
    payload: WritePayload,
    signature: Signature,
}

/// A write whose signature, route and timestamp were checked. Whether its nonce is fresh is the
/// store's to say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedWrite {
    pub peer: PeerId,
    pub timestamp: u64,
    pub nonce: [u8; NONCE_LEN],
    pub payload: WritePayload,
}

impl SignedWrite {
    /// Signs `payload` for `route` with the writer's key (the secret of its libp2p ed25519
    /// identity). Refuses payloads the tracker would refuse for their size.
    pub fn sign(
        keypair: &SigningKey,
        route: &str,
        payload: WritePayload,
        now: u64,
        nonce: [u8; NONCE_LEN],
    ) -> Result<Self, EnvelopeError> {
        let key = protobuf_key(&keypair.verifying_key());
        let sign = |message: &[u8]| keypair.sign(message).to_bytes().to_vec();
        Self::sign_with(&key, sign, route, payload, now, nonce)
    }

    /// Signs with a key held elsewhere (a node's identity): `key` is the public key in libp2p's
    /// protobuf encoding, `sign` makes an ed25519 signature of the bytes it is given.
    pub fn sign_with(
        key: &[u8],
        sign: impl FnOnce(&[u8]) -> Vec<u8>,
        route: &str,
        payload: WritePayload,
        now: u64,
        nonce: [u8; NONCE_LEN],
    ) -> Result<Self, EnvelopeError> {
        payload.check_bounds()?;
        let key = parse_key(key)?;
        let signature = sign(&signed_bytes(&key, route, now, &nonce, &payload));
        let signature = Signature::from_slice(&signature).map_err(|_| malformed("signature"))?;
        Ok(Self {
            peer: peer_id(&key)?,
            key,
            timestamp: now,
            nonce,
            payload,
            signature,
        })
    }

    /// What the write asks (not yet verified).
    pub fn payload(&self) -> &WritePayload {
        &self.payload
    }

    /// The peer id of the key the write claims to be signed with (not yet verified).
    pub fn claimed_peer(&self) -> PeerId {
        self.peer
    }

    pub fn verify(
        &self,
        route: &str,
        now: u64,
        max_skew: u64,
    ) -> Result<VerifiedWrite, EnvelopeError> {
        if self.payload.route() != route {
            return Err(EnvelopeError::WrongRoute {
                kind: self.payload.route(),
                route: route.chars().take(MAX_ID_LEN).collect(),
            });
        }
        let message = signed_bytes(&self.key, route, self.timestamp, &self.nonce, &self.payload);
        self.key
            .verify_strict(&message, &self.signature)
            .map_err(|_| EnvelopeError::BadSignature)?;
        let (timestamp, max_skew) = (self.timestamp, max_skew);
        if timestamp.saturating_add(max_skew) < now {
            return Err(EnvelopeError::Stale {
                timestamp,
                now,
                max_skew,
            });
        }
        if timestamp > now.saturating_add(max_skew) {
            return Err(EnvelopeError::FromTheFuture {
                timestamp,
                now,
                max_skew,
            });
        }
        Ok(VerifiedWrite {
            peer: self.peer,
            timestamp,
            nonce: self.nonce,
            payload: self.payload.clone(),
        })
    }

    pub fn to_json(&self) -> Vec<u8> {
        let raw = RawWrite {
            key: BASE64.encode(protobuf_key(&self.key)),
            timestamp: self.timestamp,
            nonce: hex(&self.nonce),
            payload: RawPayload::from(&self.payload),
            signature: BASE64.encode(self.signature.to_bytes()),
        };
        // Serialising strings and integers into memory cannot fail.
        serde_json::to_vec(&raw).unwrap_or_default()
    }

    pub fn parse(body: &[u8]) -> Result<Self, EnvelopeError> {
        if body.len() > MAX_BODY {
            return Err(EnvelopeError::TooLarge(body.len()));
        }
        let raw: RawWrite = serde_json::from_slice(body).map_err(malformed)?;
        let key = BASE64.decode(&raw.key).map_err(|_| malformed("key"))?;
        let signature = BASE64
            .decode(&raw.signature)
            .map_err(|_| malformed("signature"))?;
        let signature = Signature::from_slice(&signature).map_err(|_| malformed("signature"))?;
        let key = parse_key(&key)?;
        let write = Self {
            peer: peer_id(&key)?,
            key,
            timestamp: raw.timestamp,
            nonce: parse_nonce(&raw.nonce)?,
            payload: raw.payload.try_into()?,
            signature,
        };
        write.payload.check_bounds()?;
        Ok(write)
    }
}

#[cfg(test)]
mod tests;
