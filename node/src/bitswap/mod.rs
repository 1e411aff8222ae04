//! Bitswap 1.2.0, the block exchange kubo and Helia speak.

mod message;
mod service;
mod wire;

pub use message::{
    BitswapError, Message, Presence, WantEntry, WantType, MAX_MESSAGE_SIZE, PROTOCOL,
};
pub use service::Bitswap;
