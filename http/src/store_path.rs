//! Store path basenames (`<hash>-<name>`) and their hash parts, as Nix validates them.

use std::fmt;

use thiserror::Error;

use crate::nixbase32;

/// The logical store directory; chroot stores keep it too.
pub const STORE_DIR: &str = "/nix/store";
pub const HASH_LEN: usize = 32;
/// Nix refuses names longer than this.
pub const MAX_NAME_LEN: usize = 211;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum StorePathError {
    #[error("store hash must be {HASH_LEN} nixbase32 characters")]
    Hash,
    #[error("store path name is empty, longer than {MAX_NAME_LEN} bytes, starts with '.', or has a character Nix forbids")]
    Name,
    #[error("store path is not of the form {STORE_DIR}/<hash>-<name>")]
    Shape,
}

/// The 32-character nixbase32 hash part of a store path: what `<hash>.narinfo` names.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StoreHash([u8; HASH_LEN]);

impl StoreHash {
    pub fn parse(text: &str) -> Result<Self, StorePathError> {
        let bytes: [u8; HASH_LEN] = text
            .as_bytes()
            .try_into()
            .map_err(|_| StorePathError::Hash)?;
        if !nixbase32::is_valid_text(&bytes) {
            return Err(StorePathError::Hash);
        }
        Ok(Self(bytes))
    }

    pub fn as_str(&self) -> &str {
        // Only alphabet bytes are ever stored, so this cannot fail.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl fmt::Display for StoreHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for StoreHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StoreHash({})", self.as_str())
    }
}

fn is_name_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"+-._?=".contains(&c)
}

pub fn validate_name(name: &str) -> Result<(), StorePathError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && !name.starts_with('.')
        && name.bytes().all(is_name_char);
    ok.then_some(()).ok_or(StorePathError::Name)
}

/// A validated basename `<hash>-<name>`.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct StorePathName {
    hash: StoreHash,
    basename: String,
}

impl StorePathName {
    pub fn parse(basename: &str) -> Result<Self, StorePathError> {
        let (hash, name) = basename
            .split_at_checked(HASH_LEN)
            .ok_or(StorePathError::Shape)?;
        let name = name.strip_prefix('-').ok_or(StorePathError::Shape)?;
        let hash = StoreHash::parse(hash)?;
        validate_name(name)?;
        Ok(Self {
            hash,
            basename: basename.to_owned(),
        })
    }

    /// Parses an absolute path under [`STORE_DIR`].
    pub fn from_absolute(path: &str) -> Result<Self, StorePathError> {
        let basename = path
            .strip_prefix(STORE_DIR)
            .and_then(|rest| rest.strip_prefix('/'))
            .ok_or(StorePathError::Shape)?;
        Self::parse(basename)
    }

    pub fn hash(&self) -> StoreHash {
        self.hash
    }

    pub fn basename(&self) -> &str {
        &self.basename
    }

    pub fn name(&self) -> &str {
        &self.basename[HASH_LEN + 1..]
    }

    pub fn to_absolute(&self) -> String {
        format!("{STORE_DIR}/{}", self.basename)
    }
}

impl fmt::Display for StorePathName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.basename)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "7h7qgvs4kgzsn8a6rb273saxyqh4jxlz-hello-2.12.1";

    #[test]
    fn parses_valid_paths() {
        let p = StorePathName::from_absolute(&format!("/nix/store/{GOOD}")).unwrap();
        assert_eq!(p.hash().as_str(), "7h7qgvs4kgzsn8a6rb273saxyqh4jxlz");
        assert_eq!(p.name(), "hello-2.12.1");
        assert_eq!(p.to_absolute(), format!("/nix/store/{GOOD}"));
        StorePathName::parse("7h7qgvs4kgzsn8a6rb273saxyqh4jxlz-a+b_c?d=e.f").unwrap();
    }

    #[test]
    fn rejects_invalid_paths() {
        for bad in [
            "",
            "7h7qgvs4kgzsn8a6rb273saxyqh4jxlz",
            "7h7qgvs4kgzsn8a6rb273saxyqh4jxlz-",
            "7h7qgvs4kgzsn8a6rb273saxyqh4jxlz-.hidden",
            "7h7qgvs4kgzsn8a6rb273saxyqh4jxlz-a/b",
            "7h7qgvs4kgzsn8a6rb273saxyqh4jxlz-..",
            "eh7qgvs4kgzsn8a6rb273saxyqh4jxlz-hello",
            "7h7qgvs4kgzsn8a6rb273saxyqh4jxl-hello",
            "7h7qgvs4kgzsn8a6rb273saxyqh4jxlzéhello",
        ] {
            assert!(StorePathName::parse(bad).is_err(), "{bad:?}");
        }
        let long = format!("7h7qgvs4kgzsn8a6rb273saxyqh4jxlz-{}", "a".repeat(212));
        assert_eq!(StorePathName::parse(&long), Err(StorePathError::Name));
        assert!(StorePathName::from_absolute(&format!("/nix/store/../{GOOD}")).is_err());
        assert!(StorePathName::from_absolute(&format!("/other/{GOOD}")).is_err());
    }
}
