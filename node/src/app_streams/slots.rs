//! Slots for live inbound streams of the node's own protocols: a peer may hold a few hundred at
//! once, all peers together a few thousand. A slot is taken when a stream is negotiated and
//! travels with it ([`InboundStream`](super::InboundStream)) until the service that took the
//! stream drops it, so the count stays exact however the stream ends.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use libp2p::PeerId;

use crate::config::InboundStreamLimits;

/// Live streams, per peer and in all.
#[derive(Default)]
struct Counts {
    total: usize,
    /// Only peers holding at least one slot, so the map is bounded by the global cap.
    per_peer: HashMap<PeerId, usize>,
}

pub struct Slots {
    limits: InboundStreamLimits,
    counts: Mutex<Counts>,
}

impl Slots {
    pub fn new(limits: InboundStreamLimits) -> Arc<Self> {
        Arc::new(Self {
            limits,
            counts: Mutex::new(Counts::default()),
        })
    }

    /// A slot for one more stream of `peer`, unless it or all peers together hold their cap.
    pub fn take(self: &Arc<Self>, peer: PeerId) -> Option<Slot> {
        let mut counts = self.counts.lock().ok()?;
        let held = counts.per_peer.get(&peer).copied().unwrap_or(0);
        if held >= self.limits.per_peer || counts.total >= self.limits.total {
            return None;
        }
        counts.per_peer.insert(peer, held + 1);
        counts.total += 1;
        Some(Slot {
            slots: self.clone(),
            peer,
        })
    }

    fn release(&self, peer: &PeerId) {
        // A poisoned lock means a panic elsewhere; nothing is left to keep exact then.
        let Ok(mut counts) = self.counts.lock() else {
            return;
        };
        counts.total = counts.total.saturating_sub(1);
        if let Some(held) = counts.per_peer.get_mut(peer) {
            *held -= 1;
            if *held == 0 {
                counts.per_peer.remove(peer);
            }
        }
    }
}

/// One live inbound stream's place in the caps, given back when dropped.
pub struct Slot {
    slots: Arc<Slots>,
    peer: PeerId,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.slots.release(&self.peer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_and_all_peers_are_held_at_their_caps_and_slots_come_back() {
        let slots = Slots::new(InboundStreamLimits {
            per_peer: 2,
            total: 3,
        });
        let (a, b, c) = (PeerId::random(), PeerId::random(), PeerId::random());
        let a1 = slots.take(a).unwrap();
        let a2 = slots.take(a).unwrap();
        assert!(slots.take(a).is_none(), "past the per-peer cap");
        let b1 = slots.take(b).unwrap();
        assert!(slots.take(c).is_none(), "past the global cap");
        drop(a1);
        let c1 = slots.take(c).unwrap();
        drop((a2, b1, c1));
        let counts = slots.counts.lock().unwrap();
        assert_eq!(counts.total, 0);
        assert!(counts.per_peer.is_empty(), "no peer left behind");
    }
}
