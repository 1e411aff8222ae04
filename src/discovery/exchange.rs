//! The index protocol (`/peerix/index/1.0.0`): each node tells every connected Peerix node which
//! store paths it shares — everything when a stream opens, then the changes — and keeps what
//! others told it in [`Holders`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use peerix_node::{NodeHandle, PeerEvent, PeerId, StreamProtocol};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use super::holders::Holders;
use crate::store::SharedPaths;
use crate::wire::frames::{read_frame, write_frame};
use crate::wire::{IndexUpdate, INDEX_PROTOCOL};

/// Pause before an announcer whose stream broke tries again.
const RESTART_DELAY: Duration = Duration::from_secs(1);

/// Runs the index protocol on `node` until it stops: answers other nodes' announcements and
/// announces `shared` to every Peerix node that connects.
pub fn run(
    node: NodeHandle,
    shared: Arc<SharedPaths>,
    holders: Arc<Holders>,
) -> Result<(), String> {
    let protocol = StreamProtocol::new(INDEX_PROTOCOL);
    let mut incoming = node.accept(protocol.clone()).map_err(|e| e.to_string())?;
    let receiving = holders.clone();
    tokio::spawn(async move {
        while let Some((peer, stream)) = incoming.next().await {
            tokio::spawn(receive(peer, stream, receiving.clone()));
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
                    tracing::warn!(missed, "peer events missed");
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    });
    Ok(())
}

async fn receive(peer: PeerId, mut stream: peerix_node::Stream, holders: Arc<Holders>) {
    holders.reset(peer);
    loop {
        let frame = match read_frame(&mut stream).await {
            Ok(Some(frame)) => frame,
            Ok(None) => return,
            Err(e) => {
                tracing::debug!(%peer, error = %e, "index stream ended");
                return;
            }
        };
        match IndexUpdate::decode(&frame) {
            Ok(update) => holders.apply(peer, update),
            Err(e) => {
                tracing::warn!(%peer, error = %e, "bad index update: forgetting the peer's paths");
                holders.forget(&peer);
                return;
            }
        }
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
    let protocol = StreamProtocol::new(INDEX_PROTOCOL);
    let mut stream = match node.open_stream(peer, protocol).await {
        Ok(stream) => stream,
        Err(e) => {
            tracing::debug!(%peer, error = %e, "cannot open an index stream");
            return;
        }
    };
    for update in IndexUpdate::batches(true, &snapshot) {
        if write_frame(&mut stream, &update.encode()).await.is_err() {
            return;
        }
    }
    loop {
        let Ok(updates) = changes.recv().await else {
            // Lagged or closed: a fresh stream (or none) follows.
            return;
        };
        for update in updates.iter() {
            if write_frame(&mut stream, &update.encode()).await.is_err() {
                return;
            }
        }
    }
}
