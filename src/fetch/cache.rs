//! The binary cache Nix talks to: this machine's store first, then the peers that announced a
//! path. A peer's narinfo reaches Nix only when trusted, its NAR only as it hashes correctly.

use std::collections::{HashMap, HashSet};
use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use cid::Cid;
use peerix_http::{
    BinaryCache, ByteStream, CacheError, CacheInfo, Nar, NarHash, NarInfo, NarSource, StoreHash,
};
use peerix_node::{NodeHandle, PeerId};
use tokio::sync::mpsc;

use super::nar_cache::{Filling, NarCache};
use super::nar_log::NarLog;
use super::peer::{self as fetch, FetchError, NarOutcome, NarProgress};
use super::stream_pool::StreamPool;
use super::trust::{upstream_agrees, Trust, Verdict};
use crate::discovery::Holders;
use crate::filter::PathFilter;
use crate::publish::RemoteNar;
use crate::store::LocalStore;

/// How long a peer's trusted narinfo is served again without asking (paths never change; this
/// only bounds how long a path another peer now holds keeps the first answer).
const TRUSTED_NARINFO_TTL: Duration = Duration::from_secs(60);
/// Trusted narinfos remembered at most (about 1 KiB each).
const TRUSTED_NARINFOS: usize = 1 << 14;
/// NARs at least this large are fetched from every holder at once when several hold them.
const MULTI_SOURCE_MIN: u64 = 16 << 20;
/// A NAR at least this large comes over several streams at once from a peer this far away: one
/// stream's window (at most 1 MiB) caps it at about 1 MiB per round trip, 50 MB/s at 20 ms.
const STRIPED_MIN: u64 = 16 << 20;
const STRIPED_RTT: Duration = Duration::from_millis(2);
const STRIPES: usize = 6;
/// Chunks buffered between a peer and the HTTP response.
const CHUNKS_IN_FLIGHT: usize = 4;

pub struct P2pCache {
    local: Arc<LocalStore>,
    remote: Option<Arc<Remote>>,
}

pub struct Remote {
    pub node: NodeHandle,
    pub holders: Arc<Holders>,
    pub trust: Trust,
    pub filter: PathFilter,
    /// NAR hash -> its size and the path it belongs to, filled by narinfo answers and kept
    /// across restarts: Nix caches narinfos and may ask for the NAR long after. Holders are
    /// looked up again then.
    nars: NarLog,
    /// Peers that sent wrong data: never asked again.
    liars: Mutex<HashSet<PeerId>>,
    /// Narinfos that passed the trust check lately, so that a fleet asking for the same paths
    /// does not make every request a round trip and a signature check. Served only while some
    /// peer still announces the path.
    trusted_narinfos: Mutex<HashMap<StoreHash, (Instant, NarInfo)>>,
    /// NARs fetched before, served again without asking (`--cache-size`).
    pub nar_cache: Option<NarCache>,
    narinfo_streams: StreamPool,
}

impl Remote {
    pub fn new(
        node: NodeHandle,
        holders: Arc<Holders>,
        trust: Trust,
        filter: PathFilter,
        nars: NarLog,
        nar_cache: Option<NarCache>,
    ) -> Self {
        Self {
            node,
            holders,
            trust,
            filter,
            nars,
            nar_cache,
            liars: Mutex::new(HashSet::new()),
            trusted_narinfos: Mutex::new(HashMap::new()),
            narinfo_streams: StreamPool::default(),
        }
    }

    fn penalise(&self, peer: PeerId, error: &FetchError) {
        tracing::warn!(%peer, %error, "peer sent wrong data: no longer asked");
        if let Ok(mut liars) = self.liars.lock() {
            liars.insert(peer);
        }
    }

    fn honest(&self, peers: Vec<PeerId>) -> Vec<PeerId> {
        let liars = self.liars.lock().map(|l| l.clone()).unwrap_or_default();
        peers.into_iter().filter(|p| !liars.contains(p)).collect()
    }

