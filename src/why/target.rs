//! What `peerix why` accepts: a store hash, a store path's basename, or a full store path (a file
//! inside one too), from which the 32-character hash is taken.

use peerix_http::StoreHash;

/// Characters of a bad argument repeated in the error, at most.
const ECHOED: usize = 80;

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("nothing to explain: give a store hash or a store path")]
    Empty,
    #[error(
        "{0:?} is neither a store hash (32 characters of Nix's base-32) nor a store path \
         (/nix/store/<hash>-<name>)"
    )]
    NotAStorePath(String),
}

/// The store hash `target` names.
pub fn store_hash_of(target: &str) -> Result<StoreHash, TargetError> {
    let target = target.trim();
    if target.is_empty() {
        return Err(TargetError::Empty);
    }
    let bad = || TargetError::NotAStorePath(target.chars().take(ECHOED).collect());
    let mut parts = target.split('/').filter(|part| !part.is_empty());
    let name = if target.starts_with('/') {
        match (parts.next(), parts.next(), parts.next()) {
            (Some("nix"), Some("store"), Some(name)) => name,
            _ => return Err(bad()),
        }
    } else {
        parts.next().ok_or_else(bad)?
    };
    let hash = match name.split_once('-') {
        Some((hash, rest)) if !rest.is_empty() => hash,
        Some(_) => return Err(bad()),
        None => name,
    };
    StoreHash::parse(hash).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "7rjj86a15146cq1d3fmbmhdcd6lkb5ln";

    #[test]
    fn hashes_basenames_and_store_paths_name_the_hash() {
        for target in [
            HASH.to_owned(),
            format!("{HASH}-hello-2.12"),
            format!("/nix/store/{HASH}-hello-2.12"),
            format!("/nix/store/{HASH}-hello-2.12/bin/hello"),
            format!(" {HASH} "),
        ] {
            assert_eq!(store_hash_of(&target).unwrap().as_str(), HASH, "{target}");
        }
        for bad in [
            "hello",
            "/usr/bin/hello",
            "/nix/store",
            &format!("{HASH}-"),
            &format!("/tmp/{HASH}-hello"),
            &HASH[1..],
            "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee",
        ] {
            assert!(
                matches!(store_hash_of(bad), Err(TargetError::NotAStorePath(_))),
                "{bad}"
            );
        }
        assert_eq!(store_hash_of("  "), Err(TargetError::Empty));
        let long = "x".repeat(10_000);
        assert!(store_hash_of(&long).unwrap_err().to_string().len() < 300);
    }
}
