//! Why the daemon could not start, or stopped.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

use thiserror::Error;

use crate::cli::ConfigError;
use crate::nix::signing::KeyError;
use crate::publish::IndexError;

#[derive(Debug, Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("--private-key {path}: cannot read it: {source}")]
    ReadSecretKey { path: PathBuf, source: io::Error },
    #[error("--private-key {path}: {source}")]
    SecretKey { path: PathBuf, source: KeyError },
    #[error("bad --filter-pattern: {0}")]
    FilterPattern(#[from] globset::Error),
    #[error("cannot start a runtime: {0}")]
    Runtime(io::Error),
    #[error("cannot listen for shutdown signals: {0}")]
    Signals(io::Error),
    #[error("cannot start the peer-to-peer node: {0}")]
    Node(peerix_node::NodeError),
    #[error("cannot load the node's identity: {0}")]
    Identity(peerix_node::NodeError),
    #[error("cannot open the index: {0}")]
    Index(#[from] IndexError),
    #[error("cannot open the NAR cache: {0}")]
    NarCache(io::Error),
    #[error("cannot start the NAR log: {0}")]
    NarLog(io::Error),
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: SocketAddr, source: io::Error },
    #[error(transparent)]
    Lan(#[from] crate::lan::LanError),
    #[error("cannot start pull-through: {0}")]
    PullThrough(#[from] crate::fetch::PullThroughError),
    #[error(
        "--no-embedded-node needs --tracker-url: without the embedded node no peer names the \
         CIDs of the paths kubo would fetch, and no one learns those this node publishes"
    )]
    KuboAloneWithoutTracker,
    #[error("the HTTP front stopped: {0}")]
    FrontStopped(tokio::task::JoinError),
}
