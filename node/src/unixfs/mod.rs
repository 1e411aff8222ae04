//! UnixFS files as kubo builds them: fixed 256 KiB chunks, a balanced DAG of at most 174 links per
//! node, sha2-256. CIDv0 wraps each chunk in a dag-pb node; CIDv1 keeps chunks as raw leaves.
//!
//! The importer never keeps the content: it reports where each leaf lies in the source, so a
//! caller that can re-produce its bytes (a NAR re-read from the store, say) stores only the inner
//! nodes.

mod importer;
mod pb;

pub use importer::{leaf_block, leaf_block_frame, Block, Importer};
pub use pb::{decode_node, decode_unixfs, DagPbError, PbLink, PbNode, UnixFsData};

use cid::Cid;

use crate::block::{sha256_multihash, DAG_PB, RAW};

/// kubo's default chunk size.
pub const CHUNK_SIZE: usize = 262_144;
/// kubo's balanced layout: links per inner node.
pub const MAX_LINKS: usize = 174;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CidVersion {
    /// `ipfs add`: base58 `Qm...`, dag-pb leaves.
    V0,
    /// `ipfs add --cid-version 1`: base32 `bafy...`, raw leaves.
    V1,
}

fn dag_pb_cid(version: CidVersion, block: &[u8]) -> Cid {
    let hash = sha256_multihash(block);
    match version {
        CidVersion::V0 => Cid::new_v0(hash).unwrap_or_else(|_| Cid::new_v1(DAG_PB, hash)),
        CidVersion::V1 => Cid::new_v1(DAG_PB, hash),
    }
}

fn raw_cid(block: &[u8]) -> Cid {
    Cid::new_v1(RAW, sha256_multihash(block))
}

/// The CID of `content` as a UnixFS file, computed without keeping any block.
pub fn file_cid(version: CidVersion, content: impl std::io::Read) -> std::io::Result<Cid> {
    let mut importer = Importer::new(version);
    let mut content = content;
    let mut buf = vec![0u8; CHUNK_SIZE];
    loop {
        let n = content.read(&mut buf)?;
        if n == 0 {
            break;
        }
        importer.write(&buf[..n], |_| ());
    }
    Ok(importer.finish(|_| ()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_cids_match_kubo() {
        let v0 = file_cid(CidVersion::V0, &b""[..]).unwrap();
        assert_eq!(
            v0.to_string(),
            "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH"
        );
        let v1 = file_cid(CidVersion::V1, &b""[..]).unwrap();
        assert_eq!(
            v1.to_string(),
            "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
        );
    }
}
