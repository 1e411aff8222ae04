//! The node's ed25519 identity, kept in libp2p's protobuf encoding in a file only its owner reads.

use std::fs::{self, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use libp2p::identity::Keypair;
use libp2p::PeerId;

use crate::foreign_identity::{parse_foreign_identity, ForeignIdentityError};
use crate::NodeError;

/// What the file name of a foreign identity gets when it is moved aside.
const SET_ASIDE_SUFFIX: &str = "py-libp2p";

/// What [`adopt_foreign_identity`] did with an identity file.
#[derive(Debug)]
pub enum Adoption {
    /// No file, or one in rust-libp2p's own format: nothing to do.
    Native,
    /// Rewritten in rust-libp2p's format with the same key, so the same peer id; the original
    /// is at `aside`.
    Converted {
        format: &'static str,
        peer_id: PeerId,
        aside: PathBuf,
    },
    /// Replaced by a new identity, the original (at `aside`) being no ed25519 key.
    Replaced {
        reason: ForeignIdentityError,
        peer_id: PeerId,
        aside: PathBuf,
    },
}

/// Makes the identity file at `path` one the node reads: one another program wrote (see
/// foreign_identity.rs) is converted when it holds an ed25519 key and replaced otherwise, the
/// original moved aside to `<file>.py-libp2p`, which is never overwritten.
pub fn adopt_foreign_identity(path: &Path) -> Result<Adoption, NodeError> {
    let shown = || path.display().to_string();
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Adoption::Native),
        Err(e) => return Err(NodeError::Identity(format!("{}: {e}", shown()))),
    };
    if Keypair::from_protobuf_encoding(&bytes).is_ok() {
        return Ok(Adoption::Native);
    }
    let mut aside = path.as_os_str().to_owned();
    aside.push(format!(".{SET_ASIDE_SUFFIX}"));
    let aside = PathBuf::from(aside);
    if aside.exists() {
        return Err(NodeError::Identity(format!(
            "{} is not in libp2p's format, and {} (where it would be moved) exists already",
            shown(),
            aside.display()
        )));
    }
    let (keypair, outcome) = match parse_foreign_identity(&bytes) {
        Ok(found) => (found.keypair, Ok(found.format)),
        Err(reason) => (Keypair::generate_ed25519(), Err(reason)),
    };
    let encoded = keypair
        .to_protobuf_encoding()
        .map_err(|e| NodeError::Identity(e.to_string()))?;
    fs::rename(path, &aside).map_err(|e| NodeError::Identity(format!("{}: {e}", shown())))?;
    write_private(path, &encoded).map_err(|e| NodeError::Identity(format!("{}: {e}", shown())))?;
    let peer_id = keypair.public().to_peer_id();
    Ok(match outcome {
        Ok(format) => Adoption::Converted {
            format,
            peer_id,
            aside,
        },
        Err(reason) => Adoption::Replaced {
            reason,
            peer_id,
            aside,
        },
    })
}

/// A node's identity, also where no node runs: what signs in its name.
#[derive(Clone)]
pub struct Identity(pub(crate) Arc<Keypair>);

impl Identity {
    /// The identity at `path`, created (mode 0600) when missing, as a node would load it.
    pub fn load_or_create(path: &Path) -> Result<Self, NodeError> {
        load_or_create(path).map(|keypair| Self(Arc::new(keypair)))
    }

    pub fn peer_id(&self) -> PeerId {
        self.0.public().to_peer_id()
    }

    /// The public key in libp2p's protobuf encoding: what the peer id is made of.
    pub fn public_key(&self) -> Vec<u8> {
        self.0.public().encode_protobuf()
    }

    /// Signs `message`, so that others can tell this identity wrote it.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, NodeError> {
        self.0
            .sign(message)
            .map_err(|e| NodeError::Identity(e.to_string()))
    }
}

/// Loads the identity at `path`, creating it (mode 0600, written atomically) when missing.
pub(crate) fn load_or_create(path: &Path) -> Result<Keypair, NodeError> {
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
