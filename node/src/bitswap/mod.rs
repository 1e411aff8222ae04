//! Bitswap 1.2.0, the block exchange kubo and Helia speak.

mod inbound;
mod message;
mod service;
mod wire;

pub use inbound::{InboundReceiver, InboundStreams};
pub use message::{
    BitswapError, Message, Presence, WantEntry, WantType, MAX_MESSAGE_SIZE, PROTOCOL,
};
pub use service::Bitswap;
