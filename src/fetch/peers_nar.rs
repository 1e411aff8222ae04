//! Where a NAR this machine lacks comes from, and a NAR streamed from the peers that hold it,
//! resumed from the next holder when one stops (and from kubo, by its CID, when none is left),
//! and kept in the NAR cache when it arrived whole.

use std::io;
use std::sync::Arc;

use bytes::Bytes;
use cid::Cid;
use peerix_http::{channel_stream, ByteStream, Nar, NarHash, NarSource, StoreHash};
use peerix_node::{NodeHandle, PeerId};
use tokio::sync::mpsc;

use super::{Remote, CHUNKS_IN_FLIGHT, MULTI_SOURCE_MIN, STRIPED_MIN, STRIPED_RTT, STRIPES};
use crate::fetch::kubo_nar;
use crate::fetch::nar_cache::Filling;
use crate::fetch::peer::{self as fetch, FetchError, NarOutcome, NarProgress};
use crate::fetch::refusals::{Reason, RefusedFrom};
use crate::fetch::source::Source;
use crate::publish::RemoteNar;

/// A NAR read from the peers that hold it.
struct PeersNar {
    remote: Arc<Remote>,
    nar_hash: NarHash,
    /// The store path it is the NAR of.
    path: StoreHash,
    size: u64,
    /// Its CID, when the holders publish it: then it can come from all of them at once.
    cid: Option<Cid>,
    peers: Vec<PeerId>,
    /// Fetched with the near nodes that fetch it too.
    swarm: bool,
}

impl Remote {
    /// What a narinfo answer said of a NAR, and the honest peers holding its path now.
    fn known_nar(&self, nar_hash: &NarHash) -> Option<(RemoteNar, Vec<PeerId>)> {
        let mut nar = self.nars.get(nar_hash)?;
        // A CID that failed a moment ago may still be in the record being rewritten: Nix's
        // retry must not go by it again.
        nar.cid = nar.cid.filter(|cid| !self.cid_failed(*nar_hash, *cid));
        let holders = self.honest(self.holders.holders_of(&nar.path));
        Some((nar, holders))
    }

    /// A NAR this machine lacks, from wherever it can come: the NAR cache, the honest peers
    /// holding its path now, or the LAN's old peer that served its narinfo.
    pub(in crate::fetch) async fn nar(
        self: &Arc<Self>,
        nar_hash: NarHash,
    ) -> Option<(Nar, Source)> {
        if let Some((size, source)) = self.nar_cache.as_ref().and_then(|c| c.get(&nar_hash)) {
            return Some((Nar { size, source }, Source::NarCache));
        }
        // With no holder, kubo may fetch it by its CID.
        let fetchable = |(nar, peers): &(RemoteNar, Vec<PeerId>)| {
            !peers.is_empty() || (nar.cid.is_some() && self.kubo.is_some())
        };
        let Some((nar, peers)) = self.known_nar(&nar_hash).filter(fetchable) else {
            let nar = self.old_peer_nars.get(&nar_hash)?;
            let size = nar.size;
            let source = Box::new(nar);
            return Some((Nar { size, source }, Source::OldPeer));
        };
        let swarm = match self.swarms() {
            Some(swarms) if nar.cid.is_some() && nar.size >= MULTI_SOURCE_MIN => {
                swarms.may_have_company(&peers).await
            }
            _ => false,
        };
        let source = Box::new(PeersNar {
            remote: self.clone(),
            nar_hash,
            path: nar.path,
            size: nar.size,
            cid: nar.cid,
            peers,
            swarm,
        });
        let from = if swarm { Source::Swarm } else { Source::Peer };
        Some((
            Nar {
                size: nar.size,
                source,
            },
            from,
        ))
    }
}

impl NarSource for PeersNar {
    fn stream(self: Box<Self>, start: u64, end: u64) -> ByteStream {
        let (output, chunks) = mpsc::channel(CHUNKS_IN_FLIGHT);
        tokio::spawn(async move {
            let this = *self;
            // Only one reader of a NAR fills the cache; others stream it from the peers.
            let filling = (start == 0 && end == this.size)
                .then_some(this.remote.nar_cache.as_ref())
                .flatten()
                .and_then(|c| c.start(this.nar_hash, this.size));
            match filling {
                Some(filling) => this.fetch_into_cache(filling, &output).await,
                None => this.fetch_to(start, end, &output).await,
            }
        });
        channel_stream(chunks)
    }
}

