//! Which near node pulls a file from upstream: the rendezvous of the file's hash over the near
//! nodes, so every node that sees the same near nodes picks the same one without a word
//! exchanged, and a node leaving moves only its own files.

use peerix_http::NarHash;
use peerix_node::{rendezvous, PeerId};

/// The node among `own` and `near` that pulls `file_hash`.
pub fn puller(file_hash: &NarHash, own: PeerId, near: &[PeerId]) -> PeerId {
    rendezvous(&file_hash.0, own, near)
}