    /// The first trusted narinfo for `hash` among the peers that hold it.
    async fn narinfo(&self, hash: StoreHash) -> Option<NarInfo> {
        let holders = self.honest(self.holders.holders_of(&hash));
        if holders.is_empty() {
            return None;
        }
        if let Some(narinfo) = self.recently_trusted(hash) {
            return Some(narinfo);
        }
        for peer in holders.iter().copied() {
            let (narinfo, cid) =
                match fetch::narinfo(&self.node, &self.narinfo_streams, peer, hash).await {
                    Ok(answer) => answer,
                    Err(e @ (FetchError::Lied { .. } | FetchError::Malformed(_))) => {
                        self.penalise(peer, &e);
                        continue;
                    }
                    Err(e) => {
                        tracing::debug!(%peer, %hash, error = %e, "no narinfo from peer");
                        continue;
                    }
                };
            if !self.filter.allows(narinfo.store_path.basename()) {
                return None;
            }
            if !self.trusted(&narinfo).await {
                tracing::warn!(%peer, path = %narinfo.store_path, "untrusted narinfo refused");
                continue;
            }
            let published = cid.is_some();
            if !self.remember(&narinfo, cid).await {
                return None;
            }
            // Until the holder has published the NAR's CID, ask again: the next answer may
            // carry it, and with it the way to fetch from every holder at once.
            if let Some(mut trusted) = self.trusted_narinfos.lock().ok().filter(|_| published) {
                if trusted.len() >= TRUSTED_NARINFOS {
                    trusted.clear();
                }
                trusted.insert(hash, (Instant::now(), narinfo.clone()));
            }
            return Some(narinfo);
        }
        None
    }

    fn recently_trusted(&self, hash: StoreHash) -> Option<NarInfo> {
        let trusted = self.trusted_narinfos.lock().ok()?;
        let (when, narinfo) = trusted.get(&hash)?;
        (when.elapsed() < TRUSTED_NARINFO_TTL).then(|| narinfo.clone())
    }

    async fn trusted(&self, narinfo: &NarInfo) -> bool {
        match self.trust.judge(narinfo) {
            Verdict::Trusted => true,
            Verdict::Refused => false,
            Verdict::AskUpstream(url) => {
                let narinfo = narinfo.clone();
                tokio::task::spawn_blocking(move || upstream_agrees(&url, &narinfo))
                    .await
                    .unwrap_or(false)
            }
        }
    }

    /// Records the NAR a narinfo names, durably: without it, its URL would be a 404 later.
    async fn remember(&self, narinfo: &NarInfo, cid: Option<Cid>) -> bool {
        let nar = RemoteNar {
            size: narinfo.nar_size,
            path: narinfo.store_path.hash(),
            cid,
        };
        self.nars.record(narinfo.nar_hash, nar).await
    }

    /// The round trip to `peer` over a direct connection, as last measured (zero if unknown).
    async fn rtt(&self, peer: PeerId) -> Duration {
        let Ok(status) = self.node.status().await else {
            return Duration::ZERO;
        };
        status
            .peers
            .iter()
            .find(|p| p.peer_id == peer)
            .and_then(|p| p.rtt)
            .unwrap_or_default()
    }

    /// What a narinfo answer said of a NAR, and the honest peers holding its path now.
    fn known_nar(&self, nar_hash: &NarHash) -> Option<(RemoteNar, Vec<PeerId>)> {
        let nar = self.nars.get(nar_hash)?;
        let holders = self.honest(self.holders.holders_of(&nar.path));
        Some((nar, holders))
    }
}

impl P2pCache {
    pub fn new(local: Arc<LocalStore>, remote: Option<Arc<Remote>>) -> Self {
        Self { local, remote }
    }
}

impl BinaryCache for P2pCache {
    fn cache_info(&self) -> CacheInfo {
        self.local.cache_info()
    }

