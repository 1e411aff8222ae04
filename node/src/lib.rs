//! The embedded IPFS-compatible libp2p node: Bitswap, Kademlia, mDNS, relay, DCUtR, AutoNAT and
//! UnixFS content addressing. It knows nothing about Nix.
#![forbid(unsafe_code)]

pub mod bitswap;
pub mod block;
mod protobuf;
pub mod unixfs;
