//! The engine's own bounds, whatever peers do.

use super::*;
use crate::app_streams::AppStreams;
use crate::config::InboundStreamLimits;

struct NoBlocks;

impl BlockSource for NoBlocks {
    fn block(&self, _: &Cid) -> std::io::Result<Option<Vec<u8>>> {
        Ok(None)
    }

    fn has(&self, _: &Cid) -> bool {
        false
    }
}

#[tokio::test]
async fn a_flood_of_peer_ids_leaves_the_peer_maps_at_their_caps() {
    // Never polled: outbound streams wait to open, so every outbox stays.
    let (_swarm_side, _, opener) =
        AppStreams::new(Vec::new(), false, InboundStreamLimits::default());
    let (_, incoming) = mpsc::unbounded_channel();
    let engine = Bitswap::start(
        opener,
        Arc::new(NoBlocks),
        incoming,
        BitswapDeadlines::default(),
    );
    for _ in 0..BANNED_PEERS + 100 {
        engine.penalise(PeerId::random(), "a flood of identities");
    }
    for _ in 0..OUTBOXES + 100 {
        engine.send(PeerId::random(), Message::default()).await;
    }
    assert_eq!(engine.banned.lock().unwrap().len(), BANNED_PEERS);
    assert_eq!(engine.outboxes.lock().unwrap().len(), OUTBOXES);
}

/// Has every block asked for: a leaf's worth of zeros.
struct EveryBlock;

impl BlockSource for EveryBlock {
    fn block(&self, _: &Cid) -> std::io::Result<Option<Vec<u8>>> {
        Ok(Some(vec![0; 256 << 10]))
    }

    fn has(&self, _: &Cid) -> bool {
        true
    }
}

/// An engine whose outbound streams never open: what it sends peers stays queued. The swarm's
/// side of its streams is never polled, and kept for the test's whole run.
fn engine_with(blocks: Arc<dyn BlockSource>) -> Arc<Bitswap> {
    let (swarm_side, _, opener) =
        AppStreams::new(Vec::new(), false, InboundStreamLimits::default());
    std::mem::forget(swarm_side);
    let (_, incoming) = mpsc::unbounded_channel();
    Bitswap::start(opener, blocks, incoming, BitswapDeadlines::default())
}

fn engine() -> Arc<Bitswap> {
    engine_with(Arc::new(NoBlocks))
}

fn block_wants(count: u32) -> Vec<WantEntry> {
    (0..count)
        .map(|i| WantEntry {
            cid: block(&i.to_le_bytes()).0,
            priority: 1,
            cancel: false,
            want_type: WantType::Block,
            send_dont_have: true,
        })
        .collect()
}

#[tokio::test]
async fn a_peer_that_never_reads_holds_only_its_share_of_the_send_budget() {
    let engine = engine_with(Arc::new(EveryBlock));
    let slow = PeerId::random();
    // As if from many streams at once, far more than its share.
    let answering: Vec<_> = (0..64)
        .map(|_| {
            let engine = engine.clone();
            tokio::spawn(async move { engine.answer(slow, block_wants(8)).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        engine.send_budget.available_kib(),
        (budget::SEND_BUDGET_KIB - budget::PEER_SHARE_KIB) as usize
    );
    // Another peer is answered at once.
    let answered = engine.answer(PeerId::random(), block_wants(4));
    tokio::time::timeout(Duration::from_secs(5), answered)
        .await
        .expect("another peer's answer is not held up");
    for task in answering {
        task.abort();
    }
}

fn block(content: &[u8]) -> (Cid, Vec<u8>) {
    let cid = Cid::new_v1(crate::block::RAW, crate::block::sha256_multihash(content));
    (cid, content.to_vec())
}

#[tokio::test]
async fn a_want_whose_asker_left_leaves_no_waiter() {
    let engine = engine();
    let (cid, _) = block(b"wanted, then not");
    let peers = [PeerId::random()];
    let want = engine.want_block(cid, &peers, 0, Purpose::Own);
    assert!(tokio::time::timeout(Duration::from_millis(100), want)
        .await
        .is_err());
    assert!(engine.wants.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_block_that_comes_after_its_want_was_given_up_is_no_lie() {
    let engine = engine();
    let peer = PeerId::random();
    let (late, data) = block(b"sent a moment too late");
    let (other, _) = block(b"still wanted from the same peer");
    let still_wanted = tokio::spawn({
        let engine = engine.clone();
        async move { engine.want_block(other, &[peer], 0, Purpose::Own).await }
    });
    let peers = [peer];
    let given_up = engine.want_block(late, &peers, 0, Purpose::Own);
    assert!(tokio::time::timeout(Duration::from_millis(100), given_up)
        .await
        .is_err());
    let message = Message {
        blocks: vec![(late, data)],
        ..Message::default()
    };
    engine.on_message(peer, message).await;
    assert!(!engine.is_banned(&peer));
    still_wanted.abort();
}
