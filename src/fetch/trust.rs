//! Whether a narinfo from a peer may reach Nix, and with which fields: only those something
//! verified. A trusted signature vouches for StorePath, NarHash, NarSize and References (and a
//! CA field that reproduces the store path); the upstream cache, when it names the same NAR,
//! vouches for its own narinfo, which is passed on instead, with its signatures, and under
//! Peerix's key only when one of them is trusted too. Under `--no-verify`, peers named with
//! `--trusted-peer` pass unchecked, and never under Peerix's key.

use std::collections::HashSet;
use std::sync::Arc;

use peerix_http::NarInfo;
use peerix_node::PeerId;

use super::upstream::{Upstream, UpstreamError};
use crate::nix::ca;
use crate::nix::signing::{fingerprint, PublicKey};

/// The key of cache.nixos.org, trusted besides any `--trusted-public-key` unless
/// `--no-default-trusted-keys`.
pub const NIXOS_CACHE_KEY: &str = "cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=";
pub const NIXOS_CACHE_URL: &str = "https://cache.nixos.org";

pub struct Trust {
    pub keys: Vec<PublicKey>,
    /// Asked for the narinfo of paths no trusted key signed.
    pub upstream: Option<Arc<Upstream>>,
    /// Peers whose narinfos pass without either (`--no-verify` with `--trusted-peer`): their
    /// NarHash is still checked while streaming.
    pub unchecked_peers: HashSet<PeerId>,
    /// The name of Peerix's own key: a peer's signature under it is dropped, so that it can
    /// neither stand in for nor suppress Peerix's own.
    pub own_key_name: Option<String>,
}

/// A narinfo that may reach Nix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verified {
    /// Every field was verified: Peerix may add its own signature.
    Whole(NarInfo),
    /// The upstream cache's own narinfo for the NAR a peer named, signed by no trusted key:
    /// passed on with upstream's signatures for Nix to check, never signed by Peerix (upstream's
    /// answer alone is no verification; it may come through a proxy, or over plain HTTP).
    Upstream(NarInfo),
    /// From a peer trusted unchecked: passed on as it came, never signed by Peerix.
    Unchecked(NarInfo),
}

impl Verified {
    pub fn narinfo(&self) -> &NarInfo {
        match self {
            Self::Whole(n) | Self::Upstream(n) | Self::Unchecked(n) => n,
        }
    }

