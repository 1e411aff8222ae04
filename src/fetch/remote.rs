//! What this machine lacks, from others: the peers that announced a path (or the tracker names),
//! then kubo (`--ipfs-api`) by the CID a holder named or the tracker maps, then the LAN's old
//! peers. A narinfo passes only when trusted, a NAR only as it hashes correctly.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cid::Cid;
use peerix_http::{NarHash, NarInfo, StoreHash};
use peerix_node::{NodeHandle, PeerId};
use tokio::sync::watch;

use super::lookup::first_answer;
use super::lookups::{LookupSource, Lookups};
use super::named_cids::NamedCids;
use super::nar_cache::NarCache;
use super::nar_log::NarLog;
use super::old_peer_nar::OldPeerNars;
use super::peer::{self as fetch, FetchError, NarOutcome};
use super::prefetch::Prefetch;
use super::refusals::{Reason, Refusals, RefusedFrom};
use super::scores::{Answer, Scores};
use super::source::Source;
use super::stream_pool::StreamPool;
use super::swarms::Swarms;
use super::trust::{Refused, Trust, Untrusted, Verified};
use crate::discovery::tracker::{TrackerSource, Transfer};
use crate::discovery::Holders;
use crate::filter::PathFilter;
use crate::kubo_rpc::KuboRpc;
use crate::lan::Lan;
use crate::publish::RemoteNar;

#[path = "kubo_narinfo.rs"]
mod kubo_narinfo;
#[path = "peers_nar.rs"]
mod peers_nar;

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
pub(super) const CHUNKS_IN_FLIGHT: usize = 4;

pub struct Remote {
    /// The embedded node holders are asked through; `None` under kubo alone
    /// (`--no-embedded-node`), where no holder is known and kubo fetches by the tracker's CIDs.
    node: Option<NodeHandle>,
    pub holders: Arc<Holders>,
    /// Asked who holds a path no known holder has (`--tracker-url`).
    tracker: Option<Arc<TrackerSource>>,
    /// Asked for a NAR no Peerix holder sends, by its CID (`--ipfs-api`).
    kubo: Option<KuboRpc>,
    /// Asked last, for a path no Peerix node holds (`--mode lan`, `both`).
    lan: Option<Arc<Lan>>,
    /// Where the NARs of paths the LAN's old peers served are.
    old_peer_nars: OldPeerNars,
    pub trust: Trust,
    pub filter: PathFilter,
    /// NAR hash -> its size and the path it belongs to, filled by narinfo answers and kept
    /// across restarts: Nix caches narinfos and may ask for the NAR long after. Holders are
    /// looked up again then.
    nars: NarLog,
    /// How holders answered: liars are never asked again, silent ones only once they answer.
    scores: Scores,
    /// Which peer named each NAR's CID, and which CIDs failed.
    named_cids: NamedCids,
    /// Narinfos that passed the trust check lately, so that a fleet asking for the same paths
    /// does not make every request a round trip and a signature check. Served only while some
    /// peer still announces the path.
    trusted_narinfos: Mutex<HashMap<StoreHash, (Instant, Verified)>>,
    /// NARs fetched before, served again without asking (`--cache-size`).
    pub nar_cache: Option<NarCache>,
    narinfo_streams: StreamPool,
    /// What was refused lately, and why (`peerix why`, the dashboard).
    pub refusals: Arc<Refusals>,
    /// Narinfo lookups by where they were tried (`/status`, `/metrics`).
    pub lookups: Arc<Lookups>,
    /// The references of narinfos that passed, fetched ahead of Nix's questions.
    prefetch: Prefetch,
    /// Large NARs fetched with the near nodes that fetch them too.
    swarms: Option<Arc<Swarms>>,
}

impl Remote {
    pub fn new(
        node: Option<NodeHandle>,
        holders: Arc<Holders>,
        trust: Trust,
        filter: PathFilter,
        nars: NarLog,
        nar_cache: Option<NarCache>,
        tracker: Option<Arc<TrackerSource>>,
    ) -> Self {
        Self {
            node,
            holders,
            tracker,
            kubo: None,
            lan: None,
            old_peer_nars: OldPeerNars::default(),
            trust,
            filter,
            nars,
            nar_cache,
            scores: Scores::default(),
            named_cids: NamedCids::default(),
            trusted_narinfos: Mutex::new(HashMap::new()),
            narinfo_streams: StreamPool::default(),
            refusals: Arc::default(),
            lookups: Arc::default(),
            prefetch: Prefetch::default(),
            swarms: None,
        }
    }

