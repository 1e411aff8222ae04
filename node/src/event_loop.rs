//! The one task that owns the swarm: it reacts to network events and to commands from handles.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::SwarmEvent;
use libp2p::{identify, kad, mdns, ping, Multiaddr, PeerId, StreamProtocol, Swarm};
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::behaviour::{Behaviour, BehaviourEvent, PUBLIC_KAD};
use crate::connections::{is_relayed, Connections};
use crate::nat::NatState;
use crate::reservations::Reservations;
use crate::secure::Handshakes;
use crate::storage::{KnownPeer, Storage};
use crate::tcp_dials::DialedFrom;
use crate::traffic::Traffic;
use crate::DhtRole;
use crate::{AnnouncementStatus, NodeStatus, PeerEvent};

mod announcements;
mod dials;
mod lookups;
mod neighbours;
mod punch_retries;
mod reachability;

use announcements::{tick, Dht, PendingQuery, ProvideReply};
use dials::Dials;
use lookups::Lookups;
use neighbours::Neighbours;
use punch_retries::PunchRetries;

/// Provider records live 48 h in the DHT; every provided key is announced again this often.
const REANNOUNCE_INTERVAL: Duration = Duration::from_secs(12 * 60 * 60);
/// Peers met are written to the peer book this often, in one transaction.
const PEER_BOOK_FLUSH: Duration = Duration::from_secs(30);
/// Relay reservations that ended or failed are looked after this often.
const RESERVATION_CHECK: Duration = Duration::from_secs(20);
/// Hole punches to retry and neighbours to dial are looked for this often.
const RETRY_CHECK: Duration = Duration::from_millis(500);

pub enum Command {
    Status(oneshot::Sender<NodeStatus>),
    Dial(Multiaddr, oneshot::Sender<Result<PeerId, String>>),
    /// Connects to a peer at the addresses given (all at once), those the DHTs know for it and
    /// where provider lookups found it.
    DialPeer(
        PeerId,
        Vec<Multiaddr>,
        oneshot::Sender<Result<PeerId, String>>,
    ),
    /// Announces this node as a provider of the key in the DHTs it takes part in; answered once
    /// the private DHT has it.
    Provide(kad::RecordKey, Option<ProvideReply>),
    /// Announces every provided key again (what the periodic re-announcement does).
    AnnounceProvided,
    /// No longer provides these keys: dropped from the queue and from the DHTs' own records.
    StopProviding(Vec<kad::RecordKey>),
    /// Stops (true) or resumes (false) starting announcements; queued ones wait.
    PauseAnnouncements(bool),
    /// Asks every DHT the node takes part in; answered once all have finished.
    FindProviders(kad::RecordKey, oneshot::Sender<HashSet<PeerId>>),
    Disconnect(PeerId),
    StopTraffic(bool),
}

/// What the event loop runs with, from the node's configuration.
pub struct Settings {
    pub private_kad: StreamProtocol,
    pub announce_rate: Option<f64>,
    /// Relays to hold reservations on, with their addresses (ending in `/p2p/<relay>`).
    pub relays: Vec<(PeerId, Multiaddr)>,
    pub announce_provided_at_start: bool,
    pub public_dht_role: DhtRole,
    /// Where TCP dials really connected from, for NAT observations.
    pub dialed_from: DialedFrom,
    pub handshakes: Arc<Handshakes>,
}

pub struct EventLoop {
    swarm: Swarm<Behaviour>,
    commands: mpsc::Receiver<Command>,
    dials: Dials,
    punch_retries: PunchRetries,
    neighbours: Neighbours,
    nat: NatState,
    reservations: Reservations,
    private_kad: StreamProtocol,
    connections: Connections,
    queries: HashMap<(Dht, kad::QueryId), PendingQuery>,
    lookups: Lookups,
    announce_queue: VecDeque<(kad::RecordKey, Option<ProvideReply>)>,
    announcing: usize,
    /// Announcements finished since start.
    announced: u64,
    storage: Arc<Storage>,
    /// Peers seen since the peer book was last written.
    met: HashMap<PeerId, KnownPeer>,
    traffic: Arc<Traffic>,
    handshakes: Arc<Handshakes>,
    peer_events: broadcast::Sender<PeerEvent>,
    /// Announcements started per second at most (`None`: only the concurrency limit applies).
    announce_rate: Option<f64>,
    paused: bool,
    announce_provided_at_start: bool,
    public_dht_role: DhtRole,
}

