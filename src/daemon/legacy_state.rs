//! State the Python Peerix left at the same default path (`/var/lib/peerix`): its identity file
//! is converted to the node's format or replaced (see `peerix_node::adopt_foreign_identity`),
//! and its CID cache is left alone. Each says so in one log line.

use std::path::Path;

use peerix_node::Adoption;

use super::StartError;

/// The Python Peerix's `{storeHash: CID}` maps, plain and gzipped.
const CID_CACHES: [&str; 2] = ["cid_cache.json", "cid_cache.json.gz"];

/// Converts or replaces a foreign identity at `identity_file` (when the node runs), and reports
/// the Python Peerix's CID cache in `state_dir`.
pub fn adopt(state_dir: &Path, identity_file: Option<&Path>) -> Result<(), StartError> {
    if let Some(path) = identity_file {
        adopt_identity(path)?;
    }
    for name in CID_CACHES {
        let cache = state_dir.join(name);
        if cache.exists() {
            // Its CIDs are kubo's (CIDv0, kubo's chunking): this node never made those blocks.
            // Said at every start while the file is there, so not at the default level.
            tracing::info!(
                file = %cache.display(),
                "the Python Peerix's CID cache is left in place, unread: its CIDs are kubo's, \
                 not this node's, so nothing is imported"
            );
        }
    }
    Ok(())
}

fn adopt_identity(path: &Path) -> Result<(), StartError> {
    match peerix_node::adopt_foreign_identity(path).map_err(StartError::Node)? {
        Adoption::Native => {}
        Adoption::Converted {
            format,
            peer_id,
            aside,
            // Both happen once, and change a file: said at the default level.
        } => tracing::warn!(
            file = %path.display(),
            original = %aside.display(),
            %peer_id,
            "identity converted from {format} to libp2p's format: the peer id is kept"
        ),
        Adoption::Replaced {
            reason,
            peer_id,
            aside,
        } => tracing::warn!(
            file = %path.display(),
            original = %aside.display(),
            %peer_id,
            "identity replaced by a new one: the old file holds {reason}"
        ),
    }
    Ok(())
}
