//! Where the embedded node reads published content back from: NARs are re-produced from the
//! store (source name `nar:<store hash>`), never copied; anything else is a file path.

use std::io;
use std::sync::Arc;

use peerix_http::StoreHash;
use peerix_node::{ContentSource, Files};

use crate::nix::nar::NarPlan;
use crate::store::LocalStore;

const NAR_PREFIX: &str = "nar:";

pub fn nar_source(hash: StoreHash) -> String {
    format!("{NAR_PREFIX}{hash}")
}

/// NAR layouts are kept by the store: a peer fetching a NAR asks for its blocks in order.
pub struct StoreContent {
    store: Arc<LocalStore>,
}

impl StoreContent {
    pub fn new(store: Arc<LocalStore>) -> Self {
        Self { store }
    }

    /// The NAR layout of a shared path, if the store still holds it.
    pub fn plan(&self, hash: StoreHash) -> io::Result<Arc<NarPlan>> {
        if let Some(plan) = self.store.kept_plan(&hash) {
            return Ok(plan);
        }
        let info = self
            .store
            .shared_path_info(hash)
            .map_err(io::Error::other)?
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("{hash} is gone")))?;
        self.store.plan_nar(&info).map_err(io::Error::other)
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
