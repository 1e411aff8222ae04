//! The narinfo of a path no holder answered for, when kubo can fetch its NAR by the CID the
//! tracker maps: the upstream cache's, verified like any other.

use peerix_http::StoreHash;

use super::Remote;
use crate::fetch::refusals::RefusedFrom;
use crate::fetch::trust::Verified;
use crate::publish::RemoteNar;

impl Remote {
    /// For a path no holder answered for, whose CID the tracker maps, when kubo can fetch it:
    /// the upstream cache's narinfo (the holder's is out of reach), verified like any other, its
    /// NAR to come through kubo by that CID.
    pub(super) async fn kubo_narinfo(&self, hash: StoreHash) -> Option<Verified> {
        let (Some(tracker), Some(upstream)) = (
            self.kubo.as_ref().and(self.tracker.as_ref()),
            self.trust.upstream.as_ref(),
        ) else {
            return None;
        };
        let cid = tracker.cid(hash).await?;
        let narinfo = match upstream.narinfo(hash).await {
            Ok(narinfo) => narinfo?,
            Err(e) => {
                tracing::debug!(%hash, error = %e, "no upstream narinfo for a path kubo could fetch");
                return None;
            }
        };
        if self.cid_failed(narinfo.nar_hash, cid) {
            tracing::debug!(%hash, %cid, "the tracker maps a CID that failed");
            return None;
        }
        let verified = match self.trust.verify(None, narinfo).await {
            Ok(verified) => verified,
            Err(e) => {
                tracing::warn!(%hash, error = %e, "untrusted upstream narinfo refused");
                self.refused_narinfo(hash, RefusedFrom::Kubo, &e);
                return None;
            }
        };
        let narinfo = verified.narinfo();
        if self.filtered(RefusedFrom::Kubo, narinfo) {
            return None;
        }
        let nar = RemoteNar {
            size: narinfo.nar_size,
            path: hash,
            cid: Some(cid),
        };
        if !self.nars.record(narinfo.nar_hash, nar).await {
            return None;
        }
        self.refusals.passed(&hash);
        Some(verified)
    }
}
