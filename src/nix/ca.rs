//! Content addresses (a narinfo's `CA:` field) and the store path Nix computes from one. A peer's
//! CA field reaches Nix only when it reproduces the path it came with: otherwise it is a claim
//! nobody checked.

use peerix_http::{nixbase32, NarHash, StorePathName};
use sha2::{Digest, Sha256};
use thiserror::Error;

const STORE_DIR: &str = "/nix/store";

#[derive(Debug, Error, PartialEq, Eq)]
pub enum CaError {
    #[error(
        "not a content address Peerix checks (text:sha256:, fixed:sha256: or fixed:r:sha256:)"
    )]
    Unsupported,
    #[error("bad hash in the content address")]
    BadHash,
    #[error("this kind of content address cannot have references")]
    NoReferencesAllowed,
    #[error("bad store path name: {0}")]
    BadName(String),
}

/// How a content-addressed path was made, with the sha256 of its contents.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContentAddress {
    /// `text:sha256:…`: a file written by `builtins.toFile` and the like.
    Text([u8; 32]),
    /// `fixed:r:sha256:…` (the NAR of a tree, as `nix-store --add` makes) or `fixed:sha256:…`
    /// (a flat file's contents).
    Fixed { recursive: bool, hash: [u8; 32] },
}

impl ContentAddress {
    pub fn parse(text: &str) -> Result<Self, CaError> {
        let hash = |digest: &str| {
            NarHash::parse(digest)
                .map(|h| h.0)
                .map_err(|_| CaError::BadHash)
        };
        if let Some(digest) = text.strip_prefix("text:") {
            return Ok(Self::Text(hash(sha256_only(digest)?)?));
        }
        if let Some(digest) = text.strip_prefix("fixed:r:") {
            return Ok(Self::Fixed {
                recursive: true,
                hash: hash(sha256_only(digest)?)?,
            });
        }
        if let Some(digest) = text.strip_prefix("fixed:") {
            return Ok(Self::Fixed {
                recursive: false,
                hash: hash(sha256_only(digest)?)?,
            });
        }
        Err(CaError::Unsupported)
    }

    /// The store path Nix gives content with this address, `name` and `references` (which
    /// include the path itself when it refers to itself).
    pub fn store_path(
        &self,
        name: &str,
        references: &[StorePathName],
        itself: Option<&StorePathName>,
    ) -> Result<StorePathName, CaError> {
        let self_reference = itself.is_some_and(|p| references.contains(p));
        let mut others: Vec<&str> = references
            .iter()
            .filter(|r| Some(*r) != itself)
            .map(StorePathName::basename)
            .collect();
        others.sort_unstable();
        others.dedup();
        match *self {
            Self::Text(hash) if !self_reference => {
                make_store_path(&with_references("text", &others, false), &hash, name)
            }
            Self::Text(_) => Err(CaError::NoReferencesAllowed),
            Self::Fixed {
                recursive: true,
                hash,
            } => make_store_path(
                &with_references("source", &others, self_reference),
                &hash,
                name,
            ),
            Self::Fixed { recursive, hash } => {
                if self_reference || !others.is_empty() {
                    return Err(CaError::NoReferencesAllowed);
                }
                let method = if recursive { "r:" } else { "" };
                let inner = format!("fixed:out:{method}sha256:{}:", hex(&hash));
                let inner: [u8; 32] = Sha256::digest(inner.as_bytes()).into();
                make_store_path("output:out", &inner, name)
            }
        }
    }
}

/// Whether `ca` is the content address of `path` with `references`.
pub fn reproduces(ca: &str, path: &StorePathName, references: &[StorePathName]) -> bool {
    ContentAddress::parse(ca)
        .and_then(|ca| ca.store_path(path.name(), references, Some(path)))
        .is_ok_and(|computed| computed == *path)
}

fn sha256_only(digest: &str) -> Result<&str, CaError> {
    digest
        .starts_with("sha256:")
        .then_some(digest)
        .ok_or(CaError::Unsupported)
}

/// Nix's path type: the kind, then each reference's absolute path, then `self` if it has one.
fn with_references(kind: &str, sorted_basenames: &[&str], self_reference: bool) -> String {
    let mut out = kind.to_owned();
    for basename in sorted_basenames {
        out.push_str(&format!(":{STORE_DIR}/{basename}"));
    }
    if self_reference {
        out.push_str(":self");
    }
    out
}

/// Nix's `makeStorePath`: sha256 of `type:sha256:<hex>:<store dir>:<name>`, folded to 20 bytes.
fn make_store_path(kind: &str, hash: &[u8; 32], name: &str) -> Result<StorePathName, CaError> {
    let fingerprint = format!("{kind}:sha256:{}:{STORE_DIR}:{name}", hex(hash));
    let digest: [u8; 32] = Sha256::digest(fingerprint.as_bytes()).into();
    let mut folded = [0u8; 20];
    for (i, byte) in digest.iter().enumerate() {
        folded[i % 20] ^= byte;
    }
    let basename = format!("{}-{name}", nixbase32::encode(&folded));
    StorePathName::parse(&basename).map_err(|e| CaError::BadName(e.to_string()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_what_it_cannot_check() {
        for bad in [
            "",
            "fixed:md5:0000",
            "fixed:r:sha1:00",
            "text:sha512:00",
            "text:sha256:zz",
            "nar:sha256:00",
        ] {
            assert!(ContentAddress::parse(bad).is_err(), "{bad}");
        }
        let ca = ContentAddress::Fixed {
            recursive: false,
            hash: [0; 32],
        };
        let other = StorePathName::parse("7rjj86a15146cq1d3fmbmhdcd6lkb5ln-hello-2.12").unwrap();
        assert_eq!(
            ca.store_path("x", &[other], None),
            Err(CaError::NoReferencesAllowed)
        );
    }

    #[test]
    fn a_changed_reference_changes_the_path() {
        let a = StorePathName::parse("7rjj86a15146cq1d3fmbmhdcd6lkb5ln-a").unwrap();
        let b = StorePathName::parse("8rjj86a15146cq1d3fmbmhdcd6lkb5ln-b").unwrap();
        let ca = ContentAddress::Text([1; 32]);
        let with_a = ca.store_path("t", std::slice::from_ref(&a), None).unwrap();
        let with_b = ca.store_path("t", &[b], None).unwrap();
        let without = ca.store_path("t", &[], None).unwrap();
        assert_ne!(with_a, with_b);
        assert_ne!(with_a, without);
        let text = format!("text:sha256:{}", nixbase32::encode(&[1; 32]));
        assert!(reproduces(&text, &with_a, &[a]));
        assert!(!reproduces(&text, &with_a, &[]));
    }
}
