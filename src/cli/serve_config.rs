//! What `peerix serve`'s flags amount to: the HTTP address, the state directory, the embedded
//! node's configuration and the trust in peers' paths, with their defaults.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use super::{ConfigError, Mode, ServeArgs};

impl ServeArgs {
    pub fn listen_addr(&self) -> Result<SocketAddr, ConfigError> {
        if let Ok(addr) = self.listen.parse::<SocketAddr>() {
            return Ok(addr);
        }
        let ip = self
            .listen
            .trim_matches(|c| c == '[' || c == ']')
            .parse::<IpAddr>()
            .map_err(|_| ConfigError::ListenAddress(self.listen.clone()))?;
        Ok(SocketAddr::new(ip, self.port))
    }

    /// Creates and returns the state directory (see `--state-dir`).
    pub fn state_dir(&self) -> Result<PathBuf, ConfigError> {
        self.choose_state_dir(|dir| {
            std::fs::create_dir_all(dir)?;
            crate::fs_access::writable_dir(dir)
        })
    }

    /// The state directory [`Self::state_dir`] would settle on, found creatable or writable
    /// without creating it.
    pub fn check_state_dir(&self) -> Result<PathBuf, ConfigError> {
        self.choose_state_dir(crate::fs_access::creatable_dir)
    }

    /// The first state directory `usable` accepts, in `--state-dir`'s order of defaults.
    fn choose_state_dir(
        &self,
        usable: impl Fn(&Path) -> std::io::Result<()>,
    ) -> Result<PathBuf, ConfigError> {
        let accept = |dir: PathBuf| match usable(&dir) {
            Ok(()) => Ok(dir),
            Err(source) => Err(ConfigError::StateDir { dir, source }),
        };
        let explicit = self
            .state_dir
            .clone()
            .or_else(|| std::env::var_os("STATE_DIRECTORY").map(PathBuf::from));
        if let Some(dir) = explicit {
            return accept(dir);
        }
        accept(PathBuf::from("/var/lib/peerix")).or_else(|_| {
            let home = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state"));
            let base = std::env::var_os("XDG_STATE_HOME")
                .map(PathBuf::from)
                .or(home);
            accept(base.ok_or(ConfigError::NoStateDir)?.join("peerix"))
        })
    }

    /// The node's identity file, which it reads, or creates when missing, at start.
    pub fn check_identity_file(&self, file: &Path) -> Result<(), ConfigError> {
        let usable = match (file.exists(), file.parent()) {
            (true, _) => std::fs::File::open(file).map(drop),
            // The default one is in the state dir, which a start creates first.
            (false, Some(dir)) => crate::fs_access::creatable_dir(dir),
            (false, None) => crate::fs_access::creatable_dir(Path::new(".")),
        };
        usable.map_err(|source| ConfigError::IdentityFile {
            file: file.to_owned(),
            source,
        })
    }

    /// The node's identity file: `--identity-file`, else in the state dir.
    pub fn identity_file(&self, state_dir: &Path) -> PathBuf {
        self.node
            .identity_file
            .clone()
            .unwrap_or_else(|| state_dir.join("identity.key"))
    }

    /// The embedded node's configuration, from the flags and their defaults.
    pub fn node_config(
        &self,
        state_dir: &std::path::Path,
    ) -> Result<peerix_node::NodeConfig, ConfigError> {
        let port = if self.port == 0 {
            0
        } else {
            self.port.saturating_add(1000)
        };
        let listen_addrs = if self.node.listen_addrs.is_empty() {
            let mut defaults = vec![format!("/ip4/0.0.0.0/tcp/{port}")];
            if self.node.connections.quic {
                defaults.push(format!("/ip4/0.0.0.0/udp/{port}/quic-v1"));
            }
            defaults
                .iter()
                .map(|a| {
                    a.parse().map_err(|source| ConfigError::ListenMultiaddr {
                        text: a.clone(),
                        source,
                    })
                })
                .collect::<Result<_, _>>()?
        } else {
            self.node.listen_addrs.clone()
        };
        // The public bootstrap peers serve the public DHT alone: not without it.
        let public_peers = !self.offline
            && self.mode == Mode::Ipfs
            && self.node.connections.dht_mode != super::peer_connections::DhtMode::Off;
        let bootstrap_peers = if !self.node.bootstrap_peers.is_empty() || !public_peers {
            self.node.bootstrap_peers.clone()
        } else {
            peerix_node::PUBLIC_BOOTSTRAP_PEERS
                .iter()
                .filter_map(|a| a.parse().ok())
                .collect()
        };
        let identity_file = self.identity_file(state_dir);
        let mut config = peerix_node::NodeConfig {
            identity_file,
            bootstrap_peers,
            network_id: self.node.network_id.clone(),
            mdns: !self.offline && self.mode.finds_peers_itself(),
            public_dht: !self.offline && self.mode == Mode::Ipfs,
            // The peer book may hold internet peers of an earlier mode; mDNS finds the LAN's.
            redial_known_peers: !self.offline && self.mode != Mode::Lan,
            bandwidth_limit: self.node.bandwidth_limit,
            announce_rate: (self.announce_rate > 0.0).then_some(self.announce_rate),
            ..peerix_node::NodeConfig::offline(state_dir.to_owned(), listen_addrs)
        };
        self.node.reachability.apply(&mut config)?;
        self.node.connections.apply(&mut config)?;
        Ok(config)
    }

