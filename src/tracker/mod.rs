//! `peerix tracker`: a directory of peers and the store paths they share, written to only with
//! writes signed by the peers themselves.

mod holder_index;
mod reputation;
pub mod store;
mod tables;
