//! `peerix cid [--cid-version 0|1] FILE`: the CID kubo would give a file.

use std::fs::File;
use std::io::{self, Read};

use peerix_node::unixfs::{file_cid, CidVersion};

use crate::cli::CidArgs;
use crate::progress;

pub fn run(args: &CidArgs) -> Result<(), String> {
    let version = match args.cid_version {
        0 => CidVersion::V0,
        _ => CidVersion::V1,
    };
    let source: Box<dyn Read> = if args.file.as_os_str() == "-" {
        Box::new(io::stdin().lock())
    } else {
        let file = File::open(&args.file)
            .map_err(|e| format!("cannot open {}: {e}", args.file.display()))?;
        let size = file.metadata().ok().map(|m| m.len());
        Box::new(progress::reading(file, size, "hashing"))
    };
    let cid = file_cid(version, source)
        .map_err(|e| format!("cannot read {}: {e}", args.file.display()))?;
    println!("{cid}");
    Ok(())
}
