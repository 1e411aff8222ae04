//! Pull-through of the upstream cache (`--pull-through`): a path no peer holds is answered with
//! upstream's own narinfo and signatures (Nix checks them; Peerix signs nothing), its file
//! served through this node, unchanged and checked against its FileHash. The near nodes of the
//! network (on the LAN, or every node of an explicitly set network id) each pull a share of
//! the files, chosen by hash ([`designate`]), and get the rest from each other over
//! `/peerix/<tag>/pull/1.0.0`, so a file a LAN wants crosses its uplink once.

mod designate;
mod downloads;
mod health;
mod peers;

use std::io;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::stream::{self, StreamExt};
use hashlink::LruCache;
use peerix_http::{ByteStream, Nar, NarHash, NarInfo, NarSource, StoreHash};
use peerix_node::{NodeError, NodeHandle, PeerId};

use super::near::NearMembers;
use super::upstream::UpstreamError;
use super::{Remote, Upstream};
use designate::puller;
use downloads::DownloadError;
use downloads::{Download, Downloads, Expected, Writer};
use health::UpstreamHealth;

/// How long a near node's request for a file waits for upstream's narinfo.
const PEER_WAIT: Duration = Duration::from_secs(2);
/// Files whose narinfo was served, remembered for the NAR request that follows.
const FILES: usize = 1 << 14;
/// Peers that failed or lied about a file, remembered at most.
const BAD_PEERS: usize = 1024;
/// The least room kept for pulled files, beyond `--cache-size`: enough for the files a LAN
/// pulls at once and for the near nodes that ask for them a little later.
const LEAST_BUDGET: u64 = 4 << 30;

/// A file upstream serves for a path, as its narinfo names it.
#[derive(Clone, Debug)]
struct PulledFile {
    path: StoreHash,
    /// Relative to upstream's URL.
    url: String,
    expected: Expected,
}