    /// Prefetches no path of `shared_here`, the paths this machine shares (Nix has them).
    pub fn with_shared_here(self, shared_here: watch::Receiver<Arc<HashSet<StoreHash>>>) -> Self {
        Self {
            prefetch: Prefetch::with_shared_here(shared_here),
            ..self
        }
    }

    /// Asks the LAN's old peers too, last (`--mode lan`, `both`).
    pub fn with_lan(self, lan: Option<Arc<Lan>>) -> Self {
        Self { lan, ..self }
    }

    /// Fetches through kubo what no holder sends (`--ipfs-api`).
    pub fn with_kubo(self, kubo: Option<KuboRpc>) -> Self {
        Self { kubo, ..self }
    }

    pub fn with_swarms(self, swarms: Option<Arc<Swarms>>) -> Self {
        Self { swarms, ..self }
    }

    /// Fetching large NARs with the near nodes, if there is an embedded node.
    pub fn swarms(&self) -> Option<&Arc<Swarms>> {
        self.swarms.as_ref()
    }

    /// Asked who holds a path no known holder has, if a tracker is set.
    pub fn tracker(&self) -> Option<&Arc<TrackerSource>> {
        self.tracker.as_ref()
    }

    /// The LAN's old peers, asked last, if `--mode` includes the LAN.
    pub fn lan(&self) -> Option<&Arc<Lan>> {
        self.lan.as_ref()
    }

    fn refused_narinfo(&self, hash: StoreHash, from: RefusedFrom, refused: &Untrusted) {
        let reason = Reason::untrusted(refused, self.trust.upstream.is_some());
        self.refusals.record(hash, from, reason);
    }

    /// Records that a trusted narinfo's name is one this node's filter hides.
    fn filtered(&self, from: RefusedFrom, narinfo: &NarInfo) -> bool {
        let name = narinfo.store_path.basename();
        if self.filter.allows(name) {
            return false;
        }
        let reason = Reason::Filtered {
            name: name.to_owned(),
            pattern: self.filter.hiding_pattern(name).map(str::to_owned),
        };
        self.refusals
            .record(narinfo.store_path.hash(), from, reason);
        true
    }

    fn penalise(&self, peer: PeerId, error: &FetchError) {
        tracing::warn!(%peer, %error, "peer sent wrong data: no longer asked");
        self.scores.record(peer, Answer::Lied);
    }

    /// A peer that may have sent wrong bytes, though nothing proves it: asked for NARs after
    /// the others for a while.
    fn suspect(&self, peer: PeerId) {
        tracing::info!(%peer, "peer may have sent part of a wrong NAR: asked after the others for a while");
        self.scores.suspect(peer);
    }

    fn honest(&self, peers: Vec<PeerId>) -> Vec<PeerId> {
        self.scores.honest(peers)
    }

    /// The first trusted narinfo for `hash` among the peers that hold it, asked hedged in the
    /// order their answers so far earned them.
    /// Each place tried counts in [`Remote::lookups`].
    pub(super) async fn narinfo(self: &Arc<Self>, hash: StoreHash) -> Option<(Verified, Source)> {
        let mut holders = self.honest(self.holders.holders_of(&hash));
        let mut asking = LookupSource::Peer;
        if let Some(tracker) = self.tracker.as_ref().filter(|_| holders.is_empty()) {
            self.lookups.record(LookupSource::Peer, false);
            holders = self.honest(tracker.find(hash).await);
            asking = LookupSource::Tracker;
        }
        if holders.is_empty() {
            self.lookups.record(asking, false);
            if let Some(found) = self.kubo_narinfo(hash).await {
                return Some((found, Source::Peer));
            }
            self.lan.as_ref()?;
            let found = self.old_peer_narinfo(hash).await;
            self.lookups.record(LookupSource::OldPeer, found.is_some());
            return found.map(|found| (found, Source::OldPeer));
        }
        let found = self.peers_narinfo(hash, holders).await;
        self.lookups.record(asking, found.is_some());
        let found = match found {
            Some(found) => Some(found),
            None => self.kubo_narinfo(hash).await,
        };
        found.map(|verified| (verified, Source::Peer))
    }

    fn cid_failed(&self, nar_hash: NarHash, cid: Cid) -> bool {
        self.named_cids.failed(nar_hash, cid)
    }

