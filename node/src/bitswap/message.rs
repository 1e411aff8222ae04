//! Bitswap 1.2.0 messages: the wantlist, blocks with their CID prefixes, and HAVE / DONT_HAVE.
//! Decoding rebuilds each block's CID from its own bytes, so a block can only ever be filed under
//! the CID it really has.

use cid::Cid;
use thiserror::Error;

use crate::block::{sha256_multihash, DAG_PB, MAX_BLOCK_SIZE, SHA2_256};
use crate::protobuf::{read_varint, write_bytes, write_uint, write_varint, Fields, WireError, LEN};

pub const PROTOCOL: &str = "/ipfs/bitswap/1.2.0";
/// kubo and Helia refuse larger messages; so does this node.
pub const MAX_MESSAGE_SIZE: usize = 4 << 20;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum BitswapError {
    #[error(transparent)]
    Wire(#[from] WireError),
    #[error("bitswap: message of {0} bytes exceeds {MAX_MESSAGE_SIZE}")]
    TooLarge(usize),
    #[error("bitswap: invalid CID")]
    Cid,
    #[error("bitswap: invalid or unsupported CID prefix")]
    Prefix,
    #[error("bitswap: block of {0} bytes exceeds {MAX_BLOCK_SIZE}")]
    BlockTooLarge(usize),
    #[error("bitswap: unknown enum value {0}")]
    Enum(u64),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WantType {
    Block,
    Have,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Presence {
    Have,
    DontHave,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WantEntry {
    pub cid: Cid,
    pub priority: i32,
    pub cancel: bool,
    pub want_type: WantType,
    pub send_dont_have: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Message {
    pub wantlist: Vec<WantEntry>,
    /// The wantlist replaces the previous one rather than updating it.
    pub full: bool,
    pub blocks: Vec<(Cid, Vec<u8>)>,
    pub presences: Vec<(Cid, Presence)>,
    pub pending_bytes: i32,
}

/// int32 fields travel as sign-extended 64-bit varints.
fn encode_i32(value: i32) -> u64 {
    i64::from(value) as u64
}

fn decode_i32(value: u64) -> i32 {
    value as i64 as i32
}

fn cid(bytes: &[u8]) -> Result<Cid, BitswapError> {
    Cid::try_from(bytes).map_err(|_| BitswapError::Cid)
}

/// `version, codec, multihash code, digest length`, as varints.
fn prefix_of(cid: &Cid) -> Vec<u8> {
    let mut out = Vec::with_capacity(8);
    for value in [
        u64::from(cid.version()),
        cid.codec(),
        cid.hash().code(),
        u64::from(cid.hash().size()),
    ] {
        write_varint(&mut out, value);
    }
    out
}

/// The CID a block has under `prefix`: only sha2-256 is supported, as kubo's importer uses.
fn cid_from_prefix(prefix: &[u8], data: &[u8]) -> Result<Cid, BitswapError> {
    let mut rest = prefix;
    let mut next = || -> Result<u64, BitswapError> {
        let (value, used) = read_varint(rest)?;
        rest = &rest[used..];
        Ok(value)
    };
    let (version, codec, code, size) = (next()?, next()?, next()?, next()?);
    if !rest.is_empty() || code != SHA2_256 || size != 32 {
        return Err(BitswapError::Prefix);
    }
    let hash = sha256_multihash(data);
    match (version, codec) {
        (0, DAG_PB) => Cid::new_v0(hash).map_err(|_| BitswapError::Prefix),
        (1, codec) => Ok(Cid::new_v1(codec, hash)),
        _ => Err(BitswapError::Prefix),
    }
}

fn checked_block(data: &[u8]) -> Result<&[u8], BitswapError> {
    if data.len() > MAX_BLOCK_SIZE {
        return Err(BitswapError::BlockTooLarge(data.len()));
    }
    Ok(data)
}

/// The most bytes a varint takes.
const MAX_VARINT: usize = 10;

/// A message with its length prefix, as it goes on a stream.
pub struct Delimited {
    buffer: Vec<u8>,
    /// Where the prefix starts: room for the longest one was left before the body.
    start: usize,
}

impl Delimited {
    pub fn bytes(&self) -> &[u8] {
        &self.buffer[self.start..]
    }
}

fn varint_len(value: u64) -> usize {
    let bits = 64 - value.leading_zeros() as usize;
    bits.div_ceil(7).max(1)
}

/// What [`write_bytes`] writes for `len` bytes in `field`.
fn bytes_field_len(field: u64, len: usize) -> usize {
    varint_len((field << 3) | LEN) + varint_len(len as u64) + len
}

impl Message {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len_estimate());
        self.encode_into(&mut out);
        out
    }

    /// The message behind its length prefix, every block copied once, straight into place
    /// (a block is most of a message's bytes).
    pub fn encode_delimited(&self) -> Delimited {
        let mut buffer = Vec::with_capacity(MAX_VARINT + self.encoded_len_estimate());
        buffer.resize(MAX_VARINT, 0);
        self.encode_into(&mut buffer);
        let body_len = (buffer.len() - MAX_VARINT) as u64;
        let start = MAX_VARINT - varint_len(body_len);
        let mut prefix = Vec::with_capacity(MAX_VARINT);
        write_varint(&mut prefix, body_len);
        buffer[start..MAX_VARINT].copy_from_slice(&prefix);
        Delimited { buffer, start }
    }

    /// Enough for the blocks and their framing; the small entries may grow the buffer once.
    fn encoded_len_estimate(&self) -> usize {
        let blocks: usize = self.blocks.iter().map(|(_, data)| data.len() + 32).sum();
        blocks + 64 * (self.wantlist.len() + self.presences.len()) + 16
    }

    fn encode_into(&self, out: &mut Vec<u8>) {
        if !self.wantlist.is_empty() || self.full {
            let mut wantlist = Vec::new();
            for entry in &self.wantlist {
                let mut encoded = Vec::with_capacity(64);
                write_bytes(&mut encoded, 1, &entry.cid.to_bytes());
                write_uint(&mut encoded, 2, encode_i32(entry.priority));
                write_uint(&mut encoded, 3, u64::from(entry.cancel));
                write_uint(
                    &mut encoded,
                    4,
                    u64::from(entry.want_type == WantType::Have),
                );
                write_uint(&mut encoded, 5, u64::from(entry.send_dont_have));
                write_bytes(&mut wantlist, 1, &encoded);
            }
            write_uint(&mut wantlist, 2, u64::from(self.full));
            write_bytes(out, 1, &wantlist);
        }
        for (cid, data) in &self.blocks {
            // Field 3 holds fields 1 (prefix) and 2 (data); its length is known beforehand, so
            // the data goes into `out` directly.
            let prefix = prefix_of(cid);
            let inner = bytes_field_len(1, prefix.len()) + bytes_field_len(2, data.len());
            write_varint(out, (3 << 3) | LEN);
            write_varint(out, inner as u64);
            write_bytes(out, 1, &prefix);
            write_bytes(out, 2, data);
        }
        for (cid, presence) in &self.presences {
            let mut encoded = Vec::with_capacity(48);
            write_bytes(&mut encoded, 1, &cid.to_bytes());
            write_uint(&mut encoded, 2, u64::from(*presence == Presence::DontHave));
            write_bytes(out, 4, &encoded);
        }
        if self.pending_bytes != 0 {
            write_uint(out, 5, encode_i32(self.pending_bytes));
        }
    }

    /// Decodes one message body (without its length prefix). Unknown fields are skipped, as
    /// protobuf readers do; what is known must be well formed.
    pub fn decode(bytes: &[u8]) -> Result<Self, BitswapError> {
        if bytes.len() > MAX_MESSAGE_SIZE {
            return Err(BitswapError::TooLarge(bytes.len()));
        }
        let mut message = Message::default();
        for field in Fields::new(bytes) {
            let (number, value) = field?;
            match number {
                1 => message.decode_wantlist(value.bytes(1)?)?,
                // Bitswap 1.0.0 blocks: bare bytes of CIDv0 dag-pb blocks.
                2 => {
                    let data = checked_block(value.bytes(2)?)?;
                    let cid = cid_from_prefix(&[0, 0x70, 0x12, 0x20], data)?;
                    message.blocks.push((cid, data.to_vec()));
                }
                3 => message.blocks.push(decode_payload(value.bytes(3)?)?),
                4 => message.presences.push(decode_presence(value.bytes(4)?)?),
                5 => message.pending_bytes = decode_i32(value.varint(5)?),
                _ => {}
            }
        }
        Ok(message)
    }

    fn decode_wantlist(&mut self, bytes: &[u8]) -> Result<(), BitswapError> {
        for field in Fields::new(bytes) {
            let (number, value) = field?;
            match number {
                1 => self.wantlist.push(decode_entry(value.bytes(1)?)?),
                2 => self.full = value.varint(2)? != 0,
                _ => {}
            }
        }
        Ok(())
    }
}

fn decode_entry(bytes: &[u8]) -> Result<WantEntry, BitswapError> {
    let mut entry = None;
    let (mut priority, mut cancel, mut want_type, mut send_dont_have) =
        (1, false, WantType::Block, false);
    for field in Fields::new(bytes) {
        let (number, value) = field?;
        match number {
            1 => entry = Some(cid(value.bytes(1)?)?),
            2 => priority = decode_i32(value.varint(2)?),
            3 => cancel = value.varint(3)? != 0,
            4 => {
                want_type = match value.varint(4)? {
                    0 => WantType::Block,
                    1 => WantType::Have,
                    other => return Err(BitswapError::Enum(other)),
                }
            }
            5 => send_dont_have = value.varint(5)? != 0,
            _ => {}
        }
    }
    Ok(WantEntry {
        cid: entry.ok_or(BitswapError::Cid)?,
        priority,
        cancel,
        want_type,
        send_dont_have,
    })
}

fn decode_payload(bytes: &[u8]) -> Result<(Cid, Vec<u8>), BitswapError> {
    let (mut prefix, mut data) = (None, None);
    for field in Fields::new(bytes) {
        let (number, value) = field?;
        match number {
            1 => prefix = Some(value.bytes(1)?),
            2 => data = Some(checked_block(value.bytes(2)?)?),
            _ => {}
        }
    }
    let data = data.unwrap_or_default();
    let cid = cid_from_prefix(prefix.ok_or(BitswapError::Prefix)?, data)?;
    Ok((cid, data.to_vec()))
}

fn decode_presence(bytes: &[u8]) -> Result<(Cid, Presence), BitswapError> {
    let (mut presence_cid, mut presence) = (None, Presence::Have);
    for field in Fields::new(bytes) {
        let (number, value) = field?;
        match number {
            1 => presence_cid = Some(cid(value.bytes(1)?)?),
            2 => {
                presence = match value.varint(2)? {
                    0 => Presence::Have,
                    1 => Presence::DontHave,
                    other => return Err(BitswapError::Enum(other)),
                }
            }
            _ => {}
        }
    }
    Ok((presence_cid.ok_or(BitswapError::Cid)?, presence))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::unixfs::{file_cid, leaf_block, CidVersion};

    fn sample() -> Message {
        let v1 = file_cid(CidVersion::V1, &b"leaf"[..]).unwrap();
        let v0 = file_cid(CidVersion::V0, &b"leaf"[..]).unwrap();
        Message {
            wantlist: vec![
                WantEntry {
                    cid: v1,
                    priority: 5,
                    cancel: false,
                    want_type: WantType::Have,
                    send_dont_have: true,
                },
                WantEntry {
                    cid: v0,
                    priority: -3,
                    cancel: true,
                    want_type: WantType::Block,
                    send_dont_have: false,
                },
            ],
            full: true,
            blocks: vec![
                (v1, b"leaf".to_vec()),
                (v0, leaf_block(CidVersion::V0, b"leaf")),
            ],
            presences: vec![(v1, Presence::Have), (v0, Presence::DontHave)],
            pending_bytes: 1024,
        }
    }

    #[test]
    fn round_trips() {
        let message = sample();
        assert_eq!(Message::decode(&message.encode()), Ok(message));
        assert_eq!(Message::decode(&[]), Ok(Message::default()));
    }

    #[test]
    fn a_block_is_encoded_as_its_nested_fields_would_be() {
        let data = vec![7u8; 256 * 1024];
        let cid = file_cid(CidVersion::V1, &data[..]).unwrap();
        let message = Message {
            blocks: vec![(cid, data.clone())],
            ..Message::default()
        };
        let mut payload = Vec::new();
        write_bytes(&mut payload, 1, &prefix_of(&cid));
        write_bytes(&mut payload, 2, &data);
        let mut nested = Vec::new();
        write_bytes(&mut nested, 3, &payload);
        assert_eq!(message.encode(), nested);
    }

    #[test]
    fn the_length_prefix_is_the_body_length_as_a_varint() {
        let big = vec![1u8; 300_000];
        let big_cid = file_cid(CidVersion::V1, &big[..]).unwrap();
        let with_big_block = Message {
            blocks: vec![(big_cid, big)],
            ..Message::default()
        };
        for message in [Message::default(), sample(), with_big_block] {
            let body = message.encode();
            let mut expected = Vec::new();
            write_varint(&mut expected, body.len() as u64);
            expected.extend_from_slice(&body);
            assert_eq!(message.encode_delimited().bytes(), &expected[..]);
        }
    }

    #[test]
    fn blocks_are_filed_under_the_cid_of_their_bytes() {
        let mut message = sample();
        message.blocks[0].1 = b"evil".to_vec();
        let decoded = Message::decode(&message.encode()).unwrap();
        assert_ne!(decoded.blocks[0].0, message.blocks[0].0);
        assert_eq!(
            decoded.blocks[0].0,
            file_cid(CidVersion::V1, &b"evil"[..]).unwrap()
        );
    }

    #[test]
    fn rejects_malformed_messages() {
        let oversized = vec![0u8; MAX_MESSAGE_SIZE + 1];
        assert_eq!(
            Message::decode(&oversized),
            Err(BitswapError::TooLarge(MAX_MESSAGE_SIZE + 1))
        );
        let mut bad_cid = Vec::new();
        write_bytes(&mut bad_cid, 4, &[0x0a, 0x01, 0xff]);
        assert_eq!(Message::decode(&bad_cid), Err(BitswapError::Cid));
        let mut md5_prefix = Vec::new();
        let mut payload = Vec::new();
        write_bytes(&mut payload, 1, &[1, 0x55, 0xd5, 0x01, 16]);
        write_bytes(&mut payload, 2, b"x");
        write_bytes(&mut md5_prefix, 3, &payload);
        assert_eq!(Message::decode(&md5_prefix), Err(BitswapError::Prefix));
        let mut big_block = Vec::new();
        let mut payload = Vec::new();
        write_bytes(&mut payload, 2, &vec![0; MAX_BLOCK_SIZE + 1]);
        write_bytes(&mut big_block, 3, &payload);
        assert_eq!(
            Message::decode(&big_block),
            Err(BitswapError::BlockTooLarge(MAX_BLOCK_SIZE + 1))
        );
    }
}
