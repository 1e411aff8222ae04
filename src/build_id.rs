//! Which build of Peerix is running: its version, and an id that changes whenever the executable
//! is replaced (an upgrade, a rebuild that keeps the version number, a new Nix store path), so an
//! open dashboard knows to reload itself.

use std::sync::OnceLock;
use std::time::UNIX_EPOCH;

use sha2::{Digest, Sha256};

#[derive(Debug)]
pub struct Build {
    pub version: &'static str,
    pub id: String,
}

/// The running build, read once.
pub fn running() -> &'static Build {
    static BUILD: OnceLock<Build> = OnceLock::new();
    BUILD.get_or_init(|| Build {
        version: env!("CARGO_PKG_VERSION"),
        id: executable_id(),
    })
}

/// A digest of the version and of what names the executable: its path, size and modification
/// time. Reading its whole content would cost a start-up delay for no gain.
fn executable_id() -> String {
    let mut digest = Sha256::new();
    digest.update(env!("CARGO_PKG_VERSION"));
    if let Ok(exe) = std::env::current_exe() {
        digest.update(exe.as_os_str().as_encoded_bytes());
        if let Ok(meta) = std::fs::metadata(&exe) {
            digest.update(meta.len().to_le_bytes());
            let modified = meta.modified().ok();
            let since_epoch = modified.and_then(|m| m.duration_since(UNIX_EPOCH).ok());
            digest.update(since_epoch.unwrap_or_default().as_nanos().to_le_bytes());
        }
    }
    digest.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
