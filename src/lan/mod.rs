//! The old program's LAN protocol, both ways (`--mode lan` and `both`): requests by broadcast
//! or unicast on the UDP port (the HTTP port's number, 12304 by default), unicast answers
//! naming an HTTP server, and that server's `/local/` routes. Peerix nodes find each other by
//! mDNS and the index protocol; this is for the machines still running the old program.
//!
//! - [`receiver`]: answers requests for shared paths (only those, only to local subnets and
//!   extra hosts, rate-limited per source) and hands answers to the queries in flight.
//! - [`query`]: asks for a path no Peerix node holds, by broadcast only while an old peer was
//!   heard on the link lately, and by unicast to the extra hosts that are no Peerix node.
//! - [`routes`]: the `/local/` routes old peers fetch from.
//! - [`old_peer_http`]: fetching from an old peer that answered.

mod extra_hosts;
mod in_flight;
mod networks;
pub mod old_peer_http;
mod old_peers;
mod peerix_hosts;
mod query;
mod receiver;
pub mod routes;

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use peerix_http::StoreHash;
use peerix_node::NodeHandle;
use serde::Serialize;
use thiserror::Error;
use tokio::net::UdpSocket;

pub use extra_hosts::{ExtraHost, ExtraHostError};
pub use old_peer_http::{NarLocation, OldPeerNarinfo};

use crate::rate_limit::{Buckets, RateLimit};
use crate::store::LocalStore;
use extra_hosts::ExtraHosts;
use in_flight::InFlight;
use networks::LocalNetworks;
use old_peers::OldPeers;
use peerix_hosts::PeerixHosts;

/// Answers sent to one source at most: a few Nix builds' worth of misses.
const REPLIES_PER_SOURCE: RateLimit = RateLimit {
    per_second: 50.0,
    burst: 200.0,
};
/// Answers sent in all, whatever the sources claim to be.
const REPLIES_IN_ALL: RateLimit = RateLimit {
    per_second: 500.0,
    burst: 1000.0,
};
const SOURCES_TRACKED: usize = 4096;
/// A query no one answered is not sent again for this long: Nix asks again for the same paths.
const MISS_REMEMBERED: Duration = Duration::from_secs(30);
const MISSES: usize = 1 << 14;

#[derive(Debug, Error)]
pub enum LanError {
    #[error("cannot listen on UDP {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

pub struct LanConfig {
    /// The UDP port: requests are sent to it and answered from it.
    pub udp_port: u16,
    /// The port of the `/local/` routes, named in answers.
    pub http_port: u16,
    /// How long a query waits for an answer (`--timeout`).
    pub timeout: Duration,
    /// Whether queries may be broadcast (not with `--disable-broadcast` or `--offline`).
    pub broadcast: bool,
    pub extra_hosts: Vec<ExtraHost>,
}

/// What `/status` tells of the LAN protocol.
#[derive(Default)]
struct Counters {
    requests_answered: AtomicU64,
    requests_unanswered: AtomicU64,
    requests_limited: AtomicU64,
    queries: AtomicU64,
    queries_answered: AtomicU64,
    answers_refused: AtomicU64,
    probes: AtomicU64,
}

#[derive(Serialize)]
pub struct LanStatus {
    pub udp_port: u16,
    pub http_port: u16,
    pub timeout_ms: u64,
    pub broadcast: bool,
    pub old_peers_heard: Vec<String>,
    pub extra_hosts: Vec<String>,
    pub requests_answered: u64,
    pub requests_unanswered: u64,
    pub requests_rate_limited: u64,
    pub queries: u64,
    pub queries_answered: u64,
    pub answers_refused: u64,
    pub probes: u64,
}

pub struct Lan {
    socket: UdpSocket,
    config: LanConfig,
    store: Arc<LocalStore>,
    networks: LocalNetworks,
    old_peers: OldPeers,
    peerix_hosts: PeerixHosts,
    extra_hosts: ExtraHosts,
    in_flight: InFlight,
    misses: Mutex<HashMap<StoreHash, Instant>>,
    per_source: Buckets<std::net::IpAddr>,
    in_all: Buckets<()>,
    counters: Counters,
}

impl Lan {
    /// Binds the UDP port and starts answering, on the current runtime; with a node, tells
    /// Peerix nodes from old peers by its connections and dials the extra hosts over libp2p too.
    pub fn start(
        config: LanConfig,
        store: Arc<LocalStore>,
        node: Option<NodeHandle>,
    ) -> Result<Arc<Self>, LanError> {
        let addr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, config.udp_port));
        let bind = || {
            let socket = std::net::UdpSocket::bind(addr)?;
            socket.set_broadcast(true)?;
            socket.set_nonblocking(true)?;
            UdpSocket::from_std(socket)
        };
        let socket = bind().map_err(|source| LanError::Bind { addr, source })?;
        let extra_hosts = ExtraHosts::new(config.extra_hosts.clone(), config.udp_port);
        let lan = Arc::new(Self {
            socket,
            config,
            store,
            networks: LocalNetworks::default(),
            old_peers: OldPeers::default(),
            peerix_hosts: PeerixHosts::default(),
            extra_hosts,
            in_flight: InFlight::default(),
            misses: Mutex::new(HashMap::new()),
            per_source: Buckets::new(REPLIES_PER_SOURCE, SOURCES_TRACKED),
            in_all: Buckets::new(REPLIES_IN_ALL, 1),
            counters: Counters::default(),
        });
        tokio::spawn(receiver::receive(lan.clone()));
        tokio::spawn(peerix_hosts::keep_up(lan.clone(), node));
        Ok(lan)
    }

    /// The port of the `/local/` routes.
    pub fn http_port(&self) -> u16 {
        self.config.http_port
    }

    /// Whether `ip` may use the `/local/` routes: a local subnet or an extra host.
    pub fn may_fetch(&self, ip: std::net::IpAddr) -> bool {
        self.networks.now().is_local(ip) || self.extra_hosts.contains_ip(ip)
    }

    pub fn status(&self) -> LanStatus {
        let count = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let c = &self.counters;
        LanStatus {
            udp_port: self.config.udp_port,
            http_port: self.config.http_port,
            timeout_ms: u64::try_from(self.config.timeout.as_millis()).unwrap_or(u64::MAX),
            broadcast: self.config.broadcast,
            old_peers_heard: self
                .old_peers
                .recent(Instant::now())
                .iter()
                .filter(|ip| !self.peerix_hosts.contains(**ip))
                .map(ToString::to_string)
                .collect(),
            extra_hosts: self
                .extra_hosts
                .addrs()
                .iter()
                .map(ToString::to_string)
                .collect(),
            requests_answered: count(&c.requests_answered),
            requests_unanswered: count(&c.requests_unanswered),
            requests_rate_limited: count(&c.requests_limited),
            queries: count(&c.queries),
            queries_answered: count(&c.queries_answered),
            answers_refused: count(&c.answers_refused),
            probes: count(&c.probes),
        }
    }
}
