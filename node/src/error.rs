//! What the node's operations fail with.

use std::io;

use libp2p::{Multiaddr, PeerId};
use thiserror::Error;

use crate::app_streams::OpenError;
use crate::storage;

#[derive(Debug, Error)]
pub enum NodeError {
    #[error("identity: {0}")]
    Identity(String),
    #[error("transport: {0}")]
    Transport(String),
    #[error("cannot listen on {addr}: {reason}")]
    Listen { addr: Multiaddr, reason: String },
    #[error("the node has stopped")]
    Stopped,
    #[error("dial failed: {0}")]
    Dial(String),
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error("DHT: {0}")]
    Dht(String),
    #[error("storage: {0}")]
    Storage(#[from] storage::StorageError),
    #[error("relay address {0} does not end in /p2p/<peer id>")]
    InvalidRelay(Multiaddr),
    #[error("{0} is connected through relays only, and relayed transfers are off")]
    OnlyRelayed(PeerId),
    #[error("stream: {0}")]
    Stream(String),
}

impl From<OpenError> for NodeError {
    fn from(error: OpenError) -> Self {
        match error {
            OpenError::OnlyRelayed(peer) => Self::OnlyRelayed(peer),
            OpenError::Dial(reason) => Self::Dial(reason),
            OpenError::Stopped => Self::Stopped,
            other => Self::Stream(other.to_string()),
        }
    }
}
