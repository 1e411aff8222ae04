//! The binary cache Nix talks to: this machine's store first, then what [`Remote`] gets from
//! others, counted by where it came from.

use std::sync::Arc;

use peerix_http::{BinaryCache, CacheError, CacheInfo, Nar, NarHash, NarInfo, StoreHash};

use super::lookups::{LookupSource, Lookups};
use super::pull_through::PullThrough;
use super::remote::Remote;
use super::served::Served;
use super::source::Source;
use crate::store::LocalStore;

pub struct P2pCache {
    local: Arc<LocalStore>,
    remote: Option<Arc<Remote>>,
    pull_through: Option<Arc<PullThrough>>,
    served: Arc<Served>,
    lookups: Arc<Lookups>,
}

impl P2pCache {
    /// `served` counts what Nix got, `lookups` where narinfos were looked for.
    pub fn new(
        local: Arc<LocalStore>,
        remote: Option<Arc<Remote>>,
        served: Arc<Served>,
        lookups: Arc<Lookups>,
    ) -> Self {
        Self {
            local,
            remote,
            pull_through: None,
            served,
            lookups,
        }
    }

    /// Asks the upstream cache last, for what no peer has (`--pull-through`).
    pub fn with_pull_through(self, pull_through: Option<Arc<PullThrough>>) -> Self {
        Self {
            pull_through,
            ..self
        }
    }

    async fn find_narinfo(&self, hash: StoreHash) -> Result<Option<(NarInfo, Source)>, CacheError> {
        let local = self.local.shared_narinfo(hash)?;
        self.lookups.record(LookupSource::Local, local.is_some());
        if let Some(found) = local {
            return Ok(Some((found, Source::Local)));
        }
        let Some(remote) = &self.remote else {
            return Ok(None);
        };
        let Some((verified, source)) = remote.narinfo(hash).await else {
            let Some(pull_through) = &self.pull_through else {
                return Ok(None);
            };
            // Upstream's narinfo as it is: Nix checks its signatures, Peerix adds none.
            let pulled = pull_through.narinfo(hash).await;
            self.lookups
                .record(LookupSource::Upstream, pulled.is_some());
            return Ok(pulled.map(|narinfo| (narinfo, Source::PullThrough)));
        };
        let (mut narinfo, whole) = verified.into_narinfo();
        // Served as this node serves its own: uncompressed, under a URL naming the content.
        narinfo.url = format!("nar/{}.nar", narinfo.nar_hash.to_base32());
        narinfo.compression = "none".to_owned();
        narinfo.file_hash = Some(narinfo.nar_hash);
        narinfo.file_size = Some(narinfo.nar_size);
        // Only over what was verified whole: never over a field a peer alone vouched for.
        if whole {
            self.local.add_own_signature(&mut narinfo);
        }
        Ok(Some((narinfo, source)))
    }

    async fn find_nar(&self, nar_hash: NarHash) -> Result<Option<(Nar, Source)>, CacheError> {
        if let Some(nar) = self.local.nar(nar_hash).await? {
            return Ok(Some((nar, Source::Local)));
        }
        if let Some(remote) = &self.remote {
            if let Some(found) = remote.nar(nar_hash).await {
                return Ok(Some(found));
            }
        }
        let pulled = || {
            let pull_through = self.pull_through.as_ref()?;
            Some((pull_through.nar(nar_hash)?, Source::PullThrough))
        };
        Ok(pulled())
    }
}

impl BinaryCache for P2pCache {
    fn cache_info(&self) -> CacheInfo {
        self.local.cache_info()
    }

    async fn narinfo(&self, hash: StoreHash) -> Result<Option<NarInfo>, CacheError> {
        let found = self.find_narinfo(hash).await?;
        Ok(found.map(|(narinfo, source)| {
            self.served.narinfo(source);
            narinfo
        }))
    }

    async fn nar(&self, nar_hash: NarHash) -> Result<Option<Nar>, CacheError> {
        let found = self.find_nar(nar_hash).await?;
        Ok(found.map(|(nar, source)| Nar {
            size: nar.size,
            source: self.served.counting(source, nar_hash, nar.source),
        }))
    }
}