    async fn narinfo(&self, hash: StoreHash) -> Result<Option<NarInfo>, CacheError> {
        if let Some(found) = self.local.shared_narinfo(hash)? {
            return Ok(Some(found));
        }
        let Some(remote) = &self.remote else {
            return Ok(None);
        };
        let Some(mut narinfo) = remote.narinfo(hash).await else {
            return Ok(None);
        };
        // Served as this node serves its own: uncompressed, under a URL naming the content.
        narinfo.url = format!("nar/{}.nar", narinfo.nar_hash.to_base32());
        narinfo.compression = "none".to_owned();
        narinfo.file_hash = Some(narinfo.nar_hash);
        narinfo.file_size = Some(narinfo.nar_size);
        self.local.add_own_signature(&mut narinfo);
        Ok(Some(narinfo))
    }

    async fn nar(&self, nar_hash: NarHash) -> Result<Option<Nar>, CacheError> {
        if let Some(nar) = self.local.nar(nar_hash).await? {
            return Ok(Some(nar));
        }
        let Some(remote) = &self.remote else {
            return Ok(None);
        };
        if let Some((size, source)) = remote.nar_cache.as_ref().and_then(|c| c.get(&nar_hash)) {
            return Ok(Some(Nar { size, source }));
        }
        let Some((nar, peers)) = remote.known_nar(&nar_hash).filter(|(_, p)| !p.is_empty()) else {
            return Ok(None);
        };
        Ok(Some(Nar {
            size: nar.size,
            source: Box::new(PeersNar {
                remote: remote.clone(),
                nar_hash,
                size: nar.size,
                cid: nar.cid,
                peers,
            }),
        }))
    }
}

/// A NAR read from the peers that hold it.
struct PeersNar {
    remote: Arc<Remote>,
    nar_hash: NarHash,
    size: u64,
    /// Its CID, when the holders publish it: then it can come from all of them at once.
    cid: Option<Cid>,
    peers: Vec<PeerId>,
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
        Box::pin(futures_util::stream::unfold(
            chunks,
            |mut chunks| async move { chunks.recv().await.map(|item| (item, chunks)) },
        ))
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
    /// that peer is not asked again). Returns why it failed, if it did.
    async fn fetch(
        &self,
        start: u64,
        end: u64,
        output: &mpsc::Sender<io::Result<Bytes>>,
    ) -> Option<String> {
        let remote = &self.remote;
        let mut progress = NarProgress::new(self.nar_hash, self.size, start, end);
        let mut last = "no peer holds it any more".to_owned();
        // A large NAR held by several peers comes from all of them at once, block by block; if
        // that fails before the reader got anything, the holders are asked one at a time.
        let peers = remote.honest(self.peers.clone());
        if let Some(cid) = self
            .cid
            .filter(|_| peers.len() > 1 && self.size >= MULTI_SOURCE_MIN)
        {
            match fetch::nar_by_cid(&remote.node, cid, peers, &mut progress, output).await {
                NarOutcome::Complete | NarOutcome::Abandoned => return None,
                outcome if progress.handed_on => return Some(outcome.to_string()),
                outcome => {
                    tracing::debug!(%cid, reason = %outcome, "Bitswap fetch failed: streaming instead");
                    progress = NarProgress::new(self.nar_hash, self.size, start, end);
                }
            }
        }
        for peer in remote.honest(self.peers.clone()) {
            let fetched = if self.size >= STRIPED_MIN && remote.rtt(peer).await >= STRIPED_RTT {
                fetch::nar_striped(&remote.node, peer, &mut progress, output, STRIPES).await
            } else {
                fetch::nar(&remote.node, peer, &mut progress, output).await
            };
            match fetched {
                NarOutcome::Complete | NarOutcome::Abandoned => return None,
                NarOutcome::Interrupted(e) => {
                    tracing::debug!(%peer, offset = progress.offset, error = %e, "NAR source stopped");
                    last = e.to_string();
                }
                NarOutcome::Wrong(e) => {
                    remote.penalise(peer, &e);
                    if progress.handed_on {
                        return Some(e.to_string());
                    }
                    // Nothing reached the reader: start over from the next peer.
                    progress = NarProgress::new(self.nar_hash, self.size, start, end);
                    last = e.to_string();
                }
            }
        }
        Some(last)
    }
}
