//! The index protocol (`/peerix/<network tag>/index/1.0.0`, see `wire`): each node tells every connected Peerix node which
//! store paths it shares — everything when a stream opens, then the changes — and keeps what
//! others told it in [`Holders`].
//!
//! Deadlines: an index stream may stay quiet for as long as the store does not change, so the
//! announcer sends an empty update every [`KEEP_ALIVE`] and the receiver closes a stream silent
//! for [`IDLE_DEADLINE`]; a frame once started must arrive within [`FRAME_DEADLINE`], and a
//! frame written must be taken within it too. A peer's holdings end with its index stream and
//! with its connection, even when peer events were lost.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::io::BufReader;
use futures_util::AsyncBufReadExt;
use peerix_node::{NodeError, NodeHandle, PeerEvent, PeerId};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use super::holders::{Holders, RefusedUpdate, StreamTicket};
use crate::store::SharedPaths;
use crate::wire::frames::{read_frame, write_frame};
use crate::wire::{IndexUpdate, INDEX_PROTOCOL};

/// Pause before an announcer whose stream broke tries again.
const RESTART_DELAY: Duration = Duration::from_secs(1);
/// An announcer with nothing to say sends an empty update this often.
const KEEP_ALIVE: Duration = Duration::from_secs(60);
/// A receiving stream silent this long (five keep-alives missed) is closed.
const IDLE_DEADLINE: Duration = Duration::from_secs(300);
/// A frame (at most 1 MiB) must be read or written within this once started.
const FRAME_DEADLINE: Duration = Duration::from_secs(60);

/// Runs the index protocol on `node` until it stops: answers other nodes' announcements and
/// announces `shared` to every Peerix node that connects.
pub fn run(
    node: NodeHandle,
    shared: Arc<SharedPaths>,
    holders: Arc<Holders>,
) -> Result<(), NodeError> {
    let protocol = node.network_protocol(INDEX_PROTOCOL);
    let mut incoming = node.accept(protocol.clone())?;
    let (receiving, for_receivers) = (holders.clone(), node.clone());
    tokio::spawn(async move {
        while let Some((peer, stream)) = incoming.next().await {
            let (holders, node) = (receiving.clone(), for_receivers.clone());
            tokio::spawn(async move {
                if let Some(violation) = receive(peer, stream, &holders).await {
                    tracing::warn!(%peer, error = %violation, "index protocol broken: disconnecting");
                    let _ = node.disconnect(peer).await;
                }
            });
        }
    });
    let mut events = node.peer_events();
    tokio::spawn(async move {
        // One announcer per connected peer; it ends with the connection (a peer that restarts
        // gets a new one, with everything again).
        let mut announcers: HashMap<PeerId, JoinHandle<()>> = HashMap::new();
        loop {
            match events.recv().await {
                Ok(PeerEvent::Identified { peer_id, protocols })
                    if protocols.contains(&protocol) =>
                {
                    // Identify repeats itself: a running announcer stays.
                    if announcers.get(&peer_id).is_some_and(|a| !a.is_finished()) {
                        continue;
                    }
                    let (node, shared) = (node.clone(), shared.clone());
                    let task = tokio::spawn(async move { announce(&node, peer_id, &shared).await });
                    announcers.insert(peer_id, task);
                }
                // Hole punching failures are the node's to report (status, log).
                Ok(PeerEvent::Identified { .. } | PeerEvent::HolePunchFailed { .. }) => {}
                Ok(PeerEvent::Disconnected(peer)) => {
                    holders.forget(&peer);
                    if let Some(task) = announcers.remove(&peer) {
                        task.abort();
                    }
                }
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    // A lost "disconnected" would leave a ghost holder: ask who is connected.
                    tracing::warn!(missed, "peer events missed: reconciling with the node");
                    let Ok(status) = node.status().await else {
                        return;
                    };
                    let connected: std::collections::HashSet<PeerId> =
                        status.peers.iter().map(|p| p.peer_id).collect();
                    holders.retain_connected(|peer| connected.contains(peer));
                    announcers.retain(|peer, task| {
                        let keep = connected.contains(peer);
                        if !keep {
                            task.abort();
                        }
                        keep
                    });
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    });
    Ok(())
}

/// Why a receiving index stream was cut off with its peer.
#[derive(Debug, thiserror::Error)]
enum Violation {
    #[error("bad index update: {0}")]
    Malformed(#[from] crate::wire::WireError),
    #[error(transparent)]
    Refused(RefusedUpdate),
    #[error("frame: {0}")]
    Frame(std::io::Error),
    #[error("a frame took longer than {FRAME_DEADLINE:?}")]
    SlowFrame,
}

/// Takes `peer`'s announcements from `stream` into `holders` until the stream ends; the set it
/// filled ends with it. Returns the violation that ended it, if one did.
async fn receive(
    peer: PeerId,
    stream: peerix_node::InboundStream,
    holders: &Holders,
) -> Option<Violation> {
    let ticket = holders.start(peer)?;
    let outcome = receive_updates(peer, stream, holders, ticket).await;
    holders.end(peer, ticket);
    match outcome {
        Err(Violation::Refused(RefusedUpdate::Full | RefusedUpdate::Superseded)) => None,
        Err(violation) => Some(violation),
        Ok(()) => None,
    }
}

async fn receive_updates(
    peer: PeerId,
    stream: peerix_node::InboundStream,
    holders: &Holders,
    ticket: StreamTicket,
) -> Result<(), Violation> {
    let mut stream = BufReader::new(stream);
    loop {
        // Waiting for a frame to begin may take long; the frame itself may not.
        match tokio::time::timeout(IDLE_DEADLINE, stream.fill_buf()).await {
            Ok(Ok([])) => return Ok(()),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "index stream ended");
                return Ok(());
            }
            Err(_) => {
                tracing::debug!(%peer, "index stream idle: closing it");
                return Ok(());
            }
        }
        let frame = match tokio::time::timeout(FRAME_DEADLINE, read_frame(&mut stream)).await {
            Ok(Ok(Some(frame))) => frame,
            Ok(Ok(None)) => return Ok(()),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::InvalidData => {
                return Err(Violation::Frame(e))
            }
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "index stream ended");
                return Ok(());
            }
            Err(_) => return Err(Violation::SlowFrame),
        };
        let update = IndexUpdate::decode(&frame)?;
        holders
            .apply(peer, ticket, update)
            .map_err(Violation::Refused)?;
    }
}