    /// The narinfo, and whether Peerix may sign it.
    pub fn into_narinfo(self) -> (NarInfo, bool) {
        match self {
            Self::Whole(n) => (n, true),
            Self::Upstream(n) | Self::Unchecked(n) => (n, false),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error("no trusted signature, and no upstream cache vouches for it")]
    Unvouched,
    #[error("the upstream cache names another NAR for this path")]
    UpstreamDiffers,
    #[error("not verified now: {0}")]
    NotNow(#[from] UpstreamError),
}

/// A refused narinfo: why, and the names of the keys its signatures carried (what `peerix why`
/// tells the operator, who may have meant to trust one of them).
#[derive(Debug, thiserror::Error)]
#[error("{reason}")]
pub struct Untrusted {
    pub reason: Refused,
    pub signed_by: Vec<String>,
}

impl Trust {
    /// What of `narinfo`, sent by `peer` (`None`: by a machine that is no Peerix node), may
    /// reach Nix.
    pub async fn verify(
        &self,
        peer: Option<PeerId>,
        mut narinfo: NarInfo,
    ) -> Result<Verified, Untrusted> {
        self.drop_own_signatures(&mut narinfo);
        if let Some(signed) = self.signed_fields(&narinfo) {
            return Ok(Verified::Whole(signed));
        }
        if peer.is_some_and(|p| self.unchecked_peers.contains(&p)) {
            return Ok(Verified::Unchecked(narinfo));
        }
        self.vouched_upstream(&narinfo)
            .await
            .map_err(|reason| Untrusted {
                reason,
                signed_by: key_names(&narinfo),
            })
    }

    /// Upstream's narinfo for the same NAR as `narinfo`, which no trusted key signed.
    async fn vouched_upstream(&self, narinfo: &NarInfo) -> Result<Verified, Refused> {
        let upstream = self.upstream.as_ref().ok_or(Refused::Unvouched)?;
        let Some(mut theirs) = upstream.narinfo(narinfo.store_path.hash()).await? else {
            return Err(Refused::Unvouched);
        };
        if theirs.store_path != narinfo.store_path
            || theirs.nar_hash != narinfo.nar_hash
            || theirs.nar_size != narinfo.nar_size
        {
            return Err(Refused::UpstreamDiffers);
        }
        self.drop_own_signatures(&mut theirs);
        Ok(match self.signed_fields(&theirs) {
            Some(signed) => Verified::Whole(signed),
            None => Verified::Upstream(theirs),
        })
    }

    /// Removes signatures under Peerix's own key's name: only Peerix itself signs with it.
    pub fn drop_own_signatures(&self, narinfo: &mut NarInfo) {
        if let Some(name) = &self.own_key_name {
            narinfo
                .sigs
                .retain(|sig| sig.split_once(':').is_none_or(|(n, _)| n != name));
        }
    }

    /// The fields a trusted signature on `narinfo` covers, with only the signatures that
    /// verified, if any did.
    fn signed_fields(&self, narinfo: &NarInfo) -> Option<NarInfo> {
        let fp = fingerprint(
            &narinfo.store_path,
            &narinfo.nar_hash,
            narinfo.nar_size,
            &narinfo.references,
        );
        let sigs: Vec<String> = narinfo
            .sigs
            .iter()
            .filter(|sig| self.keys.iter().any(|key| key.verify(&fp, sig)))
            .cloned()
            .collect();
        if sigs.is_empty() {
            return None;
        }
        let ca = narinfo
            .ca
            .clone()
            .filter(|ca| ca::reproduces(ca, &narinfo.store_path, &narinfo.references));
        Some(NarInfo {
            store_path: narinfo.store_path.clone(),
            url: narinfo.url.clone(),
            compression: narinfo.compression.clone(),
            file_hash: None,
            file_size: None,
            nar_hash: narinfo.nar_hash,
            nar_size: narinfo.nar_size,
            references: narinfo.references.clone(),
            deriver: None,
            system: None,
            sigs,
            ca,
        })
    }
}

/// Key names kept per refused narinfo, and characters per name: they are the peer's words,
/// remembered for thousands of refusals.
const KEPT_KEY_NAMES: usize = 4;
const KEPT_KEY_NAME_CHARS: usize = 64;

/// The key name of each signature (the text before its `:`), the first few and shortened.
fn key_names(narinfo: &NarInfo) -> Vec<String> {
    narinfo
        .sigs
        .iter()
        .filter_map(|sig| sig.split_once(':'))
        .take(KEPT_KEY_NAMES)
        .map(|(name, _)| name.chars().take(KEPT_KEY_NAME_CHARS).collect())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nix::signing::SecretKey;
    use peerix_http::{NarHash, StorePathName};

    fn narinfo() -> NarInfo {
        NarInfo {
            store_path: StorePathName::parse("7rjj86a15146cq1d3fmbmhdcd6lkb5ln-hello-2.12")
                .unwrap(),
            url: "nar/x.nar".to_owned(),
            compression: "none".to_owned(),
            file_hash: None,
            file_size: None,
            nar_hash: NarHash([3; 32]),
            nar_size: 120,
            references: vec![],
            deriver: Some(StorePathName::parse("8rjj86a15146cq1d3fmbmhdcd6lkb5ln-x.drv").unwrap()),
            system: Some("x86_64-linux".to_owned()),
            sigs: vec![],
            ca: Some(
                "fixed:r:sha256:1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s".to_owned(),
            ),
        }
    }

    fn trusting(keys: Vec<PublicKey>) -> Trust {
        Trust {
            keys,
            upstream: None,
            unchecked_peers: HashSet::new(),
            own_key_name: Some("ours-1".to_owned()),
        }
    }

    #[tokio::test]
    async fn only_trusted_signatures_count_and_only_for_what_they_cover() {
        let ours = SecretKey::generate("ours-1").unwrap();
        let upstream = SecretKey::generate("upstream-1").unwrap();
        let stranger = SecretKey::generate("stranger-1").unwrap();
        let trust = trusting(vec![upstream.public(), ours.public()]);
        let peer = PeerId::random();
        let mut info = narinfo();
        assert!(trust.verify(Some(peer), info.clone()).await.is_err());
        let fp = fingerprint(&info.store_path, &info.nar_hash, info.nar_size, &[]);
        info.sigs.push(stranger.sign(&fp));
        let refused = trust.verify(Some(peer), info.clone()).await.unwrap_err();
        assert_eq!(refused.signed_by, vec!["stranger-1".to_owned()]);
        // A signature under Peerix's own key name counts for nothing, even a real one.
        info.sigs.push(ours.sign(&fp));
        assert!(trust.verify(Some(peer), info.clone()).await.is_err());
        info.sigs.push(upstream.sign(&fp));
        let Ok(Verified::Whole(passed)) = trust.verify(Some(peer), info.clone()).await else {
            panic!("a trusted signature was refused");
        };
        assert_eq!(passed.sigs, vec![upstream.sign(&fp)]);
        // Deriver and System are not signed; this CA does not make this path.
        assert_eq!(
            (passed.deriver, passed.system, passed.ca),
            (None, None, None)
        );
        // A signature over other content does not carry over.
        info.nar_size += 1;
        assert!(trust.verify(Some(peer), info).await.is_err());
    }

    #[tokio::test]
    async fn unchecked_peers_pass_only_when_named() {
        let (named, other) = (PeerId::random(), PeerId::random());
        let mut trust = trusting(vec![]);
        trust.unchecked_peers.insert(named);
        assert!(matches!(
            trust.verify(Some(named), narinfo()).await,
            Ok(Verified::Unchecked(_))
        ));
        assert!(matches!(
            trust.verify(Some(other), narinfo()).await,
            Err(Untrusted {
                reason: Refused::Unvouched,
                ..
            })
        ));
        // A machine that is no Peerix node is never trusted unchecked.
        assert!(matches!(
            trust.verify(None, narinfo()).await,
            Err(Untrusted {
                reason: Refused::Unvouched,
                ..
            })
        ));
    }
}
