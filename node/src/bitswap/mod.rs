//! Bitswap 1.2.0, the block exchange kubo and Helia speak.

mod message;
mod service;
mod wire;

pub use message::{
    BitswapError, Message, Presence, WantEntry, WantType, MAX_MESSAGE_SIZE, PROTOCOL,
};
pub(crate) use service::Purpose;
pub use service::{Bitswap, SwarmStatus};
