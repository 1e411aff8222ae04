//! `peerix tracker`: a directory of peers and the store paths they share, written to only with
//! writes signed by the peers themselves.

pub mod check_config;
mod cid_mappings;
mod dial_addrs;
mod directory;
mod errors;
mod find_answer;
mod holder_index;
mod membership;
mod read_routes;
mod reputation;
pub mod server;
pub mod store;
mod tables;
pub mod transfers;
pub mod trusted_proxy;
mod write_routes;
