//! The JSON text of a tracker write, and its conversion to and from the typed payload: the
//! parsing half of the envelope, which bounds every list and string it reads.

use cid::Cid;
use peerix_http::StoreHash;
use serde::{Deserialize, Serialize};

use super::{
    malformed, EnvelopeError, Role, WritePayload, MAX_ADDRS, MAX_ADDR_LEN, MAX_CIDS, MAX_ID_LEN,
    NONCE_LEN,
};

pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(super) fn parse_nonce(text: &str) -> Result<[u8; NONCE_LEN], EnvelopeError> {
    let bad = || malformed(format!("nonce is not {NONCE_LEN} bytes in hex"));
    if text.len() != 2 * NONCE_LEN || !text.is_ascii() {
        return Err(bad());
    }
    let mut nonce = [0; NONCE_LEN];
    for (byte, pair) in nonce.iter_mut().zip(text.as_bytes().chunks_exact(2)) {
        let pair = std::str::from_utf8(pair).map_err(|_| bad())?;
        *byte = u8::from_str_radix(pair, 16).map_err(|_| bad())?;
    }
    Ok(nonce)
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWrite {
    pub(super) key: String,
    pub(super) timestamp: u64,
    pub(super) nonce: String,
    pub(super) payload: RawPayload,
    pub(super) signature: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CidMapping {
    hash: String,
    cid: String,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub(super) enum RawPayload {
    Announce {
        port: u16,
        addrs: Vec<String>,
    },
    PackagesBatch {
        hashes: Vec<String>,
    },
    PackagesDelta {
        added: Vec<String>,
        removed: Vec<String>,
    },
    Cid {
        hash: String,
        cid: String,
    },
    CidBatch {
        mappings: Vec<CidMapping>,
    },
    TransferInit {
        sender: String,
        receiver: String,
        hash: String,
    },
    Report {
        transfer_id: u64,
        role: Role,
        bytes: u64,
    },
}

impl From<&WritePayload> for RawPayload {
    fn from(payload: &WritePayload) -> Self {
        let strings = |hashes: &[StoreHash]| hashes.iter().map(|h| h.to_string()).collect();
        match payload {
            WritePayload::Announce { port, addrs } => Self::Announce {
                port: *port,
                addrs: addrs.iter().map(|a| a.to_string()).collect(),
            },
            WritePayload::PackagesBatch { hashes } => Self::PackagesBatch {
                hashes: strings(hashes),
            },
            WritePayload::PackagesDelta { added, removed } => Self::PackagesDelta {
                added: strings(added),
                removed: strings(removed),
            },
            WritePayload::Cid { hash, cid } => Self::Cid {
                hash: hash.to_string(),
                cid: cid.to_string(),
            },
            WritePayload::CidBatch { mappings } => Self::CidBatch {
                mappings: mappings
                    .iter()
                    .map(|(hash, cid)| CidMapping {
                        hash: hash.to_string(),
                        cid: cid.to_string(),
                    })
                    .collect(),
            },
            WritePayload::TransferInit {
                sender,
                receiver,
                hash,
            } => Self::TransferInit {
                sender: sender.to_string(),
                receiver: receiver.to_string(),
                hash: hash.to_string(),
            },
            WritePayload::Report {
                transfer_id,
                role,
                bytes,
            } => Self::Report {
                transfer_id: *transfer_id,
                role: *role,
                bytes: *bytes,
            },
        }
    }
}

fn parse_hashes(texts: &[String]) -> Result<Vec<StoreHash>, EnvelopeError> {
    texts.iter().map(|t| parse_hash(t)).collect()
}

fn parse_hash(text: &str) -> Result<StoreHash, EnvelopeError> {
    StoreHash::parse(text).map_err(|_| malformed("bad store hash"))
}

fn parse_cid(text: &str) -> Result<Cid, EnvelopeError> {
    if text.len() > MAX_ID_LEN {
        return Err(malformed(format!(
            "CID longer than {MAX_ID_LEN} characters"
        )));
    }
    Cid::try_from(text).map_err(|_| malformed("bad CID"))
}

fn parse_bounded<T: std::str::FromStr>(
    text: &str,
    what: &str,
    max: usize,
) -> Result<T, EnvelopeError> {
    if text.len() > max {
        return Err(malformed(format!("{what} longer than {max} characters")));
    }
    text.parse().map_err(|_| malformed(format!("bad {what}")))
}

impl TryFrom<RawPayload> for WritePayload {
    type Error = EnvelopeError;

    fn try_from(raw: RawPayload) -> Result<Self, EnvelopeError> {
        let too_many = |what, len, max| EnvelopeError::TooMany { what, len, max };
        Ok(match raw {
            RawPayload::Announce { port, addrs } => {
                if addrs.len() > MAX_ADDRS {
                    return Err(too_many("addresses", addrs.len(), MAX_ADDRS));
                }
                Self::Announce {
                    port,
                    addrs: addrs
                        .iter()
                        .map(|a| parse_bounded(a, "address", MAX_ADDR_LEN))
                        .collect::<Result<_, _>>()?,
                }
            }
            RawPayload::PackagesBatch { hashes } => Self::PackagesBatch {
                hashes: parse_hashes(&hashes)?,
            },
            RawPayload::PackagesDelta { added, removed } => Self::PackagesDelta {
                added: parse_hashes(&added)?,
                removed: parse_hashes(&removed)?,
            },
            RawPayload::Cid { hash, cid } => Self::Cid {
                hash: parse_hash(&hash)?,
                cid: parse_cid(&cid)?,
            },
            RawPayload::CidBatch { mappings } => {
                if mappings.len() > MAX_CIDS {
                    return Err(too_many("CID mappings", mappings.len(), MAX_CIDS));
                }
                Self::CidBatch {
                    mappings: mappings
                        .iter()
                        .map(|m| Ok((parse_hash(&m.hash)?, parse_cid(&m.cid)?)))
                        .collect::<Result<_, EnvelopeError>>()?,
                }
            }
            RawPayload::TransferInit {
                sender,
                receiver,
                hash,
            } => Self::TransferInit {
                sender: parse_bounded(&sender, "peer id", MAX_ID_LEN)?,
                receiver: parse_bounded(&receiver, "peer id", MAX_ID_LEN)?,
                hash: parse_hash(&hash)?,
            },
            RawPayload::Report {
                transfer_id,
                role,
                bytes,
            } => Self::Report {
                transfer_id,
                role,
                bytes,
            },
        })
    }
}