/// Sends `peer` everything this node holds, then every change, for as long as it is connected:
/// a broken stream (the peer restarted, say) or falling too far behind starts over on a fresh
/// stream with everything again.
async fn announce(node: &NodeHandle, peer: PeerId, shared: &SharedPaths) {
    loop {
        announce_once(node, peer, shared).await;
        tokio::time::sleep(RESTART_DELAY).await;
        let connected = node
            .status()
            .await
            .is_ok_and(|s| s.peers.iter().any(|p| p.peer_id == peer));
        if !connected {
            return;
        }
    }
}

/// One index stream to `peer`, until it breaks or falls behind.
async fn announce_once(node: &NodeHandle, peer: PeerId, shared: &SharedPaths) {
    let mut changes = shared.changes();
    let snapshot = shared.snapshot();
    let protocol = node.network_protocol(INDEX_PROTOCOL);
    let mut stream = match node.open_stream(peer, protocol).await {
        Ok(stream) => stream,
        Err(e) => {
            tracing::debug!(%peer, error = %e, "cannot open an index stream");
            return;
        }
    };
    let keep_alive = IndexUpdate::Add(Vec::new());
    let mut first = IndexUpdate::batches(true, &snapshot);
    // Even a node that holds nothing says so at once: the peer counts it a member of the
    // network from then on (the stream reaches it only with its first frame).
    if first.is_empty() {
        first.push(keep_alive.clone());
    }
    for update in first {
        if !send(&mut stream, &update).await {
            return;
        }
    }
    loop {
        let updates = match tokio::time::timeout(KEEP_ALIVE, changes.recv()).await {
            Ok(Ok(updates)) => updates,
            // Lagged or closed: a fresh stream (or none) follows.
            Ok(Err(_)) => return,
            Err(_) => Arc::new(vec![keep_alive.clone()]),
        };
        for update in updates.iter() {
            if !send(&mut stream, update).await {
                return;
            }
        }
    }
}

/// Writes one update; false when the stream broke or the peer did not take it in time.
async fn send(stream: &mut peerix_node::Stream, update: &IndexUpdate) -> bool {
    let frame = update.encode();
    let written = tokio::time::timeout(FRAME_DEADLINE, write_frame(stream, &frame)).await;
    matches!(written, Ok(Ok(())))
}
