//! The members of the network that are near: connected directly at a LAN (or VPN) address
//! with a round trip of a LAN's, or every member when the network id was set explicitly. Only
//! they coordinate downloads with this node: never a stranger's home uplink.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use peerix_node::{NodeHandle, PeerId, PeerInfo};

use crate::cidr::on_local_network;
use crate::discovery::Holders;

/// A node reached directly at a LAN (or VPN) address is near unless its round trip, once
/// measured, is longer than this: a LAN's is a few ms, a far VPN member's tens.
const NEAR_RTT: Duration = Duration::from_millis(50);

pub struct NearMembers {
    node: NodeHandle,
    /// The nodes of this network (those that opened an index stream).
    members: Arc<Holders>,
    /// Every member counts as near (`--network-id` set explicitly).
    members_are_near: bool,
}

impl NearMembers {
    pub fn new(node: NodeHandle, members: Arc<Holders>, members_are_near: bool) -> Self {
        Self {
            node,
            members,
            members_are_near,
        }
    }

    /// The near members connected now.
    pub async fn list(&self) -> Vec<PeerId> {
        let members: HashSet<PeerId> = self
            .members
            .per_peer()
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        let peers = self
            .node
            .status()
            .await
            .map(|s| s.peers)
            .unwrap_or_default();
        peers
            .into_iter()
            .filter(|p| members.contains(&p.peer_id) && p.direct)
            .filter(|p| self.members_are_near || near(p))
            .map(|p| p.peer_id)
            .collect()
    }

    pub async fn contains(&self, peer: PeerId) -> bool {
        self.list().await.contains(&peer)
    }
}

fn near(peer: &PeerInfo) -> bool {
    let local = peer.addr.as_ref().is_some_and(on_local_network);
    local && peer.rtt.is_none_or(|rtt| rtt <= NEAR_RTT)
}
