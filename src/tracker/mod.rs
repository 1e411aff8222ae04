//! `peerix tracker`: a directory of peers and the store paths they share, written to only with
//! writes signed by the peers themselves.

mod dial_addrs;
mod directory;
mod holder_index;
mod membership;
mod reputation;
pub mod store;
mod tables;
