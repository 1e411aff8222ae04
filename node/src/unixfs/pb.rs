//! dag-pb nodes and the UnixFS `Data` messages inside them: encoding exactly as kubo hashes them
//! (links before data, as canonical dag-pb orders them) and strict decoding of peers' blocks.

use std::ops::Range;

use cid::Cid;
use thiserror::Error;

use crate::protobuf::{write_bytes, write_bytes_header, write_uint, Fields, WireError};

/// UnixFS `Data.Type` of files.
pub const TYPE_FILE: u64 = 2;

/// A link from an inner node: the child's CID, its cumulative DAG size and its file size.
pub struct Link {
    pub cid: Cid,
    pub tsize: u64,
    pub file_size: u64,
}

/// UnixFS `Data` for a file node, as the bytes before and after its `data_len` bytes of content
/// (none for inner nodes, which list `block_sizes` instead).
fn unixfs_file(data_len: usize, file_size: u64, block_sizes: &[u64]) -> (Vec<u8>, Vec<u8>) {
    let mut before = Vec::with_capacity(16);
    write_uint(&mut before, 1, TYPE_FILE);
    if data_len > 0 {
        write_bytes_header(&mut before, 2, data_len);
    }
    let mut after = Vec::with_capacity(11 + 4 * block_sizes.len());
    write_uint(&mut after, 3, file_size);
    for &size in block_sizes {
        write_uint(&mut after, 4, size);
    }
    (before, after)
}

/// A dag-pb leaf wrapping a chunk (CIDv0 files).
pub fn leaf_node(chunk: &[u8]) -> Vec<u8> {
    let (mut block, content) = leaf_node_frame(chunk.len());
    block[content].copy_from_slice(chunk);
    block
}

/// A dag-pb leaf for `len` bytes of content with the content still to be filled in (zeros),
/// and where in the block it goes: content read straight into place is not copied twice.
pub fn leaf_node_frame(len: usize) -> (Vec<u8>, Range<usize>) {
    let (before, after) = unixfs_file(len, len as u64, &[]);
    // The dag-pb node's field 1 holds the UnixFS message.
    let data_len = before.len() + len + after.len();
    let mut block = Vec::with_capacity(data_len + 11);
    write_bytes_header(&mut block, 1, data_len);
    block.extend_from_slice(&before);
    let start = block.len();
    block.resize(start + len, 0);
    block.extend_from_slice(&after);
    (block, start..start + len)
}

/// A dag-pb inner node over `links`.
pub fn inner_node(links: &[Link]) -> Vec<u8> {
    let sizes: Vec<u64> = links.iter().map(|l| l.file_size).collect();
    let (mut data, after) = unixfs_file(0, sizes.iter().sum(), &sizes);
    data.extend_from_slice(&after);
    let mut out = Vec::with_capacity(data.len() + 48 * links.len() + 8);
    for link in links {
        let mut encoded = Vec::with_capacity(48);
        write_bytes(&mut encoded, 1, &link.cid.to_bytes());
        // kubo always writes the (empty) name.
        write_bytes(&mut encoded, 2, b"");
        write_uint(&mut encoded, 3, link.tsize);
        write_bytes(&mut out, 2, &encoded);
    }
    write_bytes(&mut out, 1, &data);
    out
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum DagPbError {
    #[error(transparent)]
    Wire(#[from] WireError),
    #[error("dag-pb: unexpected field {0}")]
    Field(u64),
    #[error("dag-pb: fields out of canonical order or repeated")]
    Order,
    #[error("dag-pb: link without a valid CID")]
    LinkCid,
    #[error("dag-pb: link name is not UTF-8")]
    LinkName,
    #[error("UnixFS: missing or unknown data type")]
    UnixFsType,
}

#[derive(Debug, PartialEq, Eq)]
pub struct PbLink {
    pub cid: Cid,
    pub name: Option<String>,
    pub tsize: Option<u64>,
}

#[derive(Debug, PartialEq, Eq)]
pub struct PbNode<'a> {
    pub links: Vec<PbLink>,
    pub data: Option<&'a [u8]>,
}

fn decode_link(bytes: &[u8]) -> Result<PbLink, DagPbError> {
    let (mut cid, mut name, mut tsize) = (None, None, None);
    let mut last = 0;
    for field in Fields::new(bytes) {
        let (number, value) = field?;
        if number <= last {
            return Err(DagPbError::Order);
        }
        last = number;
        match number {
            1 => cid = Some(Cid::try_from(value.bytes(1)?).map_err(|_| DagPbError::LinkCid)?),
            2 => {
                let text =
                    std::str::from_utf8(value.bytes(2)?).map_err(|_| DagPbError::LinkName)?;
                name = Some(text.to_owned());
            }
            3 => tsize = Some(value.varint(3)?),
            other => return Err(DagPbError::Field(other)),
        }
    }
    Ok(PbLink {
        cid: cid.ok_or(DagPbError::LinkCid)?,
        name,
        tsize,
    })
}

/// Decodes a dag-pb block as the spec has it: links (field 2) first, then at most one data field.
pub fn decode_node(block: &[u8]) -> Result<PbNode<'_>, DagPbError> {
    let mut node = PbNode {
        links: Vec::new(),
        data: None,
    };
    for field in Fields::new(block) {
        let (number, value) = field?;
        match number {
            2 if node.data.is_none() => node.links.push(decode_link(value.bytes(2)?)?),
            1 if node.data.is_none() => node.data = Some(value.bytes(1)?),
            1 | 2 => return Err(DagPbError::Order),
            other => return Err(DagPbError::Field(other)),
        }
    }
    Ok(node)
}