impl PeersNar {
    async fn fetch_to(&self, start: u64, end: u64, output: &mpsc::Sender<io::Result<Bytes>>) {
        if let Some(error) = self.fetch(start, end, output).await {
            let _ = output.send(Err(io::Error::other(error))).await;
        }
    }

    /// Fetches the whole NAR, copying it into the cache on its way to the reader; it is kept
    /// only if every byte got through, which means it passed the NarHash check.
    async fn fetch_into_cache(&self, filling: Filling, output: &mpsc::Sender<io::Result<Bytes>>) {
        let (inner, mut fetched) = mpsc::channel(CHUNKS_IN_FLIGHT);
        let fetching = async move { self.fetch_to(0, self.size, &inner).await };
        // Owns the receiving end, so that a reader who leaves stops the fetch too.
        let forwarding = async move {
            let (mut filling, mut intact) = (filling, true);
            while let Some(item) = fetched.recv().await {
                match &item {
                    Ok(chunk) => intact = intact && filling.write(chunk).is_ok(),
                    Err(_) => intact = false,
                }
                if output.send(item).await.is_err() {
                    return (false, filling);
                }
            }
            (intact, filling)
        };
        let ((), (intact, filling)) = tokio::join!(fetching, forwarding);
        // Dropped unfinished, a fill leaves nothing behind.
        if intact {
            if let Err(e) = filling.finish() {
                tracing::warn!(nar = %self.nar_hash, error = %e, "cannot keep the NAR in the cache");
            }
        }
    }

    /// Reads the NAR from the holders in turn: one that stops is replaced by the next, which
    /// resumes where it stopped; one that sends wrong bytes ends the response (Nix retries, and
    /// that peer is not asked again); kubo, by the NAR's CID, goes on where the last stopped.
    /// Returns why it failed, if it did.
    async fn fetch(
        &self,
        start: u64,
        end: u64,
        output: &mpsc::Sender<io::Result<Bytes>>,
    ) -> Option<String> {
        let mut progress = NarProgress::new(self.nar_hash, self.size, start, end);
        let mut last = "no peer holds it any more".to_owned();
        if let Some(node) = &self.remote.node {
            let from_peers = self.fetch_from_peers(node, &mut progress, &mut last, output);
            if let Some(done) = from_peers.await {
                return done;
            }
        }
        self.through_kubo(&mut progress, output)
            .await
            .unwrap_or(Some(last))
    }