    /// [`Remote::narinfo`] among `holders`, Peerix nodes all.
    async fn peers_narinfo(
        self: &Arc<Self>,
        hash: StoreHash,
        holders: Vec<PeerId>,
    ) -> Option<Verified> {
        if let Some(narinfo) = self.recently_trusted(hash) {
            return Some(narinfo);
        }
        let plan = self.scores.plan(holders);
        // Silent holders get a request in the background: an answer makes them holders again.
        for peer in plan.probe {
            drop(self.ask(peer, hash));
        }
        let ask = |peer| self.ask(peer, hash);
        let (peer, verified, cid) =
            first_answer(plan.ask, plan.at_once, plan.last_resort, ask).await?;
        let published = cid.is_some();
        if !self.remember(verified.narinfo(), peer, cid).await {
            return None;
        }
        self.refusals.passed(&hash);
        // Until the holder has published the NAR's CID, ask again: the next answer may
        // carry it, and with it the way to fetch from every holder at once.
        if published {
            self.keep_trusted(hash, &verified);
        }
        self.prefetch_references(verified.narinfo());
        Some(verified)
    }

    fn keep_trusted(&self, hash: StoreHash, verified: &Verified) {
        if let Ok(mut trusted) = self.trusted_narinfos.lock() {
            if trusted.len() >= TRUSTED_NARINFOS {
                trusted.clear();
            }
            trusted.insert(hash, (Instant::now(), verified.clone()));
        }
    }

    /// Fetches ahead, from their holders, the narinfos of the references of a narinfo that
    /// passed: Nix asks for them next (see [`Prefetch`]). Those fetched are kept as trusted,
    /// CID or not: Nix's next question is answered from memory.
    fn prefetch_references(self: &Arc<Self>, narinfo: &NarInfo) {
        let wanted = self
            .prefetch
            .references_to_fetch(narinfo, |hash| self.recently_trusted(hash).is_some());
        for hash in wanted {
            let holders = self.honest(self.holders.holders_of(&hash));
            let this = self.clone();
            tokio::spawn(async move {
                let _claim = this.prefetch.claim(hash);
                if holders.is_empty() {
                    return;
                }
                let Some(_turn) = this.prefetch.turn().await else {
                    return;
                };
                if let Some(verified) = this.peers_narinfo(hash, holders).await {
                    this.keep_trusted(hash, &verified);
                }
            });
        }
    }

    /// Asks `peer` for `hash`'s narinfo in a task of its own, which scores the answer.
    fn ask(
        self: &Arc<Self>,
        peer: PeerId,
        hash: StoreHash,
    ) -> tokio::task::JoinHandle<Option<(PeerId, Verified, Option<Cid>)>> {
        self.scores.asking(peer);
        let this = self.clone();
        tokio::spawn(async move {
            let (verified, cid) = this.ask_one(peer, hash).await?;
            Some((peer, verified, cid))
        })
    }

    async fn ask_one(&self, peer: PeerId, hash: StoreHash) -> Option<(Verified, Option<Cid>)> {
        let node = self.node.as_ref()?;
        let answer = fetch::narinfo(node, &self.narinfo_streams, peer, hash).await;
        let (narinfo, cid) = match answer {
            Ok(answer) => answer,
            Err(FetchError::NotFound) => {
                self.scores.record(peer, Answer::Good);
                return None;
            }
            Err(
                e @ (FetchError::Lied { .. }
                | FetchError::Malformed(_)
                | FetchError::WrongNarHash { .. }),
            ) => {
                self.penalise(peer, &e);
                return None;
            }
            Err(e @ FetchError::Unreachable(_)) => {
                tracing::debug!(%peer, %hash, error = %e, "no narinfo from peer: backing off");
                self.scores.record(peer, Answer::TimedOut);
                return None;
            }
        };
        let verified = match self.trust.verify(Some(peer), narinfo).await {
            Ok(verified) => verified,
            Err(
                e @ Untrusted {
                    reason: Refused::NotNow(_),
                    ..
                },
            ) => {
                tracing::debug!(%peer, %hash, error = %e, "narinfo not verified now");
                self.refused_narinfo(hash, RefusedFrom::Peer(peer), &e);
                self.scores.record(peer, Answer::Good);
                return None;
            }
            Err(e) => {
                tracing::warn!(%peer, %hash, error = %e, "untrusted narinfo refused");
                self.refused_narinfo(hash, RefusedFrom::Peer(peer), &e);
                self.scores.record(peer, Answer::Untrusted);
                return None;
            }
        };
        // Checked after trust: a name only a liar gives must not hide the path honest holders
        // have; a trusted path under a filtered name is one this node's policy keeps out.
        if self.filtered(RefusedFrom::Peer(peer), verified.narinfo()) {
            tracing::debug!(%peer, path = %verified.narinfo().store_path, "filtered name skipped");
            self.scores.record(peer, Answer::Untrusted);
            return None;
        }
        self.scores.record(peer, Answer::Good);
        Some((verified, cid))
    }

