//! The local Nix store as a binary cache: path info from its database, NARs from its files.

mod db;
mod plans;
mod signer;
mod sqlite;
mod watch;

use std::collections::{HashMap, HashSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use bytes::Bytes;
use peerix_http::{
    channel_stream, BinaryCache, ByteStream, CacheError, CacheInfo, Nar, NarHash, NarInfo,
    NarSource, StoreHash, StorePathName,
};

pub use db::{PathInfo, StoreDb};
pub use signer::CachingSigner;
pub use watch::{watch_store, SharedPaths};

use crate::filter::PathFilter;
use crate::nix::nar::NarPlan;
use plans::PlanCache;

/// Bytes per body chunk: large enough for page-cache speed, small enough to keep memory flat.
const NAR_CHUNK: usize = 256 * 1024;
/// Chunks buffered between the reading thread and the socket.
const NAR_CHUNKS_IN_FLIGHT: usize = 4;
/// Bound on NAR hashes remembered from narinfo answers for paths newer than the last read of
/// the store (about 100 bytes each; the watcher reads new paths within seconds).
const RECENT_NARS_CAP: usize = 4096;

/// NAR hash -> store hash of every shared path.
type NarIndex = HashMap<NarHash, StoreHash>;

pub struct LocalStore {
    root: PathBuf,
    db: StoreDb,
    filter: PathFilter,
    signer: Option<CachingSigner>,
    priority: u32,
    /// NAR URLs and requests name NAR hashes, which the database does not index: the shared
    /// paths' as of the last [`LocalStore::refresh_shared`] (none before the first: then the
    /// database is scanned), so an unknown hash is answered from memory.
    shared_nars: RwLock<Option<Arc<NarIndex>>>,
    /// NAR hashes of paths whose narinfo was served and which the last refresh did not see.
    recent_nars: Mutex<NarIndex>,
    plans: PlanCache,
}

impl LocalStore {
    pub fn new(
        root: &Path,
        filter: PathFilter,
        signer: Option<CachingSigner>,
        priority: u32,
    ) -> Self {
        Self {
            root: root.to_owned(),
            db: StoreDb::new(root),
            filter,
            signer,
            priority,
            shared_nars: RwLock::new(None),
            recent_nars: Mutex::new(HashMap::new()),
            plans: PlanCache::default(),
        }
    }

    /// Path info of a path that may be shared: filtered paths do not exist for callers.
    pub fn shared_path_info(&self, hash: StoreHash) -> Result<Option<PathInfo>, CacheError> {
        Ok(self
            .db
            .path_info(hash)?
            .filter(|info| self.filter.allows(info.path.basename())))
    }

    /// Path info of any valid path, filtered or not: for explaining why one is not shared.
    pub fn path_info(&self, hash: StoreHash) -> Result<Option<PathInfo>, CacheError> {
        self.db.path_info(hash)
    }

    /// Where a store path's files are on this machine.
    pub fn physical_path(&self, path: &StorePathName) -> PathBuf {
        self.root.join("nix/store").join(path.basename())
    }

    /// Re-reads which paths may be shared: returns their hashes, and answers NAR requests from
    /// their NAR hashes from now on (an unknown one without touching the database). Plans of
    /// paths no longer shared are dropped.
    pub fn refresh_shared(&self) -> Result<HashSet<StoreHash>, CacheError> {
        let shared: Vec<(StoreHash, NarHash)> = self
            .db
            .all_paths()?
            .into_iter()
            .filter(|(path, _)| self.filter.allows(path.basename()))
            .map(|(path, nar_hash)| (path.hash(), nar_hash))
            .collect();
        // Paths with the same contents have the same NAR: any one of them serves it.
        let nars: NarIndex = shared.iter().map(|&(hash, nar)| (nar, hash)).collect();
        let hashes = shared.into_iter().map(|(hash, _)| hash).collect();
        self.plans.retain(|nar_hash| nars.contains_key(nar_hash));
        if let Ok(mut shared) = self.shared_nars.write() {
            *shared = Some(Arc::new(nars));
        }
        Ok(hashes)
    }

    /// Changes whenever paths are added to or removed from the store.
    pub fn generation(&self) -> Result<(i64, i64), CacheError> {
        self.db.generation()
    }

    /// The narinfo of a path that may be shared, signed when a key is set.
    pub fn shared_narinfo(&self, hash: StoreHash) -> Result<Option<NarInfo>, CacheError> {
        let Some(info) = self.shared_path_info(hash)? else {
            return Ok(None);
        };
        self.remember_nar(info.nar_hash, hash);
        Ok(Some(self.narinfo_of(info)))
    }

    /// Adds this node's signature to a narinfo from elsewhere, when a key is set.
    pub fn add_own_signature(&self, narinfo: &mut NarInfo) {
        let Some(signer) = &self.signer else {
            return;
        };
        let info = PathInfo {
            path: narinfo.store_path.clone(),
            nar_hash: narinfo.nar_hash,
            nar_size: narinfo.nar_size,
            deriver: narinfo.deriver.clone(),
            references: narinfo.references.clone(),
            sigs: Vec::new(),
            ca: narinfo.ca.clone(),
        };
        signer.add_signature(&info, &mut narinfo.sigs);
    }

    /// Makes sure a NAR request for `nar_hash` finds `hash`, even before the next refresh.
    fn remember_nar(&self, nar_hash: NarHash, hash: StoreHash) {
        if self.shared_nar(&nar_hash) == Some(Some(hash)) {
            return;
        }
        if let Ok(mut recent) = self.recent_nars.lock() {
            if recent.len() >= RECENT_NARS_CAP {
                recent.clear();
            }
            recent.insert(nar_hash, hash);
        }
    }

    /// What the last refresh found for `nar_hash`; `None` before the first refresh.
    fn shared_nar(&self, nar_hash: &NarHash) -> Option<Option<StoreHash>> {
        let shared = self.shared_nars.read().ok()?;
        shared.as_ref().map(|nars| nars.get(nar_hash).copied())
    }

    /// The path whose NAR has this hash, if it may be shared (the database is checked by the
    /// caller): from memory once the store was read.
    pub fn path_of_nar(&self, nar_hash: NarHash) -> Result<Option<StoreHash>, CacheError> {
        let recent = self
            .recent_nars
            .lock()
            .ok()
            .and_then(|r| r.get(&nar_hash).copied());
        if recent.is_some() {
            return Ok(recent);
        }
        match self.shared_nar(&nar_hash) {
            Some(found) => Ok(found),
            None => self.db.hash_of_nar(nar_hash),
        }
    }

    /// The NAR plan of the shared path `hash` if one is kept (its validity is the caller's to
    /// check, as the plan cache forgets vanished paths only at refreshes).
    pub fn kept_plan(&self, hash: &StoreHash) -> Option<Arc<NarPlan>> {
        self.plans.get_by_path(hash)
    }

    /// Lays out the NAR of the shared path `info` (walking its tree: blocking), checks its size
    /// against the database, and keeps the plan for the next requests.
    pub fn plan_nar(&self, info: &PathInfo) -> Result<Arc<NarPlan>, CacheError> {
        let plan = NarPlan::of_path(&self.physical_path(&info.path))
            .map_err(|e| CacheError::Io(io::Error::other(e)))?;
        self.keep_plan(info, plan)
    }

    fn keep_plan(&self, info: &PathInfo, plan: NarPlan) -> Result<Arc<NarPlan>, CacheError> {
        if plan.size() != info.nar_size {
            return Err(CacheError::Corrupt(format!(
                "{}: NAR is {} bytes, the database says {}",
                info.path,
                plan.size(),
                info.nar_size
            )));
        }
        let plan = Arc::new(plan);
        self.plans
            .insert(info.nar_hash, info.path.hash(), plan.clone());
        Ok(plan)
    }

    fn narinfo_of(&self, mut info: PathInfo) -> NarInfo {
        let mut sigs = std::mem::take(&mut info.sigs);
        if let Some(signer) = &self.signer {
            signer.add_signature(&info, &mut sigs);
        }
        NarInfo {
            url: format!("nar/{}.nar", info.nar_hash.to_base32()),
            compression: "none".to_owned(),
            file_hash: Some(info.nar_hash),
            file_size: Some(info.nar_size),
            store_path: info.path,
            nar_hash: info.nar_hash,
            nar_size: info.nar_size,
            references: info.references,
            deriver: info.deriver,
            system: None,
            sigs,
            ca: info.ca,
        }
    }
}

// Database reads take microseconds (an indexed lookup in a WAL-mode file), so they run on the
// async workers: handing them to a blocking pool would cost more than the query.
impl BinaryCache for LocalStore {
    fn cache_info(&self) -> CacheInfo {
        CacheInfo {
            store_dir: peerix_http::store_path::STORE_DIR.to_owned(),
            priority: self.priority,
            want_mass_query: true,
        }
    }

    async fn narinfo(&self, hash: StoreHash) -> Result<Option<NarInfo>, CacheError> {
        self.shared_narinfo(hash)
    }

    async fn nar(&self, nar_hash: NarHash) -> Result<Option<Nar>, CacheError> {
        let Some(hash) = self.path_of_nar(nar_hash)? else {
            return Ok(None);
        };
        let Some(info) = self
            .shared_path_info(hash)?
            .filter(|i| i.nar_hash == nar_hash)
        else {
            self.plans.forget(&nar_hash);
            return Ok(None);
        };
        let plan = match self.plans.get(&nar_hash) {
            Some(plan) => plan,
            None => {
                let dir = self.physical_path(&info.path);
                let plan = tokio::task::spawn_blocking(move || NarPlan::of_path(&dir))
                    .await
                    .map_err(|e| CacheError::Io(io::Error::other(e)))?
                    .map_err(|e| CacheError::Io(io::Error::other(e)))?;
                self.keep_plan(&info, plan)?
            }
        };
        Ok(Some(Nar {
            size: plan.size(),
            source: Box::new(LocalNar(plan)),
        }))
    }
}

struct LocalNar(Arc<NarPlan>);

impl NarSource for LocalNar {
    fn stream(self: Box<Self>, start: u64, end: u64) -> ByteStream {
        let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(NAR_CHUNKS_IN_FLIGHT);
        let plan = self.0;
        tokio::task::spawn_blocking(move || {
            let sent = plan.read_range(start, end, NAR_CHUNK, |chunk| {
                tx.blocking_send(Ok(chunk)).is_ok()
            });
            if let Err(e) = sent {
                tracing::error!(error = %e, "reading NAR from the store failed");
                let _ = tx.blocking_send(Err(io::Error::other(e)));
            }
        });
        channel_stream(rx)
    }
}
