//! Who shares each store path, in memory. A path's holders are spread all over a table keyed by
//! path, so a full announce of 10,000 paths rewrote some 10,000 pages of it in every
//! transaction; the durable record is kept per peer instead (contiguous, cheap to write) and
//! this index, rebuilt from it at start, answers `find`.

use std::collections::HashMap;

use peerix_http::StoreHash;
use peerix_node::PeerId;

/// Peers are numbered so that each holding costs four bytes: 1,000 peers × 10,000 paths is
/// some 40 MB.
#[derive(Default)]
pub(super) struct HolderIndex {
    slots: HashMap<PeerId, u32>,
    peers: Vec<PeerId>,
    free: Vec<u32>,
    /// Sorted slots of each path's holders.
    holders: HashMap<StoreHash, Vec<u32>>,
}

impl HolderIndex {
    /// True when nobody held `hash` before: it joins the network's membership set.
    pub(super) fn add(&mut self, peer: PeerId, hash: StoreHash) -> bool {
        let slot = self.slot(peer);
        let holders = self.holders.entry(hash).or_default();
        let new = holders.is_empty();
        if let Err(at) = holders.binary_search(&slot) {
            holders.insert(at, slot);
        }
        new
    }

    /// True when `peer` was the last holder of `hash`: it leaves the membership set.
    pub(super) fn remove(&mut self, peer: PeerId, hash: &StoreHash) -> bool {
        let (Some(&slot), Some(holders)) = (self.slots.get(&peer), self.holders.get_mut(hash))
        else {
            return false;
        };
        if let Ok(at) = holders.binary_search(&slot) {
            holders.remove(at);
        }
        if holders.is_empty() {
            self.holders.remove(hash);
            return true;
        }
        false
    }

    pub(super) fn holds(&self, peer: PeerId, hash: &StoreHash) -> bool {
        match (self.slots.get(&peer), self.holders.get(hash)) {
            (Some(slot), Some(holders)) => holders.binary_search(slot).is_ok(),
            _ => false,
        }
    }

    /// Store hashes at least one peer holds.
    pub(super) fn distinct(&self) -> usize {
        self.holders.len()
    }

    pub(super) fn hashes(&self) -> impl Iterator<Item = &StoreHash> {
        self.holders.keys()
    }

    /// Forgets a peer whose holdings were all removed, so its number can serve another.
    pub(super) fn forget(&mut self, peer: PeerId) {
        if let Some(slot) = self.slots.remove(&peer) {
            self.free.push(slot);
        }
    }

    pub(super) fn holders<'a>(&'a self, hash: &StoreHash) -> impl Iterator<Item = PeerId> + 'a {
        self.holders
            .get(hash)
            .into_iter()
            .flatten()
            .filter_map(|&s| self.peers.get(s as usize).copied())
    }

    fn slot(&mut self, peer: PeerId) -> u32 {
        if let Some(&slot) = self.slots.get(&peer) {
            return slot;
        }
        let slot = match self.free.pop() {
            Some(slot) => {
                self.peers[slot as usize] = peer;
                slot
            }
            None => {
                // Bounded by the store's peer limit, far below u32::MAX.
                self.peers.push(peer);
                (self.peers.len() - 1) as u32
            }
        };
        self.slots.insert(peer, slot);
        slot
    }
}