pub struct PullThrough {
    node: NodeHandle,
    upstream: Arc<Upstream>,
    health: Arc<UpstreamHealth>,
    /// Downloads files: no deadline for the whole, only between reads.
    files_agent: ureq::Agent,
    downloads: Arc<Downloads>,
    /// The nodes this one pulls with.
    near: Arc<NearMembers>,
    remote: Arc<Remote>,
    files: Mutex<LruCache<NarHash, PulledFile>>,
    /// Peers that sent a wrong file (never asked again), or failed to send one.
    liars: Mutex<LruCache<PeerId, ()>>,
    failed: Mutex<LruCache<(PeerId, NarHash), ()>>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[derive(Debug, thiserror::Error)]
pub enum PullThroughError {
    #[error(transparent)]
    Downloads(#[from] DownloadError),
    #[error("cannot accept pull requests: {0}")]
    Node(#[from] NodeError),
}

/// Parts of a pull-through node, from the daemon's assembly.
pub struct PullThroughParts {
    pub node: NodeHandle,
    pub upstream: Arc<Upstream>,
    pub state_dir: std::path::PathBuf,
    pub cache_size: u64,
    pub near: Arc<NearMembers>,
    pub remote: Arc<Remote>,
}

impl PullThrough {
    pub fn start(parts: PullThroughParts) -> Result<Arc<Self>, PullThroughError> {
        let upstream = parts.upstream;
        let downloads = Downloads::open(
            &parts.state_dir.join("pull-through"),
            parts.cache_size.max(LEAST_BUDGET),
        )?;
        let files_agent = ureq::Agent::config_builder()
            .timeout_connect(Some(Duration::from_secs(3)))
            .timeout_recv_response(Some(Duration::from_secs(10)))
            .timeout_per_read(Some(downloads::STALL))
            .build()
            .into();
        let this = Arc::new(Self {
            node: parts.node.clone(),
            health: UpstreamHealth::watch(upstream.clone()),
            upstream,
            files_agent,
            downloads,
            near: parts.near,
            remote: parts.remote,
            files: Mutex::new(LruCache::new(FILES)),
            liars: Mutex::new(LruCache::new(BAD_PEERS)),
            failed: Mutex::new(LruCache::new(BAD_PEERS)),
        });
        peers::answer(this.clone())?;
        Ok(this)
    }

    /// For `/status`: upstream, whether it answers, and the files kept.
    pub fn status(&self) -> serde_json::Value {
        let (files, bytes) = self.downloads.kept();
        serde_json::json!({
            "upstream": self.upstream.url(),
            "upstream_answers": self.health.wait().is_some(),
            "narinfo_wait_ms": self.health.wait().map(|w| w.as_secs_f64() * 1000.0),
            "files_kept": files,
            "bytes_kept": bytes,
        })
    }

    /// Upstream's narinfo for `hash`, if it answers in time and its file can be checked, with
    /// the file it names; filtered names are not pulled. Nix waits a few of upstream's typical
    /// answer times; a near node asking for the file, which waits for it anyway, `for_peer`
    /// waits longer (a 404 there would send it to upstream as well).
    async fn upstream_narinfo(
        &self,
        hash: StoreHash,
        for_peer: bool,
    ) -> Option<(NarInfo, PulledFile)> {
        let wait = self.health.wait()?;
        let wait = if for_peer { wait.max(PEER_WAIT) } else { wait };
        let asked_at = std::time::Instant::now();
        let mut narinfo = match tokio::time::timeout(wait, self.upstream.narinfo(hash)).await {
            Ok(Ok(found)) => {
                self.health.answered();
                found?
            }
            Ok(Err(UpstreamError::TooSlow)) | Err(_) => {
                tracing::debug!(%hash, ?wait, "pull-through: upstream too slow for a narinfo");
                self.health.late(asked_at);
                return None;
            }
            Ok(Err(e)) => {
                tracing::debug!(%hash, error = %e, "pull-through: no narinfo from upstream");
                self.health.failed();
                return None;
            }
        };
        if !self.remote.filter.allows(narinfo.store_path.basename()) {
            return None;
        }
        // Nix checks upstream's signatures itself; one under Peerix's own name is not upstream's.
        self.remote.trust.drop_own_signatures(&mut narinfo);
        let expected = match (narinfo.file_hash, narinfo.file_size) {
            (Some(file_hash), Some(size)) => Expected { file_hash, size },
            _ if narinfo.compression == "none" => Expected {
                file_hash: narinfo.nar_hash,
                size: narinfo.nar_size,
            },
            // A compressed file of unknown hash cannot be checked before Nix has it.
            _ => return None,
        };
        let url = relative_url(&narinfo.url)?.to_owned();
        let file = PulledFile {
            path: hash,
            url,
            expected,
        };
        Some((narinfo, file))
    }

    /// What Nix gets for a path no peer holds: upstream's narinfo under a URL of this node.
    pub async fn narinfo(&self, hash: StoreHash) -> Option<NarInfo> {
        let (mut narinfo, file) = self.upstream_narinfo(hash, false).await?;
        let file_hash = file.expected.file_hash;
        narinfo.url = format!(
            "nar/{}{}",
            file_hash.to_base32(),
            file_suffix(&narinfo.compression)
        );
        narinfo.file_hash = Some(file_hash);
        narinfo.file_size = Some(file.expected.size);
        lock(&self.files).insert(file_hash, file);
        Some(narinfo)
    }

    /// The file named `file_hash` by a narinfo this node served.
    pub fn nar(self: &Arc<Self>, file_hash: NarHash) -> Option<Nar> {
        let file = lock(&self.files).get(&file_hash).cloned()?;
        let size = file.expected.size;
        let source = Box::new(PulledNar {
            pull: self.clone(),
            file,
        });
        Some(Nar { size, source })
    }

    /// The download of `file`: under way or kept, or started from the node that pulls it, or
    /// from upstream itself when a near node asked (`for_peer`: it chose this node).
    async fn download(
        self: &Arc<Self>,
        file: &PulledFile,
        for_peer: bool,
    ) -> io::Result<Arc<Download>> {
        let (download, writer) = self
            .downloads
            .join_or_start(file.expected)
            .map_err(io::Error::other)?;
        let Some(writer) = writer else {
            return Ok(download);
        };
        let from = match for_peer {
            true => None,
            false => self.puller(file).await,
        };
        tracing::debug!(path = %file.path, puller = ?from, own = %self.node.peer_id(), "pull-through: fetching a file");
        let (this, file) = (self.clone(), file.clone());
        tokio::spawn(async move {
            let writer = match from {
                Some(peer) => match peers::pull_from(&this.node, peer, &file, writer).await {
                    Ok(()) => return,
                    Err(failure) => this.peer_failed(peer, &file, failure),
                },
                None => Some(writer),
            };
            if let Some(writer) = writer {
                this.fill_from_upstream(&file, writer).await;
            }
        });
        Ok(download)
    }

    async fn fill_from_upstream(&self, file: &PulledFile, writer: Writer) {
        let url = format!("{}/{}", self.upstream.url(), file.url);
        if let Err(e) = peers::fetch_url(&self.files_agent, &url, writer).await {
            tracing::warn!(%url, error = %e, "pull-through: cannot pull the file from upstream");
        }
    }

    /// Records why `peer` did not deliver `file`; the writer back when nothing was written (the
    /// file then comes from upstream instead).
    fn peer_failed(
        &self,
        peer: PeerId,
        file: &PulledFile,
        failure: peers::Failure,
    ) -> Option<Writer> {
        match failure {
            peers::Failure::Lied(why) => {
                tracing::warn!(%peer, path = %file.path, %why, "pull-through: a peer sent a wrong file: never asked again");
                lock(&self.liars).insert(peer, ());
                None
            }
            peers::Failure::Stopped(why, writer) => {
                tracing::debug!(%peer, path = %file.path, %why, "pull-through: a peer did not send the file");
                lock(&self.failed).insert((peer, file.expected.file_hash), ());
                writer.filter(|w| w.written() == 0).map(|w| *w)
            }
        }
    }

    /// The members of the network connected directly and near: the nodes this one pulls with.
    async fn near_members(&self) -> Vec<PeerId> {
        self.near.list().await
    }

    /// Whether `peer` may have this node pull files for it: only a near member may spend its
    /// uplink.
    async fn pulls_for(&self, peer: PeerId) -> bool {
        self.near.contains(peer).await
    }

    /// The near node that pulls `file`, or `None` if this one does.
    async fn puller(&self, file: &PulledFile) -> Option<PeerId> {
        let own = self.node.peer_id();
        let file_hash = file.expected.file_hash;
        let near: Vec<PeerId> = self
            .near_members()
            .await
            .into_iter()
            .filter(|p| !lock(&self.liars).contains_key(p))
            .filter(|p| !lock(&self.failed).contains_key(&(*p, file_hash)))
            .collect();
        let chosen = puller(&file_hash, own, &near);
        (chosen != own).then_some(chosen)
    }
}

/// On the same LAN: reached at a local-network address, and not far in time.
/// Upstream's URL for a file, relative to upstream and inside it; `None` otherwise.
fn relative_url(url: &str) -> Option<&str> {
    let inside = !url.is_empty()
        && !url.starts_with('/')
        && !url.contains("://")
        && !url.contains('?')
        && !url
            .split('/')
            .any(|part| part == ".." || part == "." || part.is_empty());
    inside.then_some(url)
}

/// The file name suffix of a compression, as Nix's own caches name their files.
fn file_suffix(compression: &str) -> &'static str {
    match compression {
        "xz" => ".nar.xz",
        "zstd" => ".nar.zst",
        "bzip2" => ".nar.bz2",
        _ => ".nar",
    }
}

/// A file served to Nix as it is pulled.
struct PulledNar {
    pull: Arc<PullThrough>,
    file: PulledFile,
}

impl NarSource for PulledNar {
    fn stream(self: Box<Self>, start: u64, end: u64) -> ByteStream {
        let opened = async move { self.pull.download(&self.file, false).await };
        Box::pin(
            stream::once(opened).flat_map(move |download| match download {
                Ok(download) => download.read(start, end),
                Err(e) => Box::pin(stream::once(async move { Err(e) })) as ByteStream,
            }),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_urls_inside_upstream_are_pulled() {
        assert_eq!(relative_url("nar/abc.nar.xz"), Some("nar/abc.nar.xz"));
        for bad in [
            "",
            "/nar/a",
            "http://evil/a",
            "nar/../x",
            "nar//a",
            "./a",
            "nar/a?x=1",
        ] {
            assert_eq!(relative_url(bad), None, "{bad}");
        }
    }
}
