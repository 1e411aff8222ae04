//! Starting a node: its storage and identity, the swarm with its transports and behaviour,
//! the listeners, the first dials, Bitswap and the event loop, and the handle that talks to it.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::dial_opts::DialOpts;
use libp2p::swarm::SwarmEvent;
use libp2p::{tcp, Multiaddr, PeerId, StreamProtocol};
use tokio::sync::{broadcast, mpsc};

use crate::app_streams::AppStreams;
use crate::behaviour::{private_kad_protocol, Behaviour};
use crate::bitswap::{self, Bitswap};
use crate::event_loop::{EventLoop, Settings};
use crate::network::NetworkTag;
use crate::secure::Handshakes;
use crate::storage::Storage;
use crate::tcp_dials::DialedFrom;
use crate::traffic::{self, Traffic};
use crate::{
    blocking, identity, ContentSource, Files, LocalBlocks, NodeConfig, NodeError, NodeHandle,
};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How long [`start`] waits for its listeners to report their addresses.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections with no protocol activity are closed after this long.
const IDLE_CONNECTION_TIMEOUT: Duration = Duration::from_secs(120);
/// Peer events kept for a slow subscriber before it misses some.
const PEER_EVENTS: usize = 256;
/// Peers from the peer book dialled at start, most recently seen first.
const REDIALLED_PEERS: usize = 16;

/// Starts a node whose added content lives in files; returns once every listen address is bound.
pub async fn start(config: NodeConfig) -> Result<NodeHandle, NodeError> {
    start_with(config, Arc::new(Files)).await
}