impl EventLoop {
    pub fn new(
        swarm: Swarm<Behaviour>,
        commands: mpsc::Receiver<Command>,
        storage: Arc<Storage>,
        traffic: Arc<Traffic>,
        peer_events: broadcast::Sender<PeerEvent>,
        settings: Settings,
    ) -> Self {
        let Settings {
            private_kad,
            announce_rate,
            relays,
            announce_provided_at_start,
            public_dht_role,
            dialed_from,
            handshakes,
        } = settings;
        Self {
            swarm,
            commands,
            dials: Dials::default(),
            punch_retries: PunchRetries::default(),
            neighbours: Neighbours::default(),
            nat: NatState::new(),
            reservations: Reservations::new(relays),
            private_kad,
            connections: Connections::new(dialed_from),
            queries: HashMap::new(),
            lookups: Lookups::default(),
            announce_queue: VecDeque::new(),
            announcing: 0,
            announced: 0,
            storage,
            met: HashMap::new(),
            traffic,
            handshakes,
            peer_events,
            announce_rate: announce_rate.filter(|r| r.is_finite() && *r > 0.0),
            paused: false,
            announce_provided_at_start,
            public_dht_role,
        }
    }

    /// Runs until every handle is dropped.
    pub async fn run(mut self) {
        // The first tick comes at once: keys provided in earlier runs are announced again,
        // unless the application asks for that itself once it has withdrawn what it must.
        let mut first = tokio::time::Instant::now();
        if !self.announce_provided_at_start {
            first += REANNOUNCE_INTERVAL;
        }
        let mut reannounce = tokio::time::interval_at(first, REANNOUNCE_INTERVAL);
        let mut flush = tokio::time::interval(PEER_BOOK_FLUSH);
        // The first tick comes at once: reservations are asked for at start.
        let mut reservations = tokio::time::interval(RESERVATION_CHECK);
        let mut retries = tokio::time::interval(RETRY_CHECK);
        let mut pace = self.announce_rate.map(|rate| {
            let period = (1.0 / rate).clamp(0.001, 3600.0);
            let mut pace = tokio::time::interval(Duration::from_secs_f64(period));
            // A busy moment must not be followed by a burst of catch-up announcements.
            pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            pace
        });
        loop {
            tokio::select! {
                () = tick(&mut pace) => self.start_paced_announcement(),
                event = self.swarm.select_next_some() => self.on_event(event),
                command = self.commands.recv() => match command {
                    Some(command) => self.on_command(command),
                    None => break,
                },
                _ = reannounce.tick() => self.reannounce(),
                _ = flush.tick() => self.flush_peer_book(),
                _ = reservations.tick() => self.maintain_reservations(),
                _ = retries.tick() => {
                    self.retry_hole_punches();
                    self.dial_neighbours();
                }
            }
        }
        self.flush_peer_book();
    }

