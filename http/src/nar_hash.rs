//! `sha256:<digest>` as narinfo files and the Nix database write it.

use std::fmt;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use thiserror::Error;

use crate::nixbase32;

#[derive(Debug, Error, PartialEq, Eq)]
#[error("NAR hash must be sha256: with 52 nixbase32 or 64 hex characters, or sha256- with base64")]
pub struct NarHashError;

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct NarHash(pub [u8; 32]);

impl NarHash {
    /// Accepts the spellings Nix uses: nixbase32 (narinfo), base16 (database) and SRI
    /// (`sha256-<base64>`, `nix path-info --json`).
    pub fn parse(text: &str) -> Result<Self, NarHashError> {
        if let Some(sri) = text.strip_prefix("sha256-") {
            let bytes = BASE64.decode(sri).map_err(|_| NarHashError)?;
            return bytes.try_into().map(Self).map_err(|_| NarHashError);
        }
        let digest = text.strip_prefix("sha256:").ok_or(NarHashError)?;
        match digest.len() {
            52 => Self::from_base32(digest),
            64 => decode_hex(digest).map(Self).ok_or(NarHashError),
            _ => Err(NarHashError),
        }
    }

    /// The bare 52-character digest, as in NAR URLs.
    pub fn from_base32(digest: &str) -> Result<Self, NarHashError> {
        nixbase32::decode::<32>(digest)
            .map(Self)
            .map_err(|_| NarHashError)
    }

    pub fn to_base32(&self) -> String {
        nixbase32::encode(&self.0)
    }

    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

fn decode_hex(text: &str) -> Option<[u8; 32]> {
    fn nibble(c: u8) -> Option<u8> {
        (c as char).to_digit(16).map(|d| d as u8)
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(text.as_bytes().chunks_exact(2)) {
        *byte = nibble(pair[0])? << 4 | nibble(pair[1])?;
    }
    Some(out)
}

impl fmt::Display for NarHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.to_base32())
    }
}

impl fmt::Debug for NarHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NarHash({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_spellings_agree() {
        let hex = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let b32 = "sha256:0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73";
        let sri = "sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=";
        let a = NarHash::parse(hex).unwrap();
        assert_eq!(a, NarHash::parse(b32).unwrap());
        assert_eq!(a, NarHash::parse(sri).unwrap());
        assert_eq!(a.to_string(), b32);
        assert_eq!(format!("sha256:{}", a.to_hex()), hex);
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "sha256:",
            "md5:abc",
            "sha256:+3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "sha256:0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c7é",
        ] {
            assert_eq!(NarHash::parse(bad), Err(NarHashError), "{bad:?}");
        }
    }
}
