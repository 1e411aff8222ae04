//! Identity files written by other programs than rust-libp2p, read into the node's own ed25519
//! identity where that keeps the key (and so the peer id):
//! - py-libp2p's `save_identity`: the protobuf `PrivateKey` message (field 1 the key type,
//!   field 2 the key), where an Ed25519 key is its 32-byte seed (rust-libp2p and go-libp2p
//!   write the seed followed by the public key, 64 bytes);
//! - the Python Peerix's `identity.key`: the bare 32-byte ed25519 seed (PyNaCl's signing key);
//! - a bare 64-byte seed and public key, as ed25519 libraries write a keypair.
//!
//! Other key types (secp256k1, ECDSA, RSA) cannot become an ed25519 identity.

use libp2p::identity::Keypair;
use thiserror::Error;

use crate::protobuf::{Fields, Value, WireError};

const SEED_LEN: usize = 32;
const KEYPAIR_LEN: usize = 64;
/// Far above any key file (an RSA-4096 key is some 2.4 kB): a larger file is not one.
const MAX_FILE: usize = 16 << 10;

/// What a foreign identity file was, when it could be read.
#[derive(Debug)]
pub struct ForeignIdentity {
    pub keypair: Keypair,
    pub format: &'static str,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ForeignIdentityError {
    #[error("a {0} key, which cannot become an ed25519 identity")]
    NotEd25519(&'static str),
    #[error("an ed25519 key of {0} bytes (a seed is 32, a keypair 64)")]
    Ed25519Length(usize),
    #[error("an ed25519 keypair whose public half is not its seed's")]
    Mismatched,
    #[error("{0} bytes, too large for a key file")]
    TooLarge(usize),
    #[error("not a key file this program knows ({0})")]
    Unknown(String),
}

impl From<WireError> for ForeignIdentityError {
    fn from(e: WireError) -> Self {
        Self::Unknown(e.to_string())
    }
}

/// Reads a foreign identity file into an ed25519 keypair with the same key.
pub fn parse_foreign_identity(bytes: &[u8]) -> Result<ForeignIdentity, ForeignIdentityError> {
    let (key, format) = match bytes.len() {
        SEED_LEN => (bytes, "a bare ed25519 seed (the Python Peerix's)"),
        KEYPAIR_LEN => (bytes, "a bare ed25519 keypair"),
        len if len > MAX_FILE => return Err(ForeignIdentityError::TooLarge(len)),
        _ => (private_key_message(bytes)?, "a py-libp2p ed25519 key"),
    };
    let keypair = ed25519(key)?;
    Ok(ForeignIdentity { keypair, format })
}

/// The ed25519 key of a protobuf `PrivateKey` message.
fn private_key_message(message: &[u8]) -> Result<&[u8], ForeignIdentityError> {
    let (mut key_type, mut data) = (None, None);
    for field in Fields::new(message) {
        match field? {
            (1, value) => key_type = Some(value.varint(1)?),
            (2, value) => data = Some(value.bytes(2)?),
            // Unknown fields are skipped, as protobuf readers do.
            (_, Value::Varint(_) | Value::Bytes(_)) => {}
        }
    }
    let missing = |what: &str| ForeignIdentityError::Unknown(format!("no {what} field"));
    let key_type = key_type.ok_or_else(|| missing("key type"))?;
    let data = data.ok_or_else(|| missing("key"))?;
    match key_type {
        1 => Ok(data),
        0 => Err(ForeignIdentityError::NotEd25519("RSA")),
        2 => Err(ForeignIdentityError::NotEd25519("secp256k1")),
        3 => Err(ForeignIdentityError::NotEd25519("ECDSA")),
        other => Err(ForeignIdentityError::Unknown(format!("key type {other}"))),
    }
}

fn ed25519(key: &[u8]) -> Result<Keypair, ForeignIdentityError> {
    match key.len() {
        SEED_LEN => {
            let mut seed = key.to_vec();
            Keypair::ed25519_from_bytes(&mut seed).map_err(|_| ForeignIdentityError::Mismatched)
        }
        KEYPAIR_LEN => {
            let mut pair = key.to_vec();
            libp2p::identity::ed25519::Keypair::try_from_bytes(&mut pair)
                .map(Keypair::from)
                .map_err(|_| ForeignIdentityError::Mismatched)
        }
        len => Err(ForeignIdentityError::Ed25519Length(len)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: [u8; 32] = [7; 32];

    fn message(key_type: u8, key: &[u8]) -> Vec<u8> {
        let mut out = vec![0x08, key_type, 0x12, key.len() as u8];
        out.extend_from_slice(key);
        out
    }

    #[test]
    fn every_ed25519_form_gives_the_same_peer_id() {
        let expected = Keypair::ed25519_from_bytes(SEED)
            .unwrap()
            .public()
            .to_peer_id();
        let pair = Keypair::ed25519_from_bytes(SEED)
            .unwrap()
            .try_into_ed25519()
            .unwrap()
            .to_bytes();
        for file in [
            message(1, &SEED),
            SEED.to_vec(),
            pair.to_vec(),
            message(1, &pair),
        ] {
            let found = parse_foreign_identity(&file).unwrap();
            assert_eq!(found.keypair.public().to_peer_id(), expected);
        }
    }

    #[test]
    fn other_keys_and_garbage_are_refused() {
        let refused = |file: &[u8]| parse_foreign_identity(file).unwrap_err();
        assert_eq!(
            refused(&message(2, &SEED)),
            ForeignIdentityError::NotEd25519("secp256k1")
        );
        assert_eq!(
            refused(&message(0, &[1; 100])),
            ForeignIdentityError::NotEd25519("RSA")
        );
        assert_eq!(
            refused(&message(1, &[1; 33])),
            ForeignIdentityError::Ed25519Length(33)
        );
        let mut wrong = [7u8; 64];
        wrong[63] ^= 1;
        assert_eq!(refused(&wrong), ForeignIdentityError::Mismatched);
        assert!(matches!(refused(b"{}\n"), ForeignIdentityError::Unknown(_)));
        assert!(matches!(refused(&[]), ForeignIdentityError::Unknown(_)));
        assert!(matches!(
            refused(&[0x12, 0x7f]),
            ForeignIdentityError::Unknown(_)
        ));
        assert_eq!(
            refused(&vec![0; MAX_FILE + 1]),
            ForeignIdentityError::TooLarge(MAX_FILE + 1)
        );
    }
}
