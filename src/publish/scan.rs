//! The publication scan: keeps the index equal to the store's shared paths. New paths get their
//! NAR imported into the embedded node (no copy: only the DAG's inner nodes are stored, leaves are
//! re-read from the store) and their root CID announced, and are added to kubo too with
//! `--ipfs-api`; vanished ones leave the index. It runs
//! whenever the store changes, every `--scan-interval`, and resumes after the last whole entry.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cid::Cid;
use peerix_http::StoreHash;
use peerix_node::{NodeHandle, Persist};
use serde::Serialize;
use tokio::sync::{watch, Notify};

use super::content::{nar_source, StoreContent};
use super::db::{IndexDb, IndexError};
use super::kubo::{KuboPublishError, KuboPublisher};
use crate::nix::nar::NarReader;
use crate::store::LocalStore;

/// How often a running scan reports its progress in the log.
const PROGRESS_LOG: Duration = Duration::from_secs(10);
/// Published paths reach the disk together, one fsync per database, at most this often: the
/// work a kill -9 can undo, and redo at the next start.
const PERSIST_EVERY: Duration = Duration::from_secs(1);

/// Progress of the current (or last) scan, for the log and `GET /status`.
#[derive(Default)]
pub struct ScanProgress {
    pub total: AtomicU64,
    pub done: AtomicU64,
    pub bytes: AtomicU64,
    pub failed: AtomicU64,
    started: Mutex<Option<Instant>>,
    finished: Mutex<Option<Instant>>,
    /// When a scan last finished, kept while the next one runs.
    last_finished: Mutex<Option<Instant>>,
}

#[derive(Serialize)]
pub struct ScanReport {
    pub running: bool,
    pub paths_done: u64,
    pub paths_total: u64,
    pub paths_failed: u64,
    pub bytes: u64,
    pub bytes_per_second: f64,
    pub eta_seconds: Option<f64>,
    /// Seconds since the last scan finished; `None` while none has.
    pub finished_seconds_ago: Option<u64>,
}

impl ScanProgress {
    pub fn report(&self) -> ScanReport {
        let started = self.started.lock().ok().and_then(|s| *s);
        let finished = self.finished.lock().ok().and_then(|f| *f);
        let (done, total) = (
            self.done.load(Ordering::Relaxed),
            self.total.load(Ordering::Relaxed),
        );
        let bytes = self.bytes.load(Ordering::Relaxed);
        let elapsed = started.map_or(0.0, |s| {
            finished
                .unwrap_or_else(Instant::now)
                .duration_since(s)
                .as_secs_f64()
        });
        let running = started.is_some() && finished.is_none();
        let rate = if elapsed > 0.0 {
            bytes as f64 / elapsed
        } else {
            0.0
        };
        let per_path = if done > 0 { elapsed / done as f64 } else { 0.0 };
        ScanReport {
            running,
            paths_done: done,
            paths_total: total,
            paths_failed: self.failed.load(Ordering::Relaxed),
            bytes,
            bytes_per_second: rate,
            eta_seconds: (running && done > 0)
                .then(|| per_path * total.saturating_sub(done) as f64),
            finished_seconds_ago: self
                .last_finished
                .lock()
                .ok()
                .and_then(|f| *f)
                .map(|f| f.elapsed().as_secs()),
        }
    }

    fn start(&self, total: usize) {
        self.total.store(total as u64, Ordering::Relaxed);
        for counter in [&self.done, &self.bytes, &self.failed] {
            counter.store(0, Ordering::Relaxed);
        }
        if let Ok(mut s) = self.started.lock() {
            *s = Some(Instant::now());
        }
        if let Ok(mut f) = self.finished.lock() {
            *f = None;
        }
    }

    /// A pass that found nothing to publish: the figures stay the last scan's, and the index was
    /// complete as of now.
    fn found_nothing_new(&self) {
        if let Ok(mut f) = self.last_finished.lock() {
            *f = Some(Instant::now());
        }
    }

    fn finish(&self) {
        let now = Some(Instant::now());
        for finished in [&self.finished, &self.last_finished] {
            if let Ok(mut f) = finished.lock() {
                *f = now;
            }
        }
    }
}

/// What an operator may ask of the scan: to pause it (the path being published is finished
/// first), to go on, and to look at the store again now.
pub struct ScanControl {
    paused: watch::Sender<bool>,
    rescan: Notify,
}

impl Default for ScanControl {
    fn default() -> Self {
        Self {
            paused: watch::Sender::new(false),
            rescan: Notify::new(),
        }
    }
}

impl ScanControl {
    pub fn pause(&self, paused: bool) {
        self.paused.send_replace(paused);
    }

    pub fn is_paused(&self) -> bool {
        *self.paused.borrow()
    }

    /// Starts a pass over the store now (publishing what the index lacks), or right after the
    /// one under way.
    pub fn rescan_now(&self) {
        self.rescan.notify_one();
    }

