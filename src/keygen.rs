//! `peerix keygen NAME SECRET_FILE PUBLIC_FILE`.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::cli::KeygenArgs;
use crate::nix::signing::SecretKey;

fn write_new(path: &Path, text: &str, mode: u32) -> Result<(), String> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    file.write_all(text.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

pub fn run(args: &KeygenArgs) -> Result<(), String> {
    let secret = SecretKey::generate(&args.name).map_err(|e| e.to_string())?;
    // The secret goes first: if it cannot be written, no orphan public key is left behind.
    write_new(&args.secret_file, &secret.to_file_text(), 0o600)?;
    write_new(&args.public_file, &secret.public().to_file_text(), 0o644)
}
