//! Binary-cache signatures: Nix key files, the path fingerprint, ed25519 sign and verify.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};
use peerix_http::{NarHash, StorePathName};
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("key is not of the form name:base64")]
    Shape,
    #[error("key {0}: base64 payload is malformed")]
    Base64(String),
    #[error("key {name}: payload is {len} bytes, expected {expected}")]
    Length {
        name: String,
        len: usize,
        expected: usize,
    },
    #[error("key {0}: public half does not match the secret seed")]
    Mismatch(String),
    #[error("key {0}: not a valid ed25519 public key")]
    Point(String),
    #[error("no randomness from the operating system")]
    Entropy,
}

/// Splits `name:base64` and decodes exactly `N` bytes.
fn decode_named<const N: usize>(text: &str) -> Result<(String, [u8; N]), KeyError> {
    let (name, payload) = text.trim().split_once(':').ok_or(KeyError::Shape)?;
    if name.is_empty() {
        return Err(KeyError::Shape);
    }
    let bytes = BASE64
        .decode(payload)
        .map_err(|_| KeyError::Base64(name.to_owned()))?;
    let array = bytes.as_slice().try_into().map_err(|_| KeyError::Length {
        name: name.to_owned(),
        len: bytes.len(),
        expected: N,
    })?;
    Ok((name.to_owned(), array))
}

/// The text Nix signs for a store path.
pub fn fingerprint(
    path: &StorePathName,
    nar_hash: &NarHash,
    nar_size: u64,
    references: &[StorePathName],
) -> String {
    let mut refs: Vec<String> = references.iter().map(StorePathName::to_absolute).collect();
    refs.sort_unstable();
    format!(
        "1;{};{nar_hash};{nar_size};{}",
        path.to_absolute(),
        refs.join(",")
    )
}

pub struct SecretKey {
    name: String,
    key: SigningKey,
}

impl SecretKey {
    /// Reads `name:base64(seed || public)`, the format of `nix-store --generate-binary-cache-key`.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let (name, bytes) = decode_named::<64>(text)?;
        let key =
            SigningKey::from_keypair_bytes(&bytes).map_err(|_| KeyError::Mismatch(name.clone()))?;
        Ok(Self { name, key })
    }

    pub fn generate(name: &str) -> Result<Self, KeyError> {
        if name.is_empty() || name.contains(':') {
            return Err(KeyError::Shape);
        }
        let mut seed = [0u8; 32];
        getrandom::getrandom(&mut seed).map_err(|_| KeyError::Entropy)?;
        Ok(Self {
            name: name.to_owned(),
            key: SigningKey::from_bytes(&seed),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn to_file_text(&self) -> String {
        format!(
            "{}:{}",
            self.name,
            BASE64.encode(self.key.to_keypair_bytes())
        )
    }

    pub fn public(&self) -> PublicKey {
        PublicKey {
            name: self.name.clone(),
            key: self.key.verifying_key(),
        }
    }

    /// A `Sig:` value: `name:base64(signature)`.
    pub fn sign(&self, fingerprint: &str) -> String {
        let signature = self.key.sign(fingerprint.as_bytes());
        format!("{}:{}", self.name, BASE64.encode(signature.to_bytes()))
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKey {
    name: String,
    key: VerifyingKey,
}

impl PublicKey {
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let (name, bytes) = decode_named::<32>(text)?;
        let key = VerifyingKey::from_bytes(&bytes).map_err(|_| KeyError::Point(name.clone()))?;
        Ok(Self { name, key })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn to_file_text(&self) -> String {
        format!("{}:{}", self.name, BASE64.encode(self.key.as_bytes()))
    }

    /// True when `sig` (`name:base64`) is this key's valid signature of `fingerprint`.
    pub fn verify(&self, fingerprint: &str, sig: &str) -> bool {
        let Ok((name, bytes)) = decode_named::<64>(sig) else {
            return false;
        };
        name == self.name
            && self
                .key
                .verify(fingerprint.as_bytes(), &Signature::from_bytes(&bytes))
                .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_sign_and_verify() {
        let secret = SecretKey::generate("peerix-test-1").unwrap();
        let public = PublicKey::parse(&secret.public().to_file_text()).unwrap();
        let again = SecretKey::parse(&secret.to_file_text()).unwrap();
        let sig = again.sign("1;/nix/store/x;sha256:y;1;");
        assert!(public.verify("1;/nix/store/x;sha256:y;1;", &sig));
        assert!(!public.verify("1;/nix/store/x;sha256:y;2;", &sig));
        assert!(!public.verify(
            "1;/nix/store/x;sha256:y;1;",
            &sig.replacen("peerix-test-1", "other", 1)
        ));
    }

    #[test]
    fn fingerprint_uses_sorted_absolute_references() {
        let path = StorePathName::parse("7h7qgvs4kgzsn8a6rb273saxyqh4jxlz-hello").unwrap();
        let lib = StorePathName::parse("0a7qgvs4kgzsn8a6rb273saxyqh4jxlz-lib").unwrap();
        let hash = NarHash([0; 32]);
        assert_eq!(
            fingerprint(&path, &hash, 42, &[path.clone(), lib.clone()]),
            format!("1;/nix/store/{path};{hash};42;/nix/store/{lib},/nix/store/{path}")
        );
    }

    #[test]
    fn rejects_malformed_keys() {
        assert_eq!(SecretKey::parse("nocolon").err(), Some(KeyError::Shape));
        assert_eq!(PublicKey::parse(":AAAA").err(), Some(KeyError::Shape));
        assert!(matches!(
            PublicKey::parse("k:!!!"),
            Err(KeyError::Base64(_))
        ));
        assert!(matches!(
            PublicKey::parse("k:AAAA"),
            Err(KeyError::Length { .. })
        ));
        let secret = SecretKey::generate("k").unwrap().to_file_text();
        let mut bytes = BASE64.decode(secret.split_once(':').unwrap().1).unwrap();
        bytes[40] ^= 1;
        assert!(matches!(
            SecretKey::parse(&format!("k:{}", BASE64.encode(&bytes))),
            Err(KeyError::Mismatch(_))
        ));
    }
}
