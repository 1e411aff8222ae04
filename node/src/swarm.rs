//! Fetching a file together with the other nodes that fetch it at the same time. Each block
//! has one member that takes it from the holders (the one that wins the rendezvous of the
//! block's CID); the others ask that member, which passes the block on as soon as it has it. A
//! holder so sends each block about once, however many fetch the file; a block no member
//! has yet is the rarest, and it is exactly that one each member asks the holders for.
//!
//! The caller learns who the other members are (they have to tell each other) and adds them
//! to the [`Swarm`] while the fetch goes on.

use std::sync::{Arc, RwLock};

use cid::Cid;
use libp2p::PeerId;
use sha2::{Digest, Sha256};

/// Members of one swarm kept at most: more only spread the file thinner.
pub const MAX_MEMBERS: usize = 64;
/// Blocks a member may fail to deliver (it lacked them, or was silent) before it is no longer
/// counted on: a member that stalls costs each block it was asked for a want's timeout.
const MISSES: u8 = 3;

pub(crate) struct SwarmInner {
    pub(crate) root: Cid,
    /// Peers that hold the whole file.
    pub(crate) holders: Vec<PeerId>,
    /// The members, with the blocks each failed to deliver.
    members: RwLock<Vec<(PeerId, u8)>>,
}

/// The peers fetching one file with this node, shared between the fetch and the caller.
#[derive(Clone)]
pub struct Swarm(pub(crate) Arc<SwarmInner>);

impl Swarm {
    /// A swarm for fetching the file `root` from `holders` together with the other nodes that
    /// fetch it now, whom the caller adds as it learns of them.
    pub fn new(root: Cid, holders: Vec<PeerId>) -> Self {
        Self(Arc::new(SwarmInner {
            root,
            holders,
            members: RwLock::default(),
        }))
    }

    pub fn root(&self) -> Cid {
        self.0.root
    }

    /// Adds a peer that fetches the same file (a holder or one already known adds nothing).
    pub fn add_member(&self, peer: PeerId) {
        self.0.add_member(peer);
    }

    /// The other members now.
    pub fn members(&self) -> Vec<PeerId> {
        self.0.members()
    }
}

impl SwarmInner {
    pub(crate) fn add_member(&self, peer: PeerId) {
        if self.holders.contains(&peer) {
            return;
        }
        if let Ok(mut members) = self.members.write() {
            if members.len() < MAX_MEMBERS && !members.iter().any(|(p, _)| *p == peer) {
                members.push((peer, 0));
            }
        }
    }

    /// The members still counted on.
    pub(crate) fn members(&self) -> Vec<PeerId> {
        self.members
            .read()
            .map(|m| {
                m.iter()
                    .filter(|(_, misses)| *misses < MISSES)
                    .map(|(p, _)| *p)
                    .collect()
            })
            .unwrap_or_default()
    }

    pub(crate) fn has_member(&self, peer: &PeerId) -> bool {
        self.members
            .read()
            .is_ok_and(|m| m.iter().any(|(p, _)| p == peer))
    }

    /// `peer` did not deliver a block it was asked for.
    pub(crate) fn missed(&self, peer: PeerId) {
        if let Ok(mut members) = self.members.write() {
            if let Some((_, misses)) = members.iter_mut().find(|(p, _)| *p == peer) {
                *misses = misses.saturating_add(1);
            }
        }
    }
}

fn score(node: &PeerId, key: &[u8]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(node.to_bytes());
    hasher.update(key);
    hasher.finalize().into()
}

/// The node among `own` and `others` whose id, hashed with `key`, scores highest (rendezvous
/// hashing): every node that sees the same set picks the same one without a word exchanged,
/// keys spread evenly over the set, and a node leaving moves only its own keys.
pub fn rendezvous(key: &[u8], own: PeerId, others: &[PeerId]) -> PeerId {
    others
        .iter()
        .copied()
        .chain([own])
        .max_by_key(|node| score(node, key))
        .unwrap_or(own)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_member_that_keeps_failing_is_no_longer_counted_on() {
        let holder = PeerId::random();
        let root = Cid::default();
        let swarm = Swarm::new(root, vec![holder]);
        let (member, other) = (PeerId::random(), PeerId::random());
        swarm.add_member(holder);
        swarm.add_member(member);
        swarm.add_member(other);
        swarm.add_member(member);
        assert_eq!(
            swarm.members(),
            vec![member, other],
            "holders are not members"
        );
        for _ in 0..MISSES {
            swarm.0.missed(member);
        }
        assert_eq!(swarm.members(), vec![other]);
        assert!(swarm.0.has_member(&member), "it may still ask this node");
    }

    #[test]
    fn every_node_picks_the_same_one_and_keys_spread() {
        let nodes: Vec<PeerId> = (0..4).map(|_| PeerId::random()).collect();
        let mut picked = std::collections::HashSet::new();
        for i in 0..64u8 {
            let choices: Vec<PeerId> = (0..nodes.len())
                .map(|me| {
                    let others: Vec<PeerId> =
                        nodes.iter().copied().filter(|n| *n != nodes[me]).collect();
                    rendezvous(&[i; 32], nodes[me], &others)
                })
                .collect();
            assert!(choices.iter().all(|c| *c == choices[0]));
            picked.insert(choices[0]);
        }
        assert_eq!(picked.len(), nodes.len(), "64 keys land on every node");
    }
}