    /// The tracker to use, if any: given explicitly, it is used with `--offline` too.
    pub fn tracker_url(&self) -> Result<Option<String>, ConfigError> {
        match &self.tracker_url {
            Some(_) if self.mode == Mode::Lan => Err(ConfigError::TrackerInLan),
            Some(url) => http_url("--tracker-url", url).map(Some),
            None if self.mode.needs_tracker() => Err(ConfigError::TrackerNeeded(match self.mode {
                Mode::Wan => "wan",
                Mode::Both => "both",
                _ => "hybrid",
            })),
            None => Ok(None),
        }
    }

    /// `--bootstrap-url`, checked.
    pub fn bootstrap_url(&self) -> Result<Option<String>, ConfigError> {
        let url = self.node.bootstrap_url.as_deref();
        url.map(|url| http_url("--bootstrap-url", url)).transpose()
    }

    /// `--ipfs-api`, checked.
    pub fn ipfs_api(&self) -> Result<Option<String>, ConfigError> {
        let url = self.node.ipfs_api.as_deref();
        url.map(|url| http_url("--ipfs-api", url)).transpose()
    }

    /// Which peers' paths may reach Nix.
    pub fn trust(&self) -> Result<crate::fetch::Trust, ConfigError> {
        // The keys given are trusted besides the default one, unless that is refused.
        let defaults = match self.trust.no_default_trusted_keys {
            true => None,
            false => Some(crate::fetch::NIXOS_CACHE_KEY),
        };
        let texts = defaults
            .into_iter()
            .chain(self.trust.trusted_public_keys.iter().map(String::as_str));
        let mut keys = Vec::new();
        for text in texts {
            let key = crate::nix::signing::PublicKey::parse(text.trim()).map_err(|source| {
                ConfigError::TrustedKey {
                    text: text.to_owned(),
                    source,
                }
            })?;
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
        // One given explicitly is used offline too: it was asked for.
        let upstream = match self.trust.upstream_cache.as_deref() {
            Some("") => None,
            Some(url) => Some(http_url("--upstream-cache", url)?),
            None => (!self.offline).then(|| crate::fetch::NIXOS_CACHE_URL.to_owned()),
        };
        if self.trust.no_verify && self.trust.trusted_peers.is_empty() {
            tracing::warn!("--no-verify without --trusted-peer lets no unverified path through");
        }
        let unchecked_peers = match self.trust.no_verify {
            true => self.trust.trusted_peers.iter().copied().collect(),
            false => Default::default(),
        };
        Ok(crate::fetch::Trust {
            keys,
            upstream: upstream
                .as_deref()
                .map(|url| std::sync::Arc::new(crate::fetch::Upstream::new(url))),
            unchecked_peers,
            own_key_name: None,
        })
    }

    /// `--private-key`, else the NIX_SECRET_KEY_FILE convention.
    pub fn private_key_file(&self) -> Option<PathBuf> {
        self.private_key
            .clone()
            .or_else(|| std::env::var_os("NIX_SECRET_KEY_FILE").map(PathBuf::from))
    }
}

/// `text`, when it is an http:// or https:// URL with a host.
fn http_url(flag: &'static str, text: &str) -> Result<String, ConfigError> {
    let uri = text.parse::<axum::http::Uri>().ok();
    let web = uri.as_ref().is_some_and(|uri| {
        matches!(uri.scheme_str(), Some("http" | "https"))
            && uri.host().is_some_and(|host| !host.is_empty())
    });
    match web {
        true => Ok(text.to_owned()),
        false => Err(ConfigError::Url {
            flag,
            text: text.to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {

    use crate::cli::{parse_serve as serve, ConfigError};
    use crate::fetch::NIXOS_CACHE_KEY;

    fn key_names(args: &[&str]) -> Vec<String> {
        let trust = serve(args).trust().unwrap();
        trust.keys.iter().map(|k| k.name().to_owned()).collect()
    }

    // A valid point under another name: a key of its own to Peerix.
    const OWN_KEY: &str = "own-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=";

    #[test]
    fn keys_given_are_trusted_besides_the_default_one() {
        assert_eq!(key_names(&[]), ["cache.nixos.org-1"]);
        let given = ["--trusted-public-key", OWN_KEY];
        assert_eq!(key_names(&given), ["cache.nixos.org-1", "own-1"]);
        // Naming the default key again trusts it once.
        let again = [
            "--trusted-public-key",
            NIXOS_CACHE_KEY,
            "--trusted-public-key",
            OWN_KEY,
        ];
        assert_eq!(key_names(&again), ["cache.nixos.org-1", "own-1"]);
        let only_own = ["--no-default-trusted-keys", "--trusted-public-key", OWN_KEY];
        assert_eq!(key_names(&only_own), ["own-1"]);
        assert!(key_names(&["--no-default-trusted-keys"]).is_empty());
        let bad = serve(&["--trusted-public-key", "own-1:short"]).trust();
        assert!(matches!(bad, Err(ConfigError::TrustedKey { .. })));
    }

    /// A narinfo as cache.nixos.org publishes it, with its real signature.
    const NIXOS_SIGNED: &str = "StorePath: /nix/store/syd87l2rxw8cbsxmxl853h0r6pdwhwjr-curl-7.82.0-bin
URL: nar/05ra3y72i3qjri7xskf9qj8kb29r6naqy1sqpbs3azi3xcigmj56.nar.xz
Compression: xz
FileHash: sha256:05ra3y72i3qjri7xskf9qj8kb29r6naqy1sqpbs3azi3xcigmj56
FileSize: 68852
NarHash: sha256:1b4sb93wp679q4zx9k1ignby1yna3z7c4c2ri3wphylbc2dwsys0
NarSize: 196040
References: 0jqd0rlxzra1rs38rdxl43yh6rxchgc6-curl-7.82.0 6w8g7njm4mck5dmjxws0z1xnrxvl81xa-glibc-2.34-115 j5jxw3iy7bbz4a57fh9g2xm2gxmyal8h-zlib-1.2.12 yxvjs9drzsphm9pcf42a4byzj1kb9m7k-openssl-1.1.1n
Deriver: 5rwxzi7pal3qhpsyfc16gzkh939q1np6-curl-7.82.0.drv
Sig: cache.nixos.org-1:TsTTb3WGTZKphvYdBHXwo6weVILmTytUjLB+vcX89fOjjRicCHmKA4RCPMVLkj6TMJ4GMX3HPVWRdD1hkeKZBQ==
";

    #[tokio::test]
    async fn a_cache_nixos_org_path_still_passes_when_the_user_s_own_key_is_trusted() {
        let narinfo = peerix_http::NarInfo::parse(NIXOS_SIGNED).unwrap();
        let no_upstream = ["--upstream-cache", ""];
        let with_own = [&no_upstream[..], &["--trusted-public-key", OWN_KEY]].concat();
        let trust = serve(&with_own).trust().unwrap();
        let passed = trust.verify(None, narinfo.clone()).await.unwrap();
        assert_eq!(passed.narinfo().sigs, narinfo.sigs);
        // Only the user's own key: cache.nixos.org's signature no longer counts.
        let only_own = [&with_own[..], &["--no-default-trusted-keys"]].concat();
        let trust = serve(&only_own).trust().unwrap();
        let refused = trust.verify(None, narinfo).await.unwrap_err();
        assert_eq!(refused.signed_by, ["cache.nixos.org-1"]);
    }

    #[test]
    fn no_public_dht_means_no_public_bootstrap_peers() {
        let state = std::env::temp_dir();
        let config = serve(&[]).node_config(&state).unwrap();
        assert!(config.public_dht && !config.bootstrap_peers.is_empty());
        let config = serve(&["--dht-mode", "off"]).node_config(&state).unwrap();
        assert!(!config.public_dht && config.bootstrap_peers.is_empty());
    }

    #[test]
    fn urls_need_a_web_scheme_and_a_host() {
        for good in ["http://t:12305", "https://tracker.example.org/base"] {
            assert!(super::http_url("--x", good).is_ok(), "{good}");
        }
        for bad in ["t:12305", "ftp://t", "http://", "http//t", ""] {
            let err = super::http_url("--x", bad).unwrap_err();
            assert!(err.to_string().starts_with("--x "), "{bad}: {err}");
        }
        let upstream = serve(&["--upstream-cache", "cache.nixos.org"]).trust();
        assert!(matches!(
            upstream,
            Err(ConfigError::Url {
                flag: "--upstream-cache",
                ..
            })
        ));
        assert!(serve(&["--upstream-cache", ""])
            .trust()
            .unwrap()
            .upstream
            .is_none());
        let bootstrap = serve(&["--bootstrap-url", "peer:12304/bootstrap"]).bootstrap_url();
        assert!(matches!(
            bootstrap,
            Err(ConfigError::Url {
                flag: "--bootstrap-url",
                ..
            })
        ));
        let api = serve(&["--ipfs-api", "http://127.0.0.1:5001"]).ipfs_api();
        assert_eq!(api.unwrap().as_deref(), Some("http://127.0.0.1:5001"));
    }
}
