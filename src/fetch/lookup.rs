//! A narinfo lookup among a path's holders, hedged: the first few are asked at once, the next when
//! one fails or after [`HEDGE`] without an answer, and so on; the first usable answer wins. A
//! silent or lying holder thus costs a few milliseconds, not its timeout.

use std::time::Duration;

use futures_util::stream::{FuturesUnordered, StreamExt};
use peerix_node::PeerId;
use tokio::task::JoinHandle;

/// How long one holder has to answer before the next is asked too: a narinfo round trip
/// between nearby peers takes about a millisecond.
pub(super) const HEDGE: Duration = Duration::from_millis(4);

/// The first `Some` that `ask` gives for one of `holders`, asked in their order (the first
/// `at_once` together), or else for one of `last_resort`, all asked at once when every holder
/// failed. The asks are tasks, so that those still running when an answer wins finish on their
/// own (and their holders' scores learn how they ended).
pub async fn first_answer<T: Send + 'static>(
    holders: Vec<PeerId>,
    at_once: usize,
    last_resort: Vec<PeerId>,
    ask: impl Fn(PeerId) -> JoinHandle<Option<T>>,
) -> Option<T> {
    let mut waiting = holders.into_iter();
    let mut last_resort = Some(last_resort);
    let mut asked: FuturesUnordered<_> = waiting.by_ref().take(at_once).map(&ask).collect();
    loop {
        if asked.is_empty() {
            match waiting.next() {
                Some(peer) => asked.push(ask(peer)),
                None => asked.extend(last_resort.take()?.into_iter().map(&ask)),
            }
            continue;
        }
        let more = waiting.len() > 0;
        tokio::select! {
            answered = asked.next() => match answered {
                Some(Ok(Some(found))) => return Some(found),
                // That holder is done: the next need not wait.
                Some(_) => {
                    if let Some(peer) = waiting.next() {
                        asked.push(ask(peer));
                    }
                }
                None => {}
            },
            () = tokio::time::sleep(HEDGE), if more => {
                if let Some(peer) = waiting.next() {
                    asked.push(ask(peer));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[tokio::test]
    async fn silent_holders_are_passed_by_and_failures_move_on_at_once() {
        let peers: Vec<PeerId> = (0..4).map(|_| PeerId::random()).collect();
        let honest = peers[3];
        let asked = Arc::new(AtomicUsize::new(0));
        let started = std::time::Instant::now();
        let found = first_answer(peers.clone(), 1, vec![], |peer| {
            asked.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(async move {
                if peer == honest {
                    Some(peer)
                } else {
                    // Silent: answers nothing within any lookup.
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    None
                }
            })
        })
        .await;
        assert_eq!(found, Some(honest));
        // After three hedges, not the silent holders' five seconds.
        assert!(started.elapsed() < Duration::from_secs(1));
        assert_eq!(asked.load(Ordering::Relaxed), 4);

        // Asked together, the honest holder answers the first round.
        let asked = Arc::new(AtomicUsize::new(0));
        let found = first_answer(peers[1..].to_vec(), 3, vec![], |peer| {
            asked.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(async move { (peer == honest).then_some(peer) })
        })
        .await;
        assert_eq!(found, Some(honest));
        assert_eq!(asked.load(Ordering::Relaxed), 3);

        // Holders that fail at once are replaced at once; none left is a miss.
        let asked = Arc::new(AtomicUsize::new(0));
        let none = first_answer(peers[..2].to_vec(), 1, peers[2..].to_vec(), |_| {
            asked.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(async { None::<PeerId> })
        })
        .await;
        assert_eq!(none, None);
        assert_eq!(asked.load(Ordering::Relaxed), 4);
        // The last resort answers when the others failed.
        let last = peers[3];
        let found = first_answer(peers[..1].to_vec(), 1, vec![last], |peer| {
            tokio::spawn(async move { (peer == last).then_some(peer) })
        })
        .await;
        assert_eq!(found, Some(last));
    }
}
