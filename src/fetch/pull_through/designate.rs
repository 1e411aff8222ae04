//! Which near node pulls a file from upstream: the one whose id, hashed with the file's hash,
//! scores highest (rendezvous hashing). Every node that sees the same near nodes picks the same
//! one without a word exchanged, each file goes to one of them, and a node leaving moves only
//! its own files.

use peerix_http::NarHash;
use peerix_node::PeerId;
use sha2::{Digest, Sha256};

fn score(node: &PeerId, file_hash: &NarHash) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(node.to_bytes());
    hasher.update(file_hash.0);
    hasher.finalize().into()
}

/// The node among `own` and `near` that pulls `file_hash`.
pub fn puller(file_hash: &NarHash, own: PeerId, near: &[PeerId]) -> PeerId {
    near.iter()
        .copied()
        .chain([own])
        .max_by_key(|node| score(node, file_hash))
        .unwrap_or(own)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_node_picks_the_same_puller_and_files_spread() {
        let nodes: Vec<PeerId> = (0..4).map(|_| PeerId::random()).collect();
        let mut picked = std::collections::HashSet::new();
        for i in 0..64u8 {
            let file = NarHash([i; 32]);
            let choices: Vec<PeerId> = (0..nodes.len())
                .map(|me| {
                    let others: Vec<PeerId> =
                        nodes.iter().copied().filter(|n| *n != nodes[me]).collect();
                    puller(&file, nodes[me], &others)
                })
                .collect();
            assert!(choices.iter().all(|c| *c == choices[0]));
            picked.insert(choices[0]);
        }
        assert_eq!(picked.len(), nodes.len(), "64 files land on every node");
    }
}