    async fn wait_while_paused(&self) {
        let mut paused = self.paused.subscribe();
        // The sender lives as long as `self`.
        let _ = paused.wait_for(|paused| !*paused).await;
    }
}

pub struct Scanner {
    pub store: Arc<LocalStore>,
    pub content: Arc<StoreContent>,
    /// The embedded node; `None` under kubo alone (`--no-embedded-node`), then `kubo` is set.
    pub node: Option<NodeHandle>,
    pub db: Arc<IndexDb>,
    pub progress: Arc<ScanProgress>,
    pub control: Arc<ScanControl>,
    /// Given NARs too (`--ipfs-api`).
    pub kubo: Option<KuboPublisher>,
}

/// A path published: its index entry and, where kubo named its NAR otherwise, kubo's CID.
type Published = ((StoreHash, Cid, String), Option<Cid>);

impl Scanner {
    /// Reconciles the index with `wanted` each time it changes, and every `interval` (if any),
    /// starting once the store was first read: an empty set before that would withdraw
    /// everything. Keys provided in earlier runs are announced again only once what left the
    /// store or became filtered meanwhile is withdrawn.
    pub async fn run(
        self,
        mut wanted: watch::Receiver<Arc<HashSet<StoreHash>>>,
        interval: Option<Duration>,
    ) {
        if wanted.changed().await.is_err() {
            return;
        }
        let mut first = true;
        loop {
            let target = wanted.borrow_and_update().clone();
            self.reconcile(&target, std::mem::take(&mut first)).await;
            let rescan = async {
                match interval {
                    Some(every) => tokio::time::sleep(every).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                changed = wanted.changed() => if changed.is_err() { return },
                () = rescan => {}
                () = self.control.rescan.notified() => {}
            }
        }
    }

    async fn reconcile(&self, target: &HashSet<StoreHash>, first: bool) {
        let indexed = match self.db.hashes() {
            Ok(hashes) => hashes,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the index");
                return;
            }
        };
        let vanished: Vec<StoreHash> = indexed.difference(target).copied().collect();
        if !vanished.is_empty() {
            self.withdraw(vanished).await;
        }
        if let (true, Some(node)) = (first, &self.node) {
            if let Err(e) = node.announce_provided().await {
                tracing::error!(error = %e, "cannot announce published content again");
            }
        }
        let mut todo: Vec<StoreHash> = target.difference(&indexed).copied().collect();
        if todo.is_empty() {
            self.progress.found_nothing_new();
            return;
        }
        todo.sort_unstable();
        self.progress.start(todo.len());
        tracing::info!(paths = todo.len(), "publishing new paths");
        let (mut last_log, mut last_persist) = (Instant::now(), Instant::now());
        let mut published = Vec::new();
        for hash in todo {
            if self.control.is_paused() {
                tracing::info!("publication scan paused");
                self.persist(std::mem::take(&mut published)).await;
                self.control.wait_while_paused().await;
                tracing::info!("publication scan resumed");
            }
            match self.publish(hash).await {
                Ok((bytes, entry)) => {
                    self.progress.bytes.fetch_add(bytes, Ordering::Relaxed);
                    published.push(entry);
                }
                Err(e) => {
                    self.progress.failed.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(%hash, error = %e, "cannot publish path");
                }
            }
            self.progress.done.fetch_add(1, Ordering::Relaxed);
            if last_persist.elapsed() >= PERSIST_EVERY {
                last_persist = Instant::now();
                self.persist(std::mem::take(&mut published)).await;
            }
            if last_log.elapsed() >= PROGRESS_LOG {
                last_log = Instant::now();
                log_progress(&self.progress.report());
            }
        }
        self.persist(published).await;
        self.progress.finish();
        log_progress(&self.progress.report());
    }

    /// Paths garbage-collected or newly filtered: the node stops announcing and serving their
    /// NARs first, then they leave the index (a crash in between withdraws them again).
    async fn withdraw(&self, vanished: Vec<StoreHash>) {
        let db = self.db.clone();
        let listed = vanished.clone();
        let with_kubo = self.kubo.is_some();
        let found = tokio::task::spawn_blocking(move || {
            let (mut published, mut in_kubo) = (Vec::new(), Vec::new());
            for hash in listed {
                if let Some((cid, _)) = db.get(hash)? {
                    published.push((cid, nar_source(hash)));
                    if with_kubo {
                        in_kubo.push(db.kubo_cid(hash)?.unwrap_or(cid));
                    }
                }
            }
            Ok::<_, IndexError>((published, in_kubo))
        });
        let (published, in_kubo) = match found.await {
            Ok(Ok(published)) => published,
            Ok(Err(e)) => return tracing::error!(error = %e, "cannot read the index"),
            Err(e) => return tracing::error!(error = %e, "cannot read the index"),
        };
        if let Some(node) = &self.node {
            if let Err(e) = node.withdraw(published).await {
                return tracing::error!(error = %e, "cannot withdraw published content");
            }
        }
        if let Some(kubo) = &self.kubo {
            kubo.withdraw(in_kubo).await;
        }
        let (db, paths) = (self.db.clone(), vanished.len());
        match tokio::task::spawn_blocking(move || db.remove(&vanished)).await {
            Ok(Ok(())) => {
                tracing::info!(paths, "withdrawn: no longer announced, served or indexed")
            }
            Ok(Err(e)) => tracing::error!(error = %e, "cannot update the index"),
            Err(e) => tracing::error!(error = %e, "cannot update the index"),
        }
    }

