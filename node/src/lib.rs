//! The embedded IPFS-compatible libp2p node: Bitswap, Kademlia, mDNS, relay, DCUtR, AutoNAT and
//! UnixFS content addressing. It knows nothing about Nix.
//!
//! [`start`] builds the swarm and hands it to one task that owns it; the [`NodeHandle`] it returns
//! talks to that task through a channel.
#![forbid(unsafe_code)]

mod app_streams;
mod behaviour;
pub mod bitswap;
pub mod block;
mod blocks;
mod config;
mod connections;
mod direct_only;
mod error;
mod event_loop;
mod fetch;
mod foreign_identity;
mod identity;
mod multiplex;
mod nat;
mod network;
mod protobuf;
mod reservations;
mod secure;
mod start;
mod status;
mod storage;
mod swarm;
mod tcp_dials;
pub mod traffic;
mod traffic_stop;
pub mod unixfs;

use std::collections::{HashMap, HashSet};
use std::io::{self, Read};
use std::path::Path;
use std::sync::Arc;

use cid::Cid;

use libp2p::kad;
use tokio::sync::{broadcast, mpsc, oneshot};

pub use app_streams::InboundStream;
pub use bitswap::SwarmStatus;
pub use blocks::{BlockSource, ContentSource, Files, LocalBlocks};
pub use config::{
    BitswapDeadlines, DhtRole, InboundStreamLimits, NodeConfig, RelayLimits, PUBLIC_BOOTSTRAP_PEERS,
};
pub use error::NodeError;
pub use foreign_identity::{parse_foreign_identity, ForeignIdentity, ForeignIdentityError};
pub use identity::{adopt_foreign_identity, Adoption, Identity};
pub use libp2p::multiaddr::Protocol;
pub use libp2p::{Multiaddr, PeerId, Stream, StreamProtocol};
pub use network::network_protocol;
pub use start::{start, start_with};
pub use status::{
    AnnouncementStatus, BandwidthWaits, CapWaits, NodeStatus, PeerEvent, PeerInfo,
    SecuredConnections,
};
pub use storage::Persist;
pub use swarm::{rendezvous, Swarm, MAX_MEMBERS};

use app_streams::{InboundReceiver, StreamOpener};
use bitswap::Bitswap;
use event_loop::Command;
use fetch::Sources;
use network::NetworkTag;
use storage::{Storage, Withdrawal};
use unixfs::CidVersion;

/// Inbound streams of one application protocol, none lost below the caps of
/// [`NodeConfig::inbound_streams`].
pub struct Incoming(InboundReceiver);

impl Incoming {
    /// The next stream and the peer that opened it; `None` once the node stopped. The stream
    /// holds its slot in the caps until it is dropped.
    pub async fn next(&mut self) -> Option<(PeerId, InboundStream)> {
        self.0.recv().await
    }
}

/// Talks to a running node; the node stops when the last handle is dropped.
#[derive(Clone)]
pub struct NodeHandle {
    peer_id: PeerId,
    identity: Identity,
    streams: StreamOpener,
    incoming: Arc<std::sync::Mutex<HashMap<StreamProtocol, InboundReceiver>>>,
    peer_events: broadcast::Sender<PeerEvent>,
    commands: mpsc::Sender<Command>,
    blocks: Arc<LocalBlocks>,
    bitswap: Arc<Bitswap>,
    storage: Arc<Storage>,
    network: Arc<NetworkTag>,
    /// The runtime the node's connections run on.
    runtime: tokio::runtime::Handle,
}

impl NodeHandle {
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// The node's public key in libp2p's protobuf encoding: what its peer id is made of.
    pub fn public_key(&self) -> Vec<u8> {
        self.identity.public_key()
    }

