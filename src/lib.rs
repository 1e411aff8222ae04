//! Peerix: a peer-to-peer binary cache for Nix. The `peerix` binary is a thin shell over this.
#![forbid(unsafe_code)]

pub mod batch_narinfo;
pub mod blocking_pool;
pub mod build_id;
pub mod cid;
pub mod cidr;
pub mod cli;
pub mod control_routes;
pub mod daemon;
pub mod dashboard;
pub mod discovery;
pub mod doctor;
pub mod fetch;
pub mod filter;
pub mod fs_access;
pub mod ipfs_cli;
pub mod keygen;
pub mod kubo_rpc;
pub mod lan;
pub mod nix;
pub mod node_api;
pub mod node_metrics;
pub mod progress;
pub mod publish;
pub mod rate_limit;
pub mod rescan_cli;
pub mod status;
pub mod status_cli;
pub mod store;
pub mod systemd;
pub mod throughput;
pub mod tracker;
pub mod why;
pub mod why_cli;
pub mod wire;
