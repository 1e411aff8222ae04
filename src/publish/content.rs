//! Where the embedded node reads published content back from: NARs are re-produced from the
//! store (source name `nar:<store hash>`), never copied; anything else is a file path.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex};

use peerix_http::StoreHash;
use peerix_node::{ContentSource, Files};

use crate::nix::nar::NarPlan;
use crate::store::LocalStore;

/// NAR layouts kept for reuse: a peer fetching a NAR asks for its blocks in order.
const PLANS_KEPT: usize = 32;
const NAR_PREFIX: &str = "nar:";

pub fn nar_source(hash: StoreHash) -> String {
    format!("{NAR_PREFIX}{hash}")
}

pub struct StoreContent {
    store: Arc<LocalStore>,
    plans: Mutex<HashMap<StoreHash, Arc<NarPlan>>>,
}

impl StoreContent {
    pub fn new(store: Arc<LocalStore>) -> Self {
        Self {
            store,
            plans: Mutex::new(HashMap::new()),
        }
    }

    /// The NAR layout of a shared path, if the store still holds it.
    pub fn plan(&self, hash: StoreHash) -> io::Result<Arc<NarPlan>> {
        if let Some(plan) = self.plans.lock().ok().and_then(|p| p.get(&hash).cloned()) {
            return Ok(plan);
        }
        let info = self
            .store
            .shared_path_info(hash)
            .map_err(io::Error::other)?
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("{hash} is gone")))?;
        let plan = NarPlan::of_path(&self.store.physical_path(&info.path))
            .map(Arc::new)
            .map_err(io::Error::other)?;
        if let Ok(mut plans) = self.plans.lock() {
            if plans.len() >= PLANS_KEPT {
                plans.clear();
            }
            plans.insert(hash, plan.clone());
        }
        Ok(plan)
    }

    /// Drops the layouts of paths that are no longer shared: their blocks must not be
    /// re-produced from a layout read while they were.
    pub fn forget(&self, hashes: &[StoreHash]) {
        if let Ok(mut plans) = self.plans.lock() {
            for hash in hashes {
                plans.remove(hash);
            }
        }
    }
}

impl ContentSource for StoreContent {
    fn read_at(&self, source: &str, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let Some(hash) = source.strip_prefix(NAR_PREFIX) else {
            return Files.read_at(source, offset, buf);
        };
        let hash = StoreHash::parse(hash).map_err(io::Error::other)?;
        let n = self
            .plan(hash)?
            .read_at(offset, buf)
            .map_err(io::Error::other)?;
        if n < buf.len() {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        Ok(())
    }
}
