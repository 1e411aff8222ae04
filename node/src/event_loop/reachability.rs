//! The event loop's share of NAT traversal: AutoNAT verdicts, observed addresses, relay
//! reservations and hole punching.

use libp2p::swarm::ConnectionId;
use libp2p::{autonat, dcutr, relay, Multiaddr, PeerId};

use super::EventLoop;
use crate::behaviour::{public_dht_mode, BehaviourEvent};
use crate::connections::is_relayed;
use crate::PeerEvent;

impl EventLoop {
    /// Behaviour events about reachability; the others are not looked at.
    pub(super) fn on_reachability_event(&mut self, event: BehaviourEvent) {
        match event {
            BehaviourEvent::Autonat(autonat::Event::StatusChanged { new, .. }) => {
                tracing::debug!(status = ?new, "AutoNAT v1");
                self.nat.on_v1(&new);
                self.on_nat_change();
            }
            BehaviourEvent::AutonatClient(autonat::v2::client::Event {
                tested_addr,
                server,
                result,
                ..
            }) => {
                match &result {
                    Ok(()) => tracing::debug!(%tested_addr, %server, "AutoNAT v2: reachable"),
                    Err(e) => {
                        tracing::debug!(%tested_addr, %server, error = %e, "AutoNAT v2: not reachable");
                    }
                }
                self.nat.on_v2(tested_addr, result.is_ok());
                self.on_nat_change();
            }
            BehaviourEvent::AutonatServer(autonat::v2::server::Event {
                tested_addr,
                client,
                result,
                ..
            }) => {
                tracing::debug!(%tested_addr, %client, ok = result.is_ok(), "AutoNAT v2 dial-back");
            }
            BehaviourEvent::RelayClient(relay::client::Event::ReservationReqAccepted {
                relay_peer_id,
                renewal,
                ..
            }) => self.reservations.on_accepted(relay_peer_id, renewal),
            BehaviourEvent::RelayClient(event) => tracing::debug!(?event, "relay client"),
            BehaviourEvent::RelayServer(event) => tracing::debug!(?event, "relay service"),
            BehaviourEvent::Dcutr(dcutr::Event {
                remote_peer_id,
                result,
            }) => self.on_hole_punch(remote_peer_id, result),
            _ => {}
        }
    }

    fn on_hole_punch(&mut self, peer: PeerId, result: Result<ConnectionId, dcutr::Error>) {
        let mapping = self.nat.mapping();
        match result {
            Ok(_) => {
                tracing::info!(%peer, nat_mapping = %mapping, "hole punching succeeded");
                self.punch_retries.forget(&peer);
            }
            // The other side's attempt may have connected us meanwhile.
            Err(e) if self.connections.has_direct(&peer) => {
                tracing::debug!(%peer, error = %e, "hole punching failed, but a direct connection exists");
            }
            Err(e) => {
                tracing::info!(%peer, nat_mapping = %mapping, error = %e, "hole punching failed");
                self.punch_retries.on_failed(peer);
                let _ = self.peer_events.send(PeerEvent::HolePunchFailed {
                    peer_id: peer,
                    error: e.to_string(),
                });
            }
        }
    }

    /// `peer` told us the address it sees our connection `connection` come from.
    pub(super) fn observed(
        &mut self,
        peer: PeerId,
        connection: ConnectionId,
        observed: &Multiaddr,
    ) {
        let port = self
            .connections
            .reused_port(&connection, self.swarm.listeners());
        if let Some(port) = port {
            self.nat.observe(peer, port, observed);
            self.nat.report();
        }
    }

    fn on_nat_change(&mut self) {
        self.nat.report();
        self.maintain_reservations();
    }

    /// Serves the public DHT while the node has a confirmed external address that is not a
    /// relay's, and is only its client otherwise (unless its role is fixed).
    pub(super) fn set_public_dht_mode(&mut self) {
        let direct = self.swarm.external_addresses().any(|a| !is_relayed(a));
        let mode = public_dht_mode(self.public_dht_role, direct);
        if let Some(public) = self.swarm.behaviour_mut().public_kad.as_mut() {
            if public.mode() != mode {
                tracing::info!(?mode, "public DHT");
                public.set_mode(Some(mode));
            }
        }
    }

    pub(super) fn maintain_reservations(&mut self) {
        self.reservations
            .maintain(&mut self.swarm, self.nat.reachability());
    }
}
