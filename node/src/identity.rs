//! The node's ed25519 identity, kept in libp2p's protobuf encoding in a file only its owner reads.

use std::fs::{self, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use libp2p::identity::Keypair;

use crate::NodeError;

/// Loads the identity at `path`, creating it (mode 0600, written atomically) when missing.
pub fn load_or_create(path: &Path) -> Result<Keypair, NodeError> {
    let shown = || path.display().to_string();
    match fs::read(path) {
        Ok(bytes) => {
            let mode = fs::metadata(path)
                .map(|m| m.permissions().mode() & 0o077)
                .unwrap_or(0);
            if mode != 0 {
                tracing::warn!(file = %shown(), "identity file is readable by others; chmod 600 it");
            }
            Keypair::from_protobuf_encoding(&bytes)
                .map_err(|e| NodeError::Identity(format!("{}: {e}", shown())))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let keypair = Keypair::generate_ed25519();
            let encoded = keypair
                .to_protobuf_encoding()
                .map_err(|e| NodeError::Identity(e.to_string()))?;
            write_private(path, &encoded)
                .map_err(|e| NodeError::Identity(format!("{}: {e}", shown())))?;
            Ok(keypair)
        }
        Err(e) => Err(NodeError::Identity(format!("{}: {e}", shown()))),
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    let temporary = path.with_extension("tmp");
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temporary)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    fs::rename(&temporary, path)
}