    fn flush_peer_book(&mut self) {
        if self.met.is_empty() {
            return;
        }
        let peers: Vec<KnownPeer> = self.met.drain().map(|(_, p)| p).collect();
        let storage = self.storage.clone();
        tokio::task::spawn_blocking(move || {
            if let Err(e) = storage.record_peers(&peers) {
                tracing::warn!(error = %e, "cannot write the peer book");
            }
        });
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Status(reply) => {
                let _ = reply.send(self.status());
            }
            Command::Dial(addr, reply) => match addr.iter().last() {
                Some(Protocol::P2p(peer)) => self.dial_peer(peer, vec![addr], false, reply),
                _ => self.dial_unknown_peer(addr, reply),
            },
            Command::DialPeer(peer, mut addrs, reply) => {
                addrs.extend(self.lookups.addresses_of(&peer));
                self.dial_peer(peer, addrs, true, reply);
            }
            Command::Provide(key, reply) => {
                // Paused announcements wait for a resume that may never come: the key is
                // recorded and queued, so whoever asked is answered now.
                let reply = match reply {
                    Some(reply) if self.paused => {
                        let _ = reply.send(Ok(()));
                        None
                    }
                    reply => reply,
                };
                self.announce_queue.push_back((key, reply));
                self.start_announcements();
            }
            Command::AnnounceProvided => self.reannounce(),
            Command::StopProviding(keys) => self.stop_providing(&keys),
            Command::Disconnect(peer) => {
                let _ = self.swarm.disconnect_peer_id(peer);
            }
            Command::StopTraffic(stopped) => {
                tracing::warn!(stopped, "peer-to-peer traffic stopped by the operator");
                self.swarm.behaviour_mut().stop.stopped = stopped;
                if stopped {
                    let peers: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
                    for peer in peers {
                        let _ = self.swarm.disconnect_peer_id(peer);
                    }
                }
            }
            Command::PauseAnnouncements(paused) => {
                tracing::info!(paused, queued = self.announce_queue.len(), "announcements");
                self.paused = paused;
                self.start_announcements();
            }
            Command::FindProviders(key, reply) => self.find_providers(key, reply),
        }
    }

    fn status(&self) -> NodeStatus {
        let (bytes_in, bytes_out) = self.traffic.total();
        let external_addrs: Vec<Multiaddr> = self.swarm.external_addresses().cloned().collect();
        NodeStatus {
            peer_id: *self.swarm.local_peer_id(),
            listen_addrs: self.swarm.listeners().cloned().collect(),
            relayed_addrs: external_addrs
                .iter()
                .filter(|a| is_relayed(a))
                .cloned()
                .collect(),
            external_addrs,
            peers: self
                .swarm
                .connected_peers()
                .map(|peer| self.connections.peer_info(*peer, &self.traffic))
                .collect(),
            nat_status: self.nat.reachability().to_string(),
            nat_mapping: self.nat.mapping().to_string(),
            bytes_in,
            bytes_out,
            bandwidth_limit: self.traffic.cap(),
            bandwidth_waits: self.traffic.cap_waits(),
            secured: self.handshakes.counts(),
            provided_keys: self.storage.provided_count().unwrap_or_else(|e| {
                tracing::warn!(error = %e, "cannot count provided keys");
                0
            }),
            announcements: AnnouncementStatus {
                queued: self.announce_queue.len(),
                running: self.announcing,
                done: self.announced,
                paused: self.paused,
            },
            traffic_stopped: self.swarm.behaviour().stop.stopped,
        }
    }

    fn on_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                ..
            } => {
                if !endpoint.is_relayed() {
                    self.punch_retries.forget(&peer_id);
                }
                if self
                    .connections
                    .on_established(connection_id, peer_id, endpoint)
                {
                    tracing::info!(peer = %peer_id, "direct connection to a peer met through a relay");
                }
                self.on_dial_established(&connection_id, peer_id);
                self.neighbours.on_connected(&peer_id);
                if self.reservations.on_connected(&peer_id) {
                    self.maintain_reservations();
                }
            }
            SwarmEvent::OutgoingConnectionError {
                connection_id,
                peer_id,
                error,
            } => {
                if let Some(peer) = peer_id {
                    self.reservations.on_dial_failed(&peer);
                    if !self.swarm.is_connected(&peer) {
                        self.neighbours.on_unconnected(&peer);
                    }
                }
                self.on_dial_failed(&connection_id, peer_id, &error.to_string());
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                connection_id,
                num_established,
                ..
            } => {
                self.connections.on_closed(&connection_id);
                if num_established == 0 {
                    self.reservations.on_disconnected(&peer_id);
                    self.punch_retries.on_disconnected(&peer_id);
                    self.neighbours.on_unconnected(&peer_id);
                    let _ = self.peer_events.send(PeerEvent::Disconnected(peer_id));
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::PrivateKad(
                kad::Event::OutboundQueryProgressed {
                    id, result, step, ..
                },
            )) => self.on_query((Dht::Private, id), result, step.last),
            SwarmEvent::Behaviour(BehaviourEvent::PublicKad(
                kad::Event::OutboundQueryProgressed {
                    id, result, step, ..
                },
            )) => self.on_query((Dht::Public, id), result, step.last),
            SwarmEvent::NewListenAddr { address, .. } => {
                tracing::info!(%address, "listening");
            }
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                info,
                connection_id,
            })) => {
                self.learn_addresses(peer_id, &info);
                self.punch_retries
                    .on_identified(peer_id, &info.listen_addrs);
                self.observed(peer_id, connection_id, &info.observed_addr);
                // A relay must be reachable directly to hold a reservation on.
                if !self.connections.is_relayed(&connection_id) {
                    self.reservations
                        .on_identified(peer_id, &info.protocols, &info.listen_addrs);
                    self.maintain_reservations();
                }
                let _ = self.peer_events.send(PeerEvent::Identified {
                    peer_id,
                    protocols: info.protocols,
                });
            }
            SwarmEvent::Behaviour(BehaviourEvent::Ping(ping::Event {
                connection,
                result: Ok(rtt),
                ..
            })) => self.connections.on_rtt(&connection, rtt),
            SwarmEvent::Behaviour(BehaviourEvent::Mdns(mdns::Event::Discovered(found))) => {
                let local = *self.swarm.local_peer_id();
                for (peer_id, addr) in found {
                    tracing::debug!(%peer_id, %addr, "found on the local network");
                    self.neighbours.on_discovered(&local, peer_id, addr);
                }
                self.dial_neighbours();
            }
            SwarmEvent::Behaviour(BehaviourEvent::Mdns(mdns::Event::Expired(gone))) => {
                for (peer_id, addr) in gone {
                    self.neighbours.on_expired(&peer_id, &addr);
                }
            }
            SwarmEvent::ListenerClosed {
                listener_id,
                reason,
                ..
            } => {
                let reason = match reason {
                    Ok(()) => "closed".to_owned(),
                    Err(e) => e.to_string(),
                };
                if self.reservations.on_listener_closed(listener_id, &reason) {
                    self.maintain_reservations();
                }
            }
            SwarmEvent::ExternalAddrConfirmed { address } => {
                tracing::info!(%address, "external address confirmed");
                self.set_public_dht_mode();
            }
            SwarmEvent::ExternalAddrExpired { address } => {
                tracing::info!(%address, "external address expired");
                self.set_public_dht_mode();
            }
            SwarmEvent::Behaviour(event) => self.on_reachability_event(event),
            _ => {}
        }
    }

    /// A peer's listen addresses go into each DHT whose protocol it speaks.
    fn learn_addresses(&mut self, peer_id: PeerId, info: &identify::Info) {
        let last_seen = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.met.insert(
            peer_id,
            KnownPeer {
                peer_id,
                addrs: info.listen_addrs.clone(),
                last_seen,
            },
        );
        let behaviour = self.swarm.behaviour_mut();
        let dhts = [
            (&self.private_kad, Some(&mut behaviour.private_kad)),
            (&PUBLIC_KAD, behaviour.public_kad.as_mut()),
        ];
        for (protocol, kad) in dhts {
            let Some(kad) = kad.filter(|_| info.protocols.contains(protocol)) else {
                continue;
            };
            for addr in &info.listen_addrs {
                kad.add_address(&peer_id, addr.clone());
            }
        }
    }
}
