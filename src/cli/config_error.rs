//! What can be wrong with `peerix serve`'s flags beyond what clap checks.

use std::io;
use std::path::PathBuf;

use peerix_node::Multiaddr;
use thiserror::Error;

use crate::nix::signing::KeyError;

type MultiaddrError = <Multiaddr as std::str::FromStr>::Err;

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("--listen {0:?} is neither an IP address nor IP:port")]
    ListenAddress(String),
    #[error("listen address {text}: {source}")]
    ListenMultiaddr {
        text: String,
        source: MultiaddrError,
    },
    #[error("--state-dir {dir}: cannot create or write it: {source}")]
    StateDir { dir: PathBuf, source: io::Error },
    #[error("--identity-file {file}: {source}")]
    IdentityFile { file: PathBuf, source: io::Error },
    #[error("no writable state dir: pass --state-dir")]
    NoStateDir,
    #[error("--announce-addr {text:?}: {source}")]
    AnnounceMultiaddr {
        text: String,
        source: MultiaddrError,
    },
    #[error("--announce-addr {0:?}: no fixed listen port to pair it with; give a multiaddr")]
    AnnounceWithoutPort(String),
    #[error("--announce-addr {0:?} is neither a multiaddr, an IP address nor a host name")]
    AnnounceNotAnAddress(String),
    #[error(
        "--mode lan uses no tracker (it needs no internet): use --mode both with --tracker-url"
    )]
    TrackerInLan,
    #[error("--mode {0} needs --tracker-url")]
    TrackerNeeded(&'static str),
    #[error("--listen-addrs {0}: a QUIC address, but --quic is off")]
    QuicListenWithoutQuic(String),
    #[error("{flag} {text:?} is not an http:// or https:// URL with a host")]
    Url { flag: &'static str, text: String },
    #[error("--pull-through needs an upstream cache: --upstream-cache is \"\" (or --offline without it)")]
    PullThroughWithoutUpstream,
    #[error("--pull-through shares files between near nodes over the embedded node: drop --no-embedded-node")]
    PullThroughWithoutNode,
    #[error("--trusted-public-key {text:?}: {source}")]
    TrustedKey { text: String, source: KeyError },
}