/// Starts a node that reads the leaves of added content back through `content`.
pub async fn start_with(
    config: NodeConfig,
    content: Arc<dyn ContentSource>,
) -> Result<NodeHandle, NodeError> {
    std::fs::create_dir_all(&config.state_dir)?;
    let db_path = config.state_dir.join("node.redb");
    let storage = Arc::new(blocking(move || Ok(Storage::open(&db_path)?)).await?);
    let keypair = identity::load_or_create(&config.identity_file)?;
    let relays = relay_peers(&config.relay_servers)?;
    let bitswap_protocol = StreamProtocol::new(bitswap::PROTOCOL);
    let mut protocols = vec![bitswap_protocol.clone()];
    protocols.extend(config.app_protocols.iter().cloned());
    let (app_streams, mut receivers, streams) = AppStreams::new(
        protocols,
        config.allow_relayed_transfers,
        config.inbound_streams,
    );
    let bitswap_streams = receivers
        .remove(&bitswap_protocol)
        .ok_or_else(|| NodeError::Transport("no Bitswap receiver".to_owned()))?;
    let mut app_streams = Some(app_streams);
    let transport_error = |e: &dyn std::fmt::Display| NodeError::Transport(e.to_string());
    let traffic = Traffic::new(config.bandwidth_limit);
    let mut relay_client = None;
    let dialed_from = DialedFrom::default();
    let handshakes = Arc::new(Handshakes::default());
    let identity = identity::Identity(Arc::new(keypair.clone()));
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_other_transport(|key| {
            // Dials reuse the listening port (`PortUse::Reuse`, libp2p's default), so peers
            // observe the port a hole-punching peer must dial (DCUtR relies on it).
            let tcp_config = tcp::Config::default().nodelay(true);
            let (transport, relay) = traffic::build_transport(
                key,
                tcp_config,
                config.quic,
                &traffic,
                dialed_from.clone(),
                handshakes.clone(),
            )?;
            relay_client = Some(relay);
            Ok::<_, BoxError>(transport)
        })
        .map_err(|e| transport_error(&e))?
        .with_behaviour(|key| {
            let app_streams = app_streams.take().ok_or("behaviour built twice")?;
            let relay_client = relay_client.take().ok_or("behaviour built twice")?;
            Behaviour::new(key, relay_client, &config, app_streams).map_err(BoxError::from)
        })
        .map_err(|e| transport_error(&e))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(IDLE_CONNECTION_TIMEOUT))
        .build();

    for addr in &config.listen_addrs {
        swarm
            .listen_on(addr.clone())
            .map_err(|e| NodeError::Listen {
                addr: addr.clone(),
                reason: e.to_string(),
            })?;
    }
    wait_for_listeners(&mut swarm, config.listen_addrs.len()).await?;
    for addr in &config.announce_addrs {
        swarm.add_external_address(addr.clone());
    }
    // Once each: a relay that is also a bootstrap peer dialled twice would make the second
    // dial leave from a fresh port (the socket pair from the listening port exists).
    let mut first_contacts: Vec<&Multiaddr> = Vec::new();
    for addr in config.bootstrap_peers.iter().chain(&config.relay_servers) {
        if first_contacts.contains(&addr) {
            continue;
        }
        first_contacts.push(addr);
        if let Err(e) = swarm.dial(addr.clone()) {
            tracing::warn!(%addr, error = %e, "cannot dial bootstrap peer");
        }
    }
    if config.redial_known_peers {
        for peer in storage.known_peers(REDIALLED_PEERS)? {
            let opts = DialOpts::peer_id(peer.peer_id)
                .addresses(peer.addrs)
                .build();
            if let Err(e) = swarm.dial(opts) {
                tracing::debug!(peer = %peer.peer_id, error = %e, "cannot dial known peer");
            }
        }
    }

    let peer_id = *swarm.local_peer_id();
    let blocks = Arc::new(LocalBlocks::new(storage.clone(), content));
    let bitswap = Bitswap::start(
        streams.clone(),
        blocks.clone(),
        bitswap_streams,
        config.bitswap_deadlines,
    );
    let (commands, receiver) = mpsc::channel(64);
    let (peer_events, _) = broadcast::channel(PEER_EVENTS);
    let settings = Settings {
        private_kad: private_kad_protocol(&config.network_id),
        announce_rate: config.announce_rate,
        relays,
        announce_provided_at_start: config.announce_provided_at_start,
        public_dht_role: config.public_dht_role,
        dialed_from,
        handshakes,
    };
    let event_loop = EventLoop::new(
        swarm,
        receiver,
        storage.clone(),
        traffic,
        peer_events.clone(),
        settings,
    );
    tokio::spawn(event_loop.run());
    Ok(NodeHandle {
        peer_id,
        identity,
        streams,
        incoming: Arc::new(std::sync::Mutex::new(receivers)),
        peer_events,
        commands,
        blocks,
        bitswap,
        storage,
        network: Arc::new(NetworkTag::of(&config.network_id)),
        runtime: tokio::runtime::Handle::current(),
    })
}

/// Each relay's peer id with its address, which must end in `/p2p/<peer id>`.
fn relay_peers(relays: &[Multiaddr]) -> Result<Vec<(PeerId, Multiaddr)>, NodeError> {
    relays
        .iter()
        .map(|addr| match addr.iter().last() {
            Some(Protocol::P2p(peer)) => Ok((peer, addr.clone())),
            _ => Err(NodeError::InvalidRelay(addr.clone())),
        })
        .collect()
}

/// Drives the swarm until `count` listeners have an address (or one failed).
async fn wait_for_listeners(
    swarm: &mut libp2p::Swarm<Behaviour>,
    count: usize,
) -> Result<(), NodeError> {
    let mut ready = std::collections::HashSet::new();
    let deadline = tokio::time::sleep(LISTEN_TIMEOUT);
    tokio::pin!(deadline);
    while ready.len() < count {
        tokio::select! {
            event = swarm.select_next_some() => match event {
                SwarmEvent::NewListenAddr { listener_id, .. } => {
                    ready.insert(listener_id);
                }
                SwarmEvent::ListenerError { error, .. } | SwarmEvent::ListenerClosed { reason: Err(error), .. } => {
                    return Err(NodeError::Transport(error.to_string()));
                }
                _ => {}
            },
            () = &mut deadline => return Err(NodeError::Transport("listeners did not start".to_owned())),
        }
    }
    Ok(())
}
