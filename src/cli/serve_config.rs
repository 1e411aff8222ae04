//! What `peerix serve`'s flags amount to: the HTTP address, the state directory, the embedded
//! node's configuration and the trust in peers' paths, with their defaults.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

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
        let create = |dir: PathBuf| match std::fs::create_dir_all(&dir) {
            Ok(()) => Ok(dir),
            Err(source) => Err(ConfigError::StateDir { dir, source }),
        };
        let explicit = self
            .state_dir
            .clone()
            .or_else(|| std::env::var_os("STATE_DIRECTORY").map(PathBuf::from));
        if let Some(dir) = explicit {
            return create(dir);
        }
        create(PathBuf::from("/var/lib/peerix")).or_else(|_| {
            let home = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state"));
            let base = std::env::var_os("XDG_STATE_HOME")
                .map(PathBuf::from)
                .or(home);
            create(base.ok_or(ConfigError::NoStateDir)?.join("peerix"))
        })
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
        let public_peers = !self.offline && self.mode == Mode::Ipfs;
        let bootstrap_peers = if !self.node.bootstrap_peers.is_empty() || !public_peers {
            self.node.bootstrap_peers.clone()
        } else {
            peerix_node::PUBLIC_BOOTSTRAP_PEERS
                .iter()
                .filter_map(|a| a.parse().ok())
                .collect()
        };
        let identity_file = self
            .node
            .identity_file
            .clone()
            .unwrap_or_else(|| state_dir.join("identity.key"));
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
            Some(url) if url.starts_with("http://") || url.starts_with("https://") => {
                Ok(Some(url.clone()))
            }
            Some(url) => Err(ConfigError::TrackerUrl(url.clone())),
            None if self.mode.needs_tracker() => Err(ConfigError::TrackerNeeded(match self.mode {
                Mode::Wan => "wan",
                Mode::Both => "both",
                _ => "hybrid",
            })),
            None => Ok(None),
        }
    }

    /// Which peers' paths may reach Nix.
    pub fn trust(&self) -> Result<crate::fetch::Trust, ConfigError> {
        let texts = if self.trust.trusted_public_keys.is_empty() {
            vec![crate::fetch::NIXOS_CACHE_KEY.to_owned()]
        } else {
            self.trust.trusted_public_keys.clone()
        };
        let keys = texts
            .iter()
            .map(|t| {
                crate::nix::signing::PublicKey::parse(t.trim()).map_err(|source| {
                    ConfigError::TrustedKey {
                        text: t.clone(),
                        source,
                    }
                })
            })
            .collect::<Result<_, _>>()?;
        // One given explicitly is used offline too: it was asked for.
        let upstream = match &self.trust.upstream_cache {
            Some(url) => (!url.is_empty()).then(|| url.clone()),
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
            upstream: upstream.as_deref().map(crate::fetch::Upstream::new),
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
