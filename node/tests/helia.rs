//! Interop with Helia (7.1, driven by tests/interop/helia_node.mjs; install it with
//! `npm ci --prefix tests/interop`) over loopback Bitswap: 64 MiB each way, hash-checked. Helia's
//! `add` gives CIDv1 with raw leaves, the same DAG as Peerix's.

mod common;

use common::{Peer, Secured};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helia_fetches_from_peerix() {
    common::peer_fetches_from_peerix(Peer::helia, Secured::Noise).await;
}

// Helia's yamux sends data frames as large as the stream's send window: this breaks if the node
// lets a window grow past the 1 MiB frames its own yamux accepts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peerix_fetches_from_helia() {
    common::peerix_fetches_from_peer(Peer::helia, Secured::Noise).await;
}
