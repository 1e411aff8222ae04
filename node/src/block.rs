//! Blocks as Bitswap moves them: bounded in size and accepted only if they hash to their CID.

use cid::Cid;
use multihash::Multihash;
use sha2::{Digest, Sha256};
use thiserror::Error;

/// The largest block kubo and Helia exchange (2 MiB; kubo's importer stays far below).
pub const MAX_BLOCK_SIZE: usize = 2 << 20;

/// Multihash code of sha2-256, the only hash this node produces or accepts.
pub(crate) const SHA2_256: u64 = 0x12;
/// CID codecs of UnixFS blocks.
pub(crate) const DAG_PB: u64 = 0x70;
pub const RAW: u64 = 0x55;

/// The sha2-256 multihash of `bytes`.
pub fn sha256_multihash(bytes: &[u8]) -> Multihash<64> {
    // A 32-byte digest always fits the 64-byte multihash.
    Multihash::wrap(SHA2_256, &Sha256::digest(bytes)).unwrap_or_default()
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum BlockError {
    #[error("block of {0} bytes exceeds {MAX_BLOCK_SIZE}")]
    TooLarge(usize),
    #[error("multihash function {0:#x} is not supported")]
    UnsupportedHash(u64),
    #[error("block does not hash to its CID")]
    Mismatch,
}

/// Checks that `data` is the block `cid` names.
pub fn verify(cid: &Cid, data: &[u8]) -> Result<(), BlockError> {
    if data.len() > MAX_BLOCK_SIZE {
        return Err(BlockError::TooLarge(data.len()));
    }
    let hash = cid.hash();
    match hash.code() {
        SHA2_256 if hash.digest() == Sha256::digest(data).as_slice() => Ok(()),
        SHA2_256 => Err(BlockError::Mismatch),
        other => Err(BlockError::UnsupportedHash(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::unixfs::{file_cid, CidVersion};

    #[test]
    fn accepts_only_the_named_bytes() {
        let cid = file_cid(CidVersion::V1, &b"block"[..]).unwrap();
        assert_eq!(verify(&cid, b"block"), Ok(()));
        assert_eq!(verify(&cid, b"blocK"), Err(BlockError::Mismatch));
        let big = vec![0u8; MAX_BLOCK_SIZE + 1];
        assert_eq!(
            verify(&cid, &big),
            Err(BlockError::TooLarge(MAX_BLOCK_SIZE + 1))
        );
        let blake3 = Cid::new_v1(0x55, multihash::Multihash::wrap(0x1e, &[0; 32]).unwrap());
        assert_eq!(verify(&blake3, b""), Err(BlockError::UnsupportedHash(0x1e)));
    }
}