/// The parts of a UnixFS `Data` message that reading a file needs.
#[derive(Debug, PartialEq, Eq)]
pub struct UnixFsData<'a> {
    pub kind: u64,
    pub data: &'a [u8],
    pub file_size: Option<u64>,
    pub block_sizes: Vec<u64>,
}

/// Decodes a UnixFS `Data` message; fields this reader does not need (mode, mtime, HAMT
/// parameters) are skipped, as other implementations do.
pub fn decode_unixfs(bytes: &[u8]) -> Result<UnixFsData<'_>, DagPbError> {
    let mut kind = None;
    let mut out = UnixFsData {
        kind: 0,
        data: &[],
        file_size: None,
        block_sizes: Vec::new(),
    };
    for field in Fields::new(bytes) {
        let (number, value) = field?;
        match number {
            1 => kind = Some(value.varint(1)?),
            2 => out.data = value.bytes(2)?,
            3 => out.file_size = Some(value.varint(3)?),
            4 => out.block_sizes.push(value.varint(4)?),
            _ => {}
        }
    }
    out.kind = kind.filter(|&k| k <= 5).ok_or(DagPbError::UnixFsType)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::unixfs::{file_cid, CidVersion};

    #[test]
    fn decodes_what_it_encodes() {
        let leaf = leaf_node(b"hello");
        let node = decode_node(&leaf).unwrap();
        assert!(node.links.is_empty());
        let data = decode_unixfs(node.data.unwrap()).unwrap();
        assert_eq!(
            (data.kind, data.data, data.file_size),
            (TYPE_FILE, &b"hello"[..], Some(5))
        );

        let child = file_cid(CidVersion::V1, &b"x"[..]).unwrap();
        let links = [
            Link {
                cid: child,
                tsize: 1,
                file_size: 1,
            },
            Link {
                cid: child,
                tsize: 1,
                file_size: 1,
            },
        ];
        let inner = inner_node(&links);
        let node = decode_node(&inner).unwrap();
        assert_eq!(node.links.len(), 2);
        assert_eq!(node.links[0].cid, child);
        assert_eq!(node.links[0].name.as_deref(), Some(""));
        let data = decode_unixfs(node.data.unwrap()).unwrap();
        assert_eq!(data.block_sizes, vec![1, 1]);
    }

    /// The leaf with its content read into place is the plain protobuf encoding of a UnixFS
    /// file leaf (Type, Data, filesize inside field 1), across the lengths where a varint grows.
    #[test]
    fn a_leaf_framed_for_its_content_is_the_plain_encoding() {
        for len in [
            0,
            1,
            100,
            127,
            128,
            16_370,
            16_383,
            16_384,
            262_144,
            1 << 21,
        ] {
            let chunk: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let mut unixfs = Vec::new();
            write_uint(&mut unixfs, 1, TYPE_FILE);
            if len > 0 {
                write_bytes(&mut unixfs, 2, &chunk);
            }
            write_uint(&mut unixfs, 3, len as u64);
            let mut plain = Vec::new();
            write_bytes(&mut plain, 1, &unixfs);
            assert_eq!(leaf_node(&chunk), plain, "{len} bytes");
        }
    }

    #[test]
    fn rejects_non_canonical_nodes() {
        let leaf = leaf_node(b"hello");
        let mut data_twice = leaf.clone();
        data_twice.extend_from_slice(&leaf);
        assert_eq!(decode_node(&data_twice).err(), Some(DagPbError::Order));
        let mut link_after_data = leaf.clone();
        write_bytes(&mut link_after_data, 2, b"");
        assert_eq!(decode_node(&link_after_data).err(), Some(DagPbError::Order));
        let mut unknown = Vec::new();
        write_uint(&mut unknown, 3, 1);
        assert_eq!(decode_node(&unknown).err(), Some(DagPbError::Field(3)));
        let mut bad_link = Vec::new();
        write_bytes(&mut bad_link, 2, &[0x0a, 0x02, 0xff, 0xff]);
        assert_eq!(decode_node(&bad_link).err(), Some(DagPbError::LinkCid));
        assert_eq!(decode_unixfs(&[]).err(), Some(DagPbError::UnixFsType));
    }
}