    /// The narinfo of `hash` from a machine on the LAN running the old protocol, if one
    /// answers, under the same trust rules as a peer's (never unchecked).
    async fn old_peer_narinfo(&self, hash: StoreHash) -> Option<Verified> {
        let found = self.lan.as_ref()?.narinfo(hash).await?;
        let from = found.nar.http;
        let verified = match self.trust.verify(None, found.narinfo).await {
            Ok(verified) => verified,
            Err(e) => {
                tracing::warn!(%from, %hash, error = %e, "untrusted narinfo from the LAN refused");
                self.refused_narinfo(hash, RefusedFrom::OldPeer(from), &e);
                return None;
            }
        };
        let narinfo = verified.narinfo();
        if self.filtered(RefusedFrom::OldPeer(from), narinfo) {
            tracing::debug!(%from, path = %narinfo.store_path, "filtered name skipped");
            return None;
        }
        self.old_peer_nars
            .record(narinfo.nar_hash, found.nar, narinfo.nar_size);
        self.refusals.passed(&hash);
        Some(verified)
    }

    fn recently_trusted(&self, hash: StoreHash) -> Option<Verified> {
        let trusted = self.trusted_narinfos.lock().ok()?;
        let (when, narinfo) = trusted.get(&hash)?;
        (when.elapsed() < TRUSTED_NARINFO_TTL).then(|| narinfo.clone())
    }

    /// Records the NAR a narinfo names, durably: without it, its URL would be a 404 later.
    async fn remember(&self, narinfo: &NarInfo, source: PeerId, cid: Option<Cid>) -> bool {
        let failed = |cid: &Cid| self.cid_failed(narinfo.nar_hash, *cid);
        if cid.as_ref().is_some_and(failed) {
            tracing::debug!(peer = %source, nar = %narinfo.nar_hash, "a peer names a CID that failed");
            self.scores.record(source, Answer::Untrusted);
        }
        let cid = cid.filter(|c| !failed(c));
        if cid.is_some() {
            self.named_cids.named_by(narinfo.nar_hash, source);
        }
        let nar = RemoteNar {
            size: narinfo.nar_size,
            path: narinfo.store_path.hash(),
            cid,
        };
        self.nars.record(narinfo.nar_hash, nar).await
    }

    /// Forgets `cid` for the NAR after a fetch by it failed, for good, and penalises the peer
    /// that named it (as a liar if the bytes were wrong): it would make every retry of the NAR
    /// fail the same way. `fetched_by` is where the refusal is said to come from when no peer
    /// named the CID.
    async fn forget_cid(
        &self,
        (path, nar_hash, cid): (StoreHash, NarHash, Cid),
        outcome: &NarOutcome,
        fetched_by: RefusedFrom,
    ) {
        let source = self.named_cids.fail(nar_hash, cid);
        if let Some(peer) = source {
            let answer = match outcome {
                NarOutcome::Wrong(_) => Answer::Lied,
                _ => Answer::Untrusted,
            };
            tracing::warn!(%peer, nar = %nar_hash, %cid, %outcome, "fetch by the CID a peer named failed");
            self.scores.record(peer, answer);
        }
        let reason = Reason::CidFailed {
            cid: cid.to_string(),
            error: outcome.to_string(),
        };
        let from = source.map_or(fetched_by, RefusedFrom::Peer);
        self.refusals.record(path, from, reason);
        if let Some(nar) = self.nars.get(&nar_hash).filter(|n| n.cid == Some(cid)) {
            let nar = RemoteNar { cid: None, ..nar };
            if !self.nars.record(nar_hash, nar).await {
                tracing::warn!(nar = %nar_hash, "cannot forget a failed CID");
            }
        }
    }

    /// The round trip to `peer` over a direct connection, as last measured (zero if unknown).
    async fn rtt(&self, peer: PeerId) -> Duration {
        let Some(node) = &self.node else {
            return Duration::ZERO;
        };
        let Ok(status) = node.status().await else {
            return Duration::ZERO;
        };
        status
            .peers
            .iter()
            .find(|p| p.peer_id == peer)
            .and_then(|p| p.rtt)
            .unwrap_or_default()
    }

    /// Tells the tracker, if there is one, that `sender` sent this node the whole NAR of
    /// `hash`.
    fn report_received(&self, sender: PeerId, hash: StoreHash, bytes: u64) {
        if let (Some(tracker), Some(node)) = (&self.tracker, &self.node) {
            tracker.reports().record(Transfer {
                sender,
                receiver: node.peer_id(),
                hash,
                bytes,
            });
        }
    }
}
