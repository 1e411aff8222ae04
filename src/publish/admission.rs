//! How many requests of one kind are answered at once: at most so many per peer and so many in
//! all (peer ids cost nothing). A request over a cap waits a bounded time for its turn, then is
//! refused; refusing is not a penalty, an honest peer may just be busy.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use peerix_node::PeerId;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub struct Admission {
    per_peer: usize,
    all: Arc<Semaphore>,
    /// Only peers with requests being answered or waiting have an entry.
    peers: Mutex<HashMap<PeerId, Arc<Semaphore>>>,
    wait: Duration,
}

/// A request's turn; the next one may go when it is dropped.
pub struct Turn {
    admission: Arc<Admission>,
    peer: PeerId,
    permits: Option<(OwnedSemaphorePermit, OwnedSemaphorePermit)>,
}

impl Drop for Turn {
    fn drop(&mut self) {
        self.permits = None;
        self.admission.release(&self.peer);
    }
}

impl Admission {
    pub fn new(per_peer: usize, all: usize, wait: Duration) -> Arc<Self> {
        Arc::new(Self {
            per_peer,
            all: Arc::new(Semaphore::new(all)),
            peers: Mutex::new(HashMap::new()),
            wait,
        })
    }

    /// A turn for a request of `peer`, or `None` when none came within the wait.
    pub async fn turn(self: &Arc<Self>, peer: PeerId) -> Option<Turn> {
        let own = {
            let mut peers = self.peers.lock().ok()?;
            let per_peer = self.per_peer;
            peers
                .entry(peer)
                .or_insert_with(|| Arc::new(Semaphore::new(per_peer)))
                .clone()
        };
        // Dropped (and the peer's entry cleaned up) whether or not a turn comes.
        let mut turn = Turn {
            admission: self.clone(),
            peer,
            permits: None,
        };
        let all = self.all.clone();
        let permits = tokio::time::timeout(self.wait, async move {
            // The peer's own cap first: one peer's backlog never holds global permits.
            let own = own.acquire_owned().await.ok()?;
            let all = all.acquire_owned().await.ok()?;
            Some((own, all))
        });
        turn.permits = Some(permits.await.ok().flatten()?);
        Some(turn)
    }

    fn release(&self, peer: &PeerId) {
        if let Ok(mut peers) = self.peers.lock() {
            // Only the map holds the semaphore: nobody of this peer is answered or waiting.
            if peers.get(peer).is_some_and(|s| Arc::strong_count(s) == 1) {
                peers.remove(peer);
            }
        }
    }

    #[cfg(test)]
    fn peers_known(&self) -> usize {
        self.peers.lock().map(|p| p.len()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn caps_each_peer_and_all_together_and_forgets_idle_peers() {
        let admission = Admission::new(2, 3, Duration::from_millis(50));
        let (a, b) = (PeerId::random(), PeerId::random());
        let a1 = admission.turn(a).await.unwrap();
        let a2 = admission.turn(a).await.unwrap();
        assert!(
            admission.turn(a).await.is_none(),
            "a third turn for one peer"
        );
        let b1 = admission.turn(b).await.unwrap();
        assert!(admission.turn(b).await.is_none(), "a fourth turn in all");
        drop(a1);
        let b2 = admission.turn(b).await.unwrap();
        drop((a2, b1, b2));
        assert_eq!(admission.peers_known(), 0);
    }

    #[tokio::test]
    async fn a_waiting_request_gets_the_next_turn() {
        let admission = Admission::new(1, 1, Duration::from_secs(5));
        let peer = PeerId::random();
        let first = admission.turn(peer).await.unwrap();
        let waiting = tokio::spawn({
            let admission = admission.clone();
            async move { admission.turn(peer).await.is_some() }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(first);
        assert!(waiting.await.unwrap());
    }
}
