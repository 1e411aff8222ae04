//! What the router needs from a cache: narinfos by store hash and NARs by NAR hash.

use std::future::Future;
use std::io;
use std::pin::Pin;

use bytes::Bytes;
use futures_util::Stream;
use thiserror::Error;

use crate::{NarHash, NarInfo, StoreHash};

pub type ByteStream = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>;

/// The chunks a producer task sends on `chunks`, as a body stream: it ends when the producer
/// drops its sender, and dropping the stream tells the producer (its sends fail).
pub fn channel_stream(chunks: tokio::sync::mpsc::Receiver<io::Result<Bytes>>) -> ByteStream {
    Box::pin(futures_util::stream::unfold(
        chunks,
        |mut chunks| async move { chunks.recv().await.map(|item| (item, chunks)) },
    ))
}

/// Failures of the cache behind the front. Details are logged, never sent to clients.
#[derive(Debug, Error)]
pub enum CacheError {
    #[error("store database: {0}")]
    Database(String),
    #[error("store I/O: {0}")]
    Io(#[from] io::Error),
    #[error("store content: {0}")]
    Corrupt(String),
}

pub struct CacheInfo {
    pub store_dir: String,
    pub priority: u32,
    pub want_mass_query: bool,
}

impl CacheInfo {
    pub fn render(&self) -> String {
        format!(
            "StoreDir: {}\nWantMassQuery: {}\nPriority: {}\n",
            self.store_dir,
            u8::from(self.want_mass_query),
            self.priority
        )
    }
}

/// Produces a NAR's bytes from any offset, so ranges cost no more than whole files.
pub trait NarSource: Send {
    /// Streams bytes `start..end` of the NAR; `end` is at most the NAR size.
    fn stream(self: Box<Self>, start: u64, end: u64) -> ByteStream;
}

pub struct Nar {
    pub size: u64,
    pub source: Box<dyn NarSource>,
}

pub trait BinaryCache: Send + Sync + 'static {
    fn cache_info(&self) -> CacheInfo;

    /// `Ok(None)` means "not here": the router answers 404 at once.
    fn narinfo(
        &self,
        hash: StoreHash,
    ) -> impl Future<Output = Result<Option<NarInfo>, CacheError>> + Send;

    fn nar(&self, hash: NarHash) -> impl Future<Output = Result<Option<Nar>, CacheError>> + Send;
}
