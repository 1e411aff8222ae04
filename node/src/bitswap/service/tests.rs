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
