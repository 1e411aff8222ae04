//! `peerix cid [--cid-version 0|1] FILE`: the CID kubo would give a file.

use std::fs::File;
use std::io::{self, Read};
use std::path::PathBuf;

use peerix_node::unixfs::{file_cid, CidVersion};
use thiserror::Error;

use crate::cli::CidArgs;
use crate::progress;

#[derive(Debug, Error)]
pub enum CidError {
    #[error("cannot open {path}: {source}")]
    Open { path: PathBuf, source: io::Error },
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
}

pub fn run(args: &CidArgs) -> Result<(), CidError> {
    let version = match args.cid_version {
        0 => CidVersion::V0,
        _ => CidVersion::V1,
    };
    let source: Box<dyn Read> = if args.file.as_os_str() == "-" {
        Box::new(io::stdin().lock())
    } else {
        let file = File::open(&args.file).map_err(|source| CidError::Open {
            path: args.file.clone(),
            source,
        })?;
        let size = file.metadata().ok().map(|m| m.len());
        Box::new(progress::reading(file, size, "hashing"))
    };
    let cid = file_cid(version, source).map_err(|source| CidError::Read {
        path: args.file.clone(),
        source,
    })?;
    println!("{cid}");
    Ok(())
}
