//! Idle narinfo streams, kept per peer: a request sent on an open stream skips opening and
//! negotiating a new one, which is most of a narinfo round trip's cost on a fast link.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use peerix_node::{PeerId, Stream};

/// Idle streams kept per peer: as many as requests to one peer usually run at once.
const IDLE_PER_PEER: usize = 32;
/// Peers with idle streams at most; past that the pool starts afresh (streams of departed peers
/// would otherwise linger).
const PEERS: usize = 1024;
/// Kept this long at most: less than the answering side waits for the next request (60 s).
const IDLE_FOR: Duration = Duration::from_secs(50);

#[derive(Default)]
pub struct StreamPool {
    idle: Mutex<HashMap<PeerId, Vec<(Instant, Stream)>>>,
}

impl StreamPool {
    /// An idle stream to `peer`, if one is kept and still fresh.
    pub fn take(&self, peer: PeerId) -> Option<Stream> {
        let mut idle = self.idle.lock().ok()?;
        let streams = idle.get_mut(&peer)?;
        streams.retain(|(since, _)| since.elapsed() < IDLE_FOR);
        streams.pop().map(|(_, stream)| stream)
    }

    /// Keeps `stream`, which has just carried a whole answer, for the next request to `peer`.
    /// An idle stream does not keep the connection open.
    pub fn put_back(&self, peer: PeerId, mut stream: Stream) {
        stream.ignore_for_keep_alive();
        let Ok(mut idle) = self.idle.lock() else {
            return;
        };
        if idle.len() >= PEERS && !idle.contains_key(&peer) {
            idle.clear();
        }
        let streams = idle.entry(peer).or_default();
        if streams.len() < IDLE_PER_PEER {
            streams.push((Instant::now(), stream));
        }
    }
}
