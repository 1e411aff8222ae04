//! The local Nix store as a binary cache: path info from its database, NARs from its files.

mod db;
mod signer;
mod sqlite;
mod watch;

use std::collections::{HashMap, HashSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use peerix_http::{
    BinaryCache, ByteStream, CacheError, CacheInfo, Nar, NarHash, NarInfo, NarSource, StoreHash,
    StorePathName,
};

pub use db::{PathInfo, StoreDb};
pub use signer::CachingSigner;
pub use watch::{watch_store, SharedPaths};

use crate::filter::PathFilter;
use crate::nix::nar::NarPlan;

/// Bytes per body chunk: large enough for page-cache speed, small enough to keep memory flat.
const NAR_CHUNK: usize = 256 * 1024;
/// Chunks buffered between the reading thread and the socket.
const NAR_CHUNKS_IN_FLIGHT: usize = 4;
/// Bound on remembered NAR-hash -> store-hash answers (about 100 bytes each).
const NAR_INDEX_CAP: usize = 1 << 20;

pub struct LocalStore {
    root: PathBuf,
    db: StoreDb,
    filter: PathFilter,
    signer: Option<CachingSigner>,
    priority: u32,
    /// NAR URLs name NAR hashes, which the database does not index; narinfo answers fill this.
    nar_index: Mutex<HashMap<NarHash, StoreHash>>,
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
            nar_index: Mutex::new(HashMap::new()),
        }
    }

    /// Path info of a path that may be shared: filtered paths do not exist for callers.
    pub fn shared_path_info(&self, hash: StoreHash) -> Result<Option<PathInfo>, CacheError> {
        Ok(self
            .db
            .path_info(hash)?
            .filter(|info| self.filter.allows(info.path.basename())))
    }

    /// Where a store path's files are on this machine.
    pub fn physical_path(&self, path: &StorePathName) -> PathBuf {
        self.root.join("nix/store").join(path.basename())
    }

    /// The hashes of every path that may be shared.
    pub fn shared_hashes(&self) -> Result<HashSet<StoreHash>, CacheError> {
        Ok(self
            .db
            .all_paths()?
            .into_iter()
            .filter(|p| self.filter.allows(p.basename()))
            .map(|p| p.hash())
            .collect())
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

    fn remember_nar(&self, nar_hash: NarHash, hash: StoreHash) {
        if let Ok(mut index) = self.nar_index.lock() {
            if index.len() >= NAR_INDEX_CAP {
                index.clear();
            }
            index.insert(nar_hash, hash);
        }
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
        let known = self
            .nar_index
            .lock()
            .ok()
            .and_then(|i| i.get(&nar_hash).copied());
        let Some(hash) = known.map_or_else(|| self.db.hash_of_nar(nar_hash), |h| Ok(Some(h)))?
        else {
            return Ok(None);
        };
        let Some(info) = self
            .shared_path_info(hash)?
            .filter(|i| i.nar_hash == nar_hash)
        else {
            return Ok(None);
        };
        self.remember_nar(nar_hash, hash);
        let dir = self.physical_path(&info.path);
        let plan = tokio::task::spawn_blocking(move || NarPlan::of_path(&dir))
            .await
            .map_err(|e| CacheError::Io(io::Error::other(e)))?
            .map_err(|e| CacheError::Io(io::Error::other(e)))?;
        if plan.size() != info.nar_size {
            return Err(CacheError::Corrupt(format!(
                "{}: NAR is {} bytes, the database says {}",
                info.path,
                plan.size(),
                info.nar_size
            )));
        }
        Ok(Some(Nar {
            size: plan.size(),
            source: Box::new(LocalNar(Arc::new(plan))),
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
        Box::pin(futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        }))
    }
}