    /// [`PeersNar::fetch`] from the holders: `Some` once that is the end of it (`None` inside
    /// if it succeeded), `None` if they could not send the rest, which kubo may then resume.
    async fn fetch_from_peers(
        &self,
        node: &NodeHandle,
        progress: &mut NarProgress,
        last: &mut String,
        output: &mpsc::Sender<io::Result<Bytes>>,
    ) -> Option<Option<String>> {
        let remote = &self.remote;
        let (start, end) = (progress.start, progress.end);
        // A large NAR held by several peers comes from all of them at once, block by block, and
        // with the near nodes that fetch it too; if that fails before the reader got anything,
        // the holders are asked one at a time.
        let peers = remote.honest(self.peers.clone());
        let joined = self
            .cid
            .filter(|_| self.swarm)
            .zip(remote.swarms())
            .and_then(|(cid, swarms)| swarms.join(cid, peers.clone()));
        let blocks = match (&joined, self.cid) {
            (Some(joined), Some(cid)) => Some((cid, node.cat_with(joined.swarm()))),
            (None, Some(cid)) if peers.len() > 1 && self.size >= MULTI_SOURCE_MIN => {
                Some((cid, node.cat_from(cid, peers)))
            }
            _ => None,
        };
        if let Some((cid, blocks)) = blocks {
            match fetch::nar_by_cid(blocks, progress, output).await {
                NarOutcome::Complete => return Some(None),
                // The reader may have left because the bytes were wrong (Nix stops at the
                // first that is not a NAR): a CID that gave no verified NAR is not used again.
                outcome @ NarOutcome::Abandoned => {
                    let nar = (self.path, self.nar_hash, cid);
                    remote.forget_cid(nar, &outcome, RefusedFrom::Holders).await;
                    return Some(None);
                }
                outcome if progress.handed_on => {
                    let nar = (self.path, self.nar_hash, cid);
                    remote.forget_cid(nar, &outcome, RefusedFrom::Holders).await;
                    return Some(Some(outcome.to_string()));
                }
                outcome => {
                    let nar = (self.path, self.nar_hash, cid);
                    remote.forget_cid(nar, &outcome, RefusedFrom::Holders).await;
                    tracing::debug!(%cid, reason = %outcome, "Bitswap fetch failed: streaming instead");
                    *progress = NarProgress::new(self.nar_hash, self.size, start, end);
                }
            }
        }
        // Peers that stopped part way: their bytes are in the hash the next one completes.
        let mut stopped = Vec::new();
        for peer in remote.honest(self.peers.clone()) {
            let resumed = progress.offset > 0;
            let whole = !resumed && end == self.size;
            let fetched = if self.size >= STRIPED_MIN && remote.rtt(peer).await >= STRIPED_RTT {
                fetch::nar_striped(node, peer, progress, output, STRIPES).await
            } else {
                fetch::nar(node, peer, progress, output).await
            };
            match fetched {
                NarOutcome::Complete if whole => {
                    remote.report_received(peer, self.path, self.size);
                    return Some(None);
                }
                NarOutcome::Complete => return Some(None),
                // The reader left part way, perhaps at bytes that were no NAR (Nix stops at
                // the first): whoever sent them is asked last for a while.
                NarOutcome::Abandoned => {
                    if progress.handed_on {
                        for sender in stopped.drain(..).chain([peer]) {
                            remote.suspect(sender);
                        }
                    }
                    return Some(None);
                }
                NarOutcome::Interrupted(e) => {
                    tracing::debug!(%peer, offset = progress.offset, error = %e, "NAR source stopped");
                    if progress.offset > 0 {
                        stopped.push(peer);
                    }
                    *last = e.to_string();
                }
                // Whose bytes were wrong is not known: a source that stopped part way may have
                // sent them, to have the honest one that completed the NAR banned. Nobody is
                // banned; those that stopped are asked last for a while.
                NarOutcome::Wrong(e @ FetchError::WrongNarHash { .. }) if resumed => {
                    tracing::warn!(nar = %self.nar_hash, error = %e, ?stopped, "a NAR resumed from another peer hashed wrong");
                    for earlier in stopped.drain(..) {
                        remote.suspect(earlier);
                    }
                    if progress.handed_on {
                        return Some(Some(e.to_string()));
                    }
                    *progress = NarProgress::new(self.nar_hash, self.size, start, end);
                    *last = e.to_string();
                }
                NarOutcome::Wrong(e) => {
                    remote.penalise(peer, &e);
                    let reason = Reason::WrongNar {
                        error: e.to_string(),
                    };
                    remote
                        .refusals
                        .record(self.path, RefusedFrom::Peer(peer), reason);
                    if progress.handed_on {
                        return Some(Some(e.to_string()));
                    }
                    // Nothing reached the reader: start over from the next peer.
                    *progress = NarProgress::new(self.nar_hash, self.size, start, end);
                    *last = e.to_string();
                }
            }
        }
        None
    }

    /// Goes on through kubo by the NAR's CID, if there is a kubo and the CID has not failed:
    /// `None` once the reader has the NAR (or left), else why it failed. A CID that gives no
    /// verified NAR is not used again.
    async fn through_kubo(
        &self,
        progress: &mut NarProgress,
        output: &mpsc::Sender<io::Result<Bytes>>,
    ) -> Option<Option<String>> {
        let remote = &self.remote;
        let kubo = remote.kubo.as_ref()?;
        let cid = self
            .cid
            .filter(|cid| !remote.cid_failed(self.nar_hash, *cid))?;
        let outcome = kubo_nar::nar(kubo, cid, progress, output).await;
        if let NarOutcome::Complete = outcome {
            return Some(None);
        }
        if let NarOutcome::Wrong(e) = &outcome {
            tracing::warn!(%cid, nar = %self.nar_hash, error = %e, "kubo sent a wrong NAR");
        }
        let nar = (self.path, self.nar_hash, cid);
        remote.forget_cid(nar, &outcome, RefusedFrom::Kubo).await;
        match outcome {
            NarOutcome::Abandoned => Some(None),
            outcome => Some(Some(outcome.to_string())),
        }
    }
}
