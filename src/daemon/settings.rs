//! What `peerix serve`'s flags amount to, checked before anything starts.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use peerix_http::{BrowserGuard, ServerLimits};
use peerix_node::NodeConfig;

use super::StartError;
use crate::cli::{ConfigError, LanSettings, ServeArgs};
use crate::fetch::Trust;
use crate::filter::PathFilter;
use crate::nix::signing::SecretKey;
use crate::store::{CachingSigner, LocalStore, StoreDb};

/// What [`Settings::from_args`] is for: a start creates the state directory; `--check-config`
/// only finds it usable, and writes nothing.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Start,
    Check,
}

pub struct Settings {
    pub http_addr: SocketAddr,
    pub store_root: PathBuf,
    pub server_limits: ServerLimits,
    pub guard: BrowserGuard,
    pub max_add_size: u64,
    pub state_dir: PathBuf,
    pub store: Arc<LocalStore>,
    pub filter: PathFilter,
    /// The embedded node's configuration; `None` with `--no-embedded-node`.
    pub node: Option<NodeConfig>,
    /// The node's identity, which signs the tracker's writes also without the node.
    pub identity_file: PathBuf,
    pub network_id: String,
    /// `--mode`, for `/status`.
    pub mode: &'static str,
    /// Whether the node finds peers itself (DHT rendezvous), not only through the tracker.
    pub rendezvous: bool,
    pub tracker_url: Option<String>,
    /// The old LAN protocol (`--mode lan`, `both`).
    pub lan: Option<LanSettings>,
    pub bootstrap_url: Option<String>,
    pub ipfs_api: Option<String>,
    /// Bytes of NARs fetched from peers kept on disk; 0 keeps none.
    pub cache_size: u64,
    /// Paths no peer holds come through from the upstream cache (`--pull-through`).
    pub pull_through: bool,
    /// Between full publication scans; `None` scans only at start and on changes.
    pub scan_interval: Option<Duration>,
    /// `--offline`: having no peer is expected.
    pub offline: bool,
}

impl Settings {
    /// The settings, and which peers' paths may reach Nix (for the peering alone: it keeps the
    /// upstream cache's answers).
    pub fn from_args(args: ServeArgs, purpose: Purpose) -> Result<(Self, Trust), StartError> {
        let http_addr = args.listen_addr()?;
        let signer = load_signer(&args)?;
        let filter = PathFilter::new(
            !args.filter.no_filter,
            !args.filter.no_default_filters,
            &args.filter.patterns,
        )?;
        let state_dir = match purpose {
            Purpose::Start => args.state_dir()?,
            Purpose::Check => args.check_state_dir()?,
        };
        let tracker_url = args.tracker_url()?;
        let bootstrap_url = args.bootstrap_url()?;
        let ipfs_api = args.ipfs_api()?;
        tracing::info!(
            %http_addr,
            store_root = %args.store_root.display(),
            state_dir = %state_dir.display(),
            signing = signer.as_ref().map(|k| k.name()),
            filter_patterns = filter.pattern_count(),
            offline = args.offline,
            "starting"
        );
        let node = match args.node.no_embedded_node {
            true => None,
            false => Some(NodeConfig {
                app_protocols: crate::wire::protocols(&args.node.network_id, args.pull_through),
                // The scan first withdraws paths collected or filtered since the last run.
                announce_provided_at_start: false,
                ..args.node_config(&state_dir)?
            }),
        };
        let identity_file = args.identity_file(&state_dir);
        if purpose == Purpose::Check {
            args.check_identity_file(&identity_file)?;
        }
        let trust = Trust {
            own_key_name: signer.as_ref().map(|k| k.name().to_owned()),
            ..args.trust()?
        };
        if args.pull_through && args.node.no_embedded_node {
            return Err(ConfigError::PullThroughWithoutNode.into());
        }
        if args.pull_through && trust.upstream.is_none() {
            return Err(ConfigError::PullThroughWithoutUpstream.into());
        }
        let database = StoreDb::file(&args.store_root);
        if !database.exists() {
            // Not an error: Nix creates it with the first path. Said once, here.
            tracing::warn!(
                "no Nix database at {}: nothing is shared until Nix creates it (is --store-root right?)",
                database.display()
            );
        }
        let store = Arc::new(LocalStore::new(
            &args.store_root,
            filter.clone(),
            signer.map(CachingSigner::new),
            args.priority,
        ));
        let lan = args.lan_settings();
        let settings = Self {
            http_addr,
            store_root: args.store_root,
            server_limits: args.http.server_limits(),
            guard: BrowserGuard::new(&args.http.allowed_hosts),
            max_add_size: args.http.max_add_size,
            state_dir,
            store,
            filter,
            node,
            identity_file,
            network_id: args.node.network_id,
            mode: args.mode.name(),
            rendezvous: args.mode.finds_peers_itself(),
            tracker_url,
            lan,
            bootstrap_url,
            ipfs_api,
            cache_size: args.cache_size,
            pull_through: args.pull_through,
            scan_interval: (args.scan_interval > 0)
                .then(|| Duration::from_secs(args.scan_interval)),
            offline: args.offline,
        };
        Ok((settings, trust))
    }
}

fn load_signer(args: &ServeArgs) -> Result<Option<SecretKey>, StartError> {
    let Some(path) = args.private_key_file() else {
        return Ok(None);
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(source) => return Err(StartError::ReadSecretKey { path, source }),
    };
    SecretKey::parse(&text)
        .map(Some)
        .map_err(|source| StartError::SecretKey { path, source })
}
