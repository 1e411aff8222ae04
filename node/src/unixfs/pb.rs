//! The protobuf encodings kubo hashes: dag-pb nodes (links before data, as canonical dag-pb
//! orders them) carrying UnixFS `Data` messages of type File.

use cid::Cid;

/// UnixFS `Data.Type` File.
const TYPE_FILE: u64 = 2;

fn varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn key(out: &mut Vec<u8>, field: u64, wire_type: u64) {
    varint(out, (field << 3) | wire_type);
}

fn bytes_field(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    key(out, field, 2);
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn varint_field(out: &mut Vec<u8>, field: u64, value: u64) {
    key(out, field, 0);
    varint(out, value);
}

/// A link from an inner node: the child's CID, its cumulative DAG size and its file size.
pub struct Link {
    pub cid: Cid,
    pub tsize: u64,
    pub file_size: u64,
}

/// UnixFS `Data` for a file node: `data` for leaves, `block_sizes` for inner nodes.
fn unixfs_file(data: &[u8], file_size: u64, block_sizes: &[u64]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 16 + 4 * block_sizes.len());
    varint_field(&mut out, 1, TYPE_FILE);
    if !data.is_empty() {
        bytes_field(&mut out, 2, data);
    }
    varint_field(&mut out, 3, file_size);
    for &size in block_sizes {
        varint_field(&mut out, 4, size);
    }
    out
}

/// A dag-pb leaf wrapping a chunk (CIDv0 files).
pub fn leaf_node(chunk: &[u8]) -> Vec<u8> {
    let data = unixfs_file(chunk, chunk.len() as u64, &[]);
    let mut out = Vec::with_capacity(data.len() + 8);
    bytes_field(&mut out, 1, &data);
    out
}

/// A dag-pb inner node over `links`.
pub fn inner_node(links: &[Link]) -> Vec<u8> {
    let sizes: Vec<u64> = links.iter().map(|l| l.file_size).collect();
    let data = unixfs_file(&[], sizes.iter().sum(), &sizes);
    let mut out = Vec::with_capacity(data.len() + 48 * links.len() + 8);
    for link in links {
        let mut encoded = Vec::with_capacity(48);
        bytes_field(&mut encoded, 1, &link.cid.to_bytes());
        // kubo always writes the (empty) name.
        bytes_field(&mut encoded, 2, b"");
        varint_field(&mut encoded, 3, link.tsize);
        bytes_field(&mut out, 2, &encoded);
    }
    bytes_field(&mut out, 1, &data);
    out
}