    /// Makes the node's records durable, then writes the index entries of `published`: the
    /// index never claims a path whose blocks a crash lost (paths not written are published
    /// again by the next scan).
    async fn persist(&self, published: Vec<Published>) {
        if let Some(node) = &self.node {
            if let Err(e) = node.persist().await {
                tracing::error!(error = %e, "cannot persist published content");
                return;
            }
        }
        let db = self.db.clone();
        let (entries, kubo): (Vec<_>, Vec<_>) = published.into_iter().unzip();
        let kubo_cids: Vec<(StoreHash, Cid)> = entries
            .iter()
            .zip(kubo)
            .filter_map(|((hash, _, _), kubo)| Some((*hash, kubo?)))
            .collect();
        match tokio::task::spawn_blocking(move || db.put_all(&entries, &kubo_cids)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "cannot persist the index"),
            Err(e) => tracing::error!(error = %e, "cannot persist the index"),
        }
    }

    /// Imports one path's NAR into the node (and kubo); returns the NAR's size and what the
    /// index records of the path.
    async fn publish(&self, hash: StoreHash) -> Result<(u64, Published), PublishError> {
        let narinfo = self.store.shared_narinfo(hash)?.ok_or(PublishError::Gone)?;
        let content = self.content.clone();
        let plan = tokio::task::spawn_blocking(move || content.plan(hash))
            .await
            .map_err(|e| PublishError::Read(std::io::Error::other(e)))?
            .map_err(PublishError::Read)?;
        if plan.size() != narinfo.nar_size {
            return Err(PublishError::Size {
                nar: plan.size(),
                database: narinfo.nar_size,
            });
        }
        let Some(node) = &self.node else {
            // kubo alone: its CID is the path's.
            let kubo = self.kubo.as_ref().ok_or(PublishError::Nowhere)?;
            let cid = kubo.publish(hash, plan).await?;
            return Ok((narinfo.nar_size, ((hash, cid, narinfo.render()), None)));
        };
        let cid = node
            .add_content(
                nar_source(hash),
                NarReader::new(plan.clone()),
                Persist::Later,
            )
            .await?;
        // kubo failing costs its copy only: the path stays published by the node.
        let kubo_cid = match &self.kubo {
            Some(kubo) => match kubo.publish(hash, plan).await {
                Ok(kubo_cid) => (kubo_cid != cid).then(|| {
                    kubo.other_cid(hash, cid, kubo_cid);
                    kubo_cid
                }),
                Err(e) => {
                    tracing::warn!(%hash, error = %e, "cannot add the NAR to kubo");
                    None
                }
            },
            None => None,
        };
        Ok((narinfo.nar_size, ((hash, cid, narinfo.render()), kubo_cid)))
    }
}

/// Why a path could not be published.
#[derive(Debug, thiserror::Error)]
enum PublishError {
    #[error("cannot read the store database: {0}")]
    Store(#[from] peerix_http::CacheError),
    #[error("no longer in the store")]
    Gone,
    #[error("cannot read the path: {0}")]
    Read(std::io::Error),
    #[error("NAR is {nar} bytes, the store database says {database}")]
    Size { nar: u64, database: u64 },
    #[error("the node cannot publish it: {0}")]
    Node(#[from] peerix_node::NodeError),
    #[error("cannot add it to kubo: {0}")]
    Kubo(#[from] KuboPublishError),
    #[error("neither an embedded node nor kubo to publish it to")]
    Nowhere,
}

fn log_progress(report: &ScanReport) {
    tracing::info!(
        done = report.paths_done,
        total = report.paths_total,
        failed = report.paths_failed,
        mib = report.bytes >> 20,
        mib_per_second = format!("{:.1}", report.bytes_per_second / (1 << 20) as f64),
        eta_seconds = report.eta_seconds.map(|s| s.round()),
        "publishing"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_finished_scan_is_remembered_while_the_next_runs() {
        let progress = ScanProgress::default();
        assert_eq!(progress.report().finished_seconds_ago, None);
        progress.start(3);
        assert_eq!(progress.report().finished_seconds_ago, None);
        progress.finish();
        assert_eq!(progress.report().finished_seconds_ago, Some(0));
        progress.start(3);
        let report = progress.report();
        assert!(report.running);
        assert_eq!(report.finished_seconds_ago, Some(0));
    }
}
