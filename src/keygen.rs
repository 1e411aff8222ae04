//! `peerix keygen NAME SECRET_FILE PUBLIC_FILE`.

use std::fs::OpenOptions;
use std::io::{self, Write as _};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::cli::KeygenArgs;
use crate::nix::signing::{KeyError, SecretKey};

#[derive(Debug, Error)]
pub enum KeygenError {
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("cannot create {path}: {source}")]
    Create { path: PathBuf, source: io::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
}

fn write_new(path: &Path, text: &str, mode: u32) -> Result<(), KeygenError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|source| KeygenError::Create {
            path: path.to_owned(),
            source,
        })?;
    file.write_all(text.as_bytes())
        .map_err(|source| KeygenError::Write {
            path: path.to_owned(),
            source,
        })
}

pub fn run(args: &KeygenArgs) -> Result<(), KeygenError> {
    let secret = SecretKey::generate(&args.name)?;
    // The secret goes first: if it cannot be written, no orphan public key is left behind.
    write_new(&args.secret_file, &secret.to_file_text(), 0o600)?;
    write_new(&args.public_file, &secret.public().to_file_text(), 0o644)
}