    /// Signs `message` with the node's identity, so that others can tell it wrote it.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, NodeError> {
        self.identity.sign(message)
    }

    /// The node's identity, to sign with apart from the node.
    pub fn identity(&self) -> Identity {
        self.identity.clone()
    }

    /// Runs `task` on the runtime the node's connections run on. A task that reads a stream
    /// is woken for every frame its connection's task hands it: on the same threads that is
    /// a local wake-up rather than a message to another runtime's thread.
    pub fn spawn<F>(&self, task: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.runtime.spawn(task)
    }

    /// The protocol `name` (like `index/1.0.0`) of this node's network id (see
    /// [`network_protocol`]).
    pub fn network_protocol(&self, name: &str) -> StreamProtocol {
        self.network.protocol(name)
    }

    async fn ask<T>(
        &self,
        command: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, NodeError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(command(reply))
            .await
            .map_err(|_| NodeError::Stopped)?;
        answer.await.map_err(|_| NodeError::Stopped)
    }

    pub async fn status(&self) -> Result<NodeStatus, NodeError> {
        self.ask(Command::Status).await
    }

    /// Publishes `path` as a UnixFS file (CIDv1, raw leaves) without copying it, and announces
    /// its root in the DHT (one key per file, never per block; while announcements are paused,
    /// queues it and returns). The file must stay in place for its blocks to be served.
    pub async fn add_file(&self, path: &Path) -> Result<Cid, NodeError> {
        let (blocks, path) = (self.blocks.clone(), path.to_owned());
        let cid = blocking(move || blocks.add_file(&path, CidVersion::V1)).await?;
        self.provide(&cid).await?;
        Ok(cid)
    }

    /// Publishes the content `reader` yields (CIDv1, raw leaves) under the name `source`, which
    /// the node's [`ContentSource`] must be able to read back at any offset; only inner nodes are
    /// stored. The root is queued for announcement; this does not wait for the DHT. With
    /// `Persist::Later` the records reach the disk at the next [`NodeHandle::persist`].
    pub async fn add_content(
        &self,
        source: String,
        reader: impl Read + Send + 'static,
        persist: Persist,
    ) -> Result<Cid, NodeError> {
        let blocks = self.blocks.clone();
        let cid = blocking(move || blocks.import(&source, reader, CidVersion::V1, persist)).await?;
        let key = self.record_provided(&cid, persist).await?;
        self.queue_announcement(key).await?;
        Ok(cid)
    }

    /// Withdraws published items, each a root CID and the source name it was added under: their
    /// keys are no longer announced (the DHT's records lapse) and their blocks no longer served,
    /// except what another item still shares. One durable commit for all of them.
    pub async fn withdraw(&self, items: Vec<(Cid, String)>) -> Result<(), NodeError> {
        let keys: Vec<kad::RecordKey> = items
            .iter()
            .map(|(cid, _)| kad::RecordKey::new(&cid.hash().to_bytes()))
            .collect();
        let storage = self.storage.clone();
        let items: Vec<Withdrawal> = items
            .into_iter()
            .map(|(root, source)| Withdrawal { root, source })
            .collect();
        blocking(move || Ok(storage.withdraw(&items)?)).await?;
        self.commands
            .send(Command::StopProviding(keys))
            .await
            .map_err(|_| NodeError::Stopped)
    }

    /// Queues every provided key for announcement again (see
    /// [`NodeConfig::announce_provided_at_start`]).
    pub async fn announce_provided(&self) -> Result<(), NodeError> {
        self.commands
            .send(Command::AnnounceProvided)
            .await
            .map_err(|_| NodeError::Stopped)
    }

    /// Makes everything added with `Persist::Later` durable, in one commit.
    pub async fn persist(&self) -> Result<(), NodeError> {
        let storage = self.storage.clone();
        blocking(move || Ok(storage.persist()?)).await
    }

    /// A block this node holds (an inner node, or a leaf read back from its source), verified.
    pub async fn block(&self, cid: Cid) -> Result<Option<Vec<u8>>, NodeError> {
        let blocks = self.blocks.clone();
        blocking(move || blocks.block(&cid)).await
    }

    /// Streams the file `cid`, in order: blocks this node holds are read locally, the rest come
    /// from its providers in the DHT, or from the connected peers when the DHT knows none; every
    /// block is verified.
    pub async fn cat(&self, cid: Cid) -> Result<mpsc::Receiver<io::Result<Vec<u8>>>, NodeError> {
        let mut peers: Vec<PeerId> = self.find_providers(&cid).await?.into_iter().collect();
        peers.retain(|p| *p != self.peer_id);
        if peers.is_empty() {
            peers = self
                .status()
                .await?
                .peers
                .into_iter()
                .map(|p| p.peer_id)
                .collect();
        }
        Ok(self.cat_from(cid, peers))
    }

    /// Streams the file `cid` from `peers` (blocks spread over them in turn, starting with the
    /// first); every block is verified and a peer that misbehaves is dropped.
    pub fn cat_from(&self, cid: Cid, peers: Vec<PeerId>) -> mpsc::Receiver<io::Result<Vec<u8>>> {
        fetch::cat(
            &self.runtime,
            self.bitswap.clone(),
            cid,
            Sources::Peers(peers),
        )
    }

    /// Streams the file `swarm` fetches: every block is verified, kept a while for the members
    /// and passed on to those that ask; a peer that sends a wrong block is not asked again.
    pub fn cat_with(&self, swarm: Swarm) -> mpsc::Receiver<io::Result<Vec<u8>>> {
        let sources = Sources::Swarm {
            own: self.peer_id,
            swarm: swarm.clone(),
        };
        fetch::cat(&self.runtime, self.bitswap.clone(), swarm.root(), sources)
    }

    /// What the swarms this node fetches with amount to.
    pub fn swarm_status(&self) -> SwarmStatus {
        self.bitswap.swarm_status()
    }

    /// Announces this node as a provider of `cid`. Records are keyed by the multihash, so CIDv0
    /// and CIDv1 of the same content share providers, as in kubo.
    pub async fn provide(&self, cid: &Cid) -> Result<(), NodeError> {
        let key = self.record_provided(cid, Persist::Now).await?;
        self.ask(|reply| Command::Provide(key, Some(reply)))
            .await?
            .map_err(NodeError::Dht)
    }

    /// Keeps `cid`'s key among the provided ones (announced again after a restart).
    async fn record_provided(
        &self,
        cid: &Cid,
        persist: Persist,
    ) -> Result<kad::RecordKey, NodeError> {
        let key = cid.hash().to_bytes();
        let (storage, stored) = (self.storage.clone(), key.clone());
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        blocking(move || Ok(storage.record_provided(&stored, now, persist)?)).await?;
        Ok(kad::RecordKey::new(&key))
    }

    /// Queues `cid` for announcement (recorded, so announced again after a restart) without
    /// waiting for the DHT: what a bulk publisher wants.
    pub async fn announce(&self, cid: &Cid) -> Result<(), NodeError> {
        let key = self.record_provided(cid, Persist::Now).await?;
        self.queue_announcement(key).await
    }

    async fn queue_announcement(&self, key: kad::RecordKey) -> Result<(), NodeError> {
        self.commands
            .send(Command::Provide(key, None))
            .await
            .map_err(|_| NodeError::Stopped)
    }

    /// Stops (`true`) or resumes (`false`) starting DHT announcements; they queue meanwhile.
    pub async fn pause_announcements(&self, paused: bool) -> Result<(), NodeError> {
        self.commands
            .send(Command::PauseAnnouncements(paused))
            .await
            .map_err(|_| NodeError::Stopped)
    }

    /// Closes every connection to `peer` (it broke a protocol's rules); it may come back.
    /// Stops all peer-to-peer traffic at once (closes every connection and takes or makes no
    /// new one), or lets it start again.
    pub async fn stop_traffic(&self, stopped: bool) -> Result<(), NodeError> {
        self.commands
            .send(Command::StopTraffic(stopped))
            .await
            .map_err(|_| NodeError::Stopped)
    }

    pub async fn disconnect(&self, peer: PeerId) -> Result<(), NodeError> {
        self.commands
            .send(Command::Disconnect(peer))
            .await
            .map_err(|_| NodeError::Stopped)
    }

    pub async fn find_providers(&self, cid: &Cid) -> Result<HashSet<PeerId>, NodeError> {
        let key = kad::RecordKey::new(&cid.hash().to_bytes());
        self.ask(|reply| Command::FindProviders(key, reply)).await
    }

    /// Opens a stream of the application's `protocol` to `peer` (connecting when needed), on
    /// a direct connection; on a relayed one only if [`NodeConfig::allow_relayed_transfers`],
    /// else a peer connected through relays only gives [`NodeError::OnlyRelayed`].
    pub async fn open_stream(
        &self,
        peer: PeerId,
        protocol: StreamProtocol,
    ) -> Result<libp2p::Stream, NodeError> {
        Ok(self.streams.open_stream(peer, protocol).await?)
    }

    /// Inbound streams of `protocol`, one of [`NodeConfig::app_protocols`]; each can be taken
    /// once.
    pub fn accept(&self, protocol: StreamProtocol) -> Result<Incoming, NodeError> {
        self.incoming
            .lock()
            .ok()
            .and_then(|mut incoming| incoming.remove(&protocol))
            .map(Incoming)
            .ok_or_else(|| {
                NodeError::Transport(format!(
                    "{protocol} is not an application protocol, or taken"
                ))
            })
    }

    /// Peers identified and disconnected from now on.
    pub fn peer_events(&self) -> broadcast::Receiver<PeerEvent> {
        self.peer_events.subscribe()
    }

    /// Connects to `peer` at the addresses the DHTs know for it.
    pub async fn dial_peer(&self, peer: PeerId) -> Result<(), NodeError> {
        self.dial_peer_at(peer, Vec::new()).await
    }

    /// Connects to `peer`, trying `addrs` at once (a relayed one too) besides the addresses the
    /// DHTs know for it.
    pub async fn dial_peer_at(&self, peer: PeerId, addrs: Vec<Multiaddr>) -> Result<(), NodeError> {
        self.ask(|reply| Command::DialPeer(peer, addrs, reply))
            .await?
            .map(|_| ())
            .map_err(NodeError::Dial)
    }

    /// Connects to `addr` and returns the peer found there.
    pub async fn dial(&self, addr: Multiaddr) -> Result<PeerId, NodeError> {
        self.ask(|reply| Command::Dial(addr, reply))
            .await?
            .map_err(NodeError::Dial)
    }
}

/// Runs `work` off the async threads (it reads files or the database).
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> Result<T, NodeError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| NodeError::Io(io::Error::other(e)))?
        .map_err(NodeError::Io)
}
