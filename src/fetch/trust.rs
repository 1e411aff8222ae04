//! Whether a narinfo from a peer may reach Nix: it must carry a signature by a trusted key, or
//! name the same NAR as the upstream cache does for that path.

use peerix_http::NarInfo;

use crate::nix::signing::{fingerprint, PublicKey};

/// The key of cache.nixos.org, trusted unless `--trusted-public-key` says otherwise.
pub const NIXOS_CACHE_KEY: &str = "cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=";
pub const NIXOS_CACHE_URL: &str = "https://cache.nixos.org";

pub struct Trust {
    pub keys: Vec<PublicKey>,
    /// Asked for the narinfo of paths no trusted key signed.
    pub upstream: Option<String>,
    /// Accept every narinfo (`--no-verify`): NarHash is still checked while streaming.
    pub anything: bool,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Trusted,
    /// No trusted signature: acceptable only if upstream names the same NAR.
    AskUpstream(String),
    Refused,
}

impl Trust {
    pub fn judge(&self, narinfo: &NarInfo) -> Verdict {
        if self.anything || self.signed(narinfo) {
            return Verdict::Trusted;
        }
        match &self.upstream {
            Some(url) => Verdict::AskUpstream(format!(
                "{}/{}.narinfo",
                url.trim_end_matches('/'),
                narinfo.store_path.hash()
            )),
            None => Verdict::Refused,
        }
    }

    fn signed(&self, narinfo: &NarInfo) -> bool {
        let fp = fingerprint(
            &narinfo.store_path,
            &narinfo.nar_hash,
            narinfo.nar_size,
            &narinfo.references,
        );
        narinfo
            .sigs
            .iter()
            .any(|sig| self.keys.iter().any(|key| key.verify(&fp, sig)))
    }
}

/// Asks the upstream cache whether it knows `narinfo`'s path with the same NAR (blocking).
pub fn upstream_agrees(url: &str, narinfo: &NarInfo) -> bool {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(std::time::Duration::from_secs(10)))
        .build()
        .into();
    let Ok(mut response) = agent.get(url).call() else {
        return false;
    };
    let Ok(text) = response
        .body_mut()
        .with_config()
        .limit(1 << 20)
        .read_to_string()
    else {
        return false;
    };
    NarInfo::parse(&text).is_ok_and(|upstream| {
        upstream.store_path == narinfo.store_path
            && upstream.nar_hash == narinfo.nar_hash
            && upstream.nar_size == narinfo.nar_size
    })
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
            deriver: None,
            system: None,
            sigs: vec![],
            ca: None,
        }
    }

    #[test]
    fn only_trusted_signatures_count() {
        let ours = SecretKey::generate("ours-1").unwrap();
        let stranger = SecretKey::generate("stranger-1").unwrap();
        let trust = Trust {
            keys: vec![ours.public()],
            upstream: None,
            anything: false,
        };
        let mut info = narinfo();
        assert_eq!(trust.judge(&info), Verdict::Refused);
        let fp = fingerprint(&info.store_path, &info.nar_hash, info.nar_size, &[]);
        info.sigs.push(stranger.sign(&fp));
        assert_eq!(trust.judge(&info), Verdict::Refused);
        info.sigs.push(ours.sign(&fp));
        assert_eq!(trust.judge(&info), Verdict::Trusted);
        // A signature over other content does not carry over.
        info.nar_size += 1;
        assert_eq!(trust.judge(&info), Verdict::Refused);
    }

    #[test]
    fn unsigned_paths_go_upstream_or_nowhere() {
        let upstream = Trust {
            keys: vec![],
            upstream: Some("http://127.0.0.1:1/".to_owned()),
            anything: false,
        };
        assert_eq!(
            upstream.judge(&narinfo()),
            Verdict::AskUpstream(
                "http://127.0.0.1:1/7rjj86a15146cq1d3fmbmhdcd6lkb5ln.narinfo".to_owned()
            )
        );
        let open = Trust {
            keys: vec![],
            upstream: None,
            anything: true,
        };
        assert_eq!(open.judge(&narinfo()), Verdict::Trusted);
    }
}
