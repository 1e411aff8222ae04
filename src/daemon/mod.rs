//! The daemon `peerix serve` runs, assembled from named parts: its settings, the embedded node,
//! the peering (publication, discovery, answers to peers, substitution from them; or kubo's
//! alone, with `--no-embedded-node`) and the HTTP front. Each part is started by one function here or in a submodule; nothing else starts
//! tasks of its own.

mod check;
mod error;
mod front;
mod kubo_peering;
mod lan;
mod legacy_state;
mod peering;
mod settings;

use std::sync::Arc;

use peerix_node::NodeHandle;
use tokio::runtime::{Builder, Runtime};

use crate::cli::ServeArgs;
use crate::publish::StoreContent;
use crate::status::HolePunchLog;
use crate::systemd::{ShutdownSignal, Systemd};
pub use check::check_config;
pub use error::StartError;
use front::Front;
use lan::{serve_local_routes, start_lan, LanListener};
use peering::Peering;
use settings::{Purpose, Settings};

/// Runs `peerix serve` until a shutdown signal (or only checks its settings, with
/// `--check-config`).
pub fn run(args: ServeArgs) -> Result<(), StartError> {
    if args.check_config {
        return check_config(args);
    }
    let (mut settings, trust) = Settings::from_args(args, Purpose::Start)?;
    let identity_file = settings.node.as_ref().map(|n| n.identity_file.as_path());
    legacy_state::adopt(&settings.state_dir, identity_file)?;
    let listener;
    (listener, settings.http_addr) = Front::bind(settings.http_addr)?;
    let lan_listener = LanListener::bind(&mut settings)?;
    let runtimes = Runtimes::start()?;
    let front_threads = runtimes.front.handle().clone();
    let watched = vec![runtimes.peers.handle().clone(), front_threads.clone()];
    runtimes.peers.block_on(async move {
        // Listened for before anything starts: a signal during the start stops it right after.
        let signal = ShutdownSignal::listen().map_err(StartError::Signals)?;
        let systemd = Systemd::from_env();
        let shutdown = systemd.clone().stopping_at(signal);
        // One reader of the store for the node and the scan, so they share NAR layouts.
        let content = Arc::new(StoreContent::new(settings.store.clone()));
        let node = start_node(&settings, content.clone()).await?;
        let lan = start_lan(&mut settings, node.as_ref())?;
        let hole_punches = node.as_ref().map(HolePunchLog::watch).unwrap_or_default();
        let peering = match &node {
            Some(node) => Some(Peering::start(
                node,
                &settings,
                trust,
                content,
                &hole_punches,
                lan.clone(),
            )?),
            None => kubo_peering::start(&settings, trust, content)?,
        };
        let front = Front::assemble(&settings, node, peering, hole_punches);
        if let (Some(listener), Some(lan)) = (lan_listener, lan) {
            let store = settings.store.clone();
            front_threads.spawn(serve_local_routes(
                listener,
                lan,
                store,
                settings.server_limits,
                front.count_requests(),
                shutdown.clone(),
            ));
        }
        let (addr, limits) = (settings.http_addr, settings.server_limits);
        // Ready once the node has started and the front serves its bound listener.
        let ready = move || systemd.ready(&format!("serving on http://{addr}"), watched);
        let serving = front_threads.spawn(front.serve(listener, addr, limits, shutdown, ready));
        serving.await.map_err(StartError::FrontStopped)?
    })
}

/// The node and everything peers cause run on one runtime; Nix's requests on another, so that
/// however much work peers make (negotiating and answering their streams), it never queues
/// ahead of them.
struct Runtimes {
    peers: Runtime,
    front: Runtime,
}

impl Runtimes {
    fn start() -> Result<Self, StartError> {
        let peers = Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(StartError::Runtime)?;
        let front = Builder::new_multi_thread()
            .thread_name("peerix-front")
            .enable_all()
            .build()
            .map_err(StartError::Runtime)?;
        Ok(Self { peers, front })
    }
}

/// The embedded node, unless `--no-embedded-node`.
async fn start_node(
    settings: &Settings,
    content: Arc<StoreContent>,
) -> Result<Option<NodeHandle>, StartError> {
    let Some(config) = settings.node.clone() else {
        return Ok(None);
    };
    let node = peerix_node::start_with(config, content)
        .await
        .map_err(StartError::Node)?;
    let status = node.status().await.map_err(StartError::Node)?;
    tracing::info!(peer_id = %status.peer_id, listen = ?status.listen_addrs, "node started");
    Ok(Some(node))
}
