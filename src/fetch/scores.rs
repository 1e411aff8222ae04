//! How holders have answered narinfo requests, so that lookups ask the ones that answer well
//! first: a holder that lied is not asked again, one that answered something untrusted is asked
//! after the others, one with a request long unanswered only when all others failed, and one
//! that timed out not at all until a background probe (spaced out exponentially) gets an answer
//! from it again. Holders that never answered yet are asked a few at once.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use peerix_node::PeerId;

use super::lookup::HEDGE;

/// Peers remembered at most; past that, the one seen least lately is forgotten.
const PEERS: usize = 4096;
/// A holder with a request unanswered for this long is asked only when every other one failed.
/// Five hedges: a frozen holder is passed by within the first burst of lookups, while one that is
/// merely far (every request slower than this) is still asked whenever no nearer one answers.
const SLOW: Duration = Duration::from_millis(20);
/// Holders never heard from that one lookup asks together.
const UNPROVEN_AT_ONCE: usize = 3;
/// The first pause before a silent holder is probed, doubled on every probe it misses.
const FIRST_PROBE: Duration = Duration::from_secs(1);
const LAST_PROBE: Duration = Duration::from_secs(300);
/// How long a holder that may have sent part of a wrong NAR is asked for NARs after the others.
const SUSPECTED_FOR: Duration = Duration::from_secs(600);

/// How a holder answered one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// An answer that passed the trust checks, or a plain "not found".
    Good,
    /// A narinfo that no signature or upstream vouched for (or under a filtered name).
    Untrusted,
    /// Wrong data: another path than asked for, a malformed answer, or a wrong NAR.
    Lied,
    /// No answer within the deadline.
    TimedOut,
}

#[derive(Default)]
pub struct Scores {
    peers: Mutex<HashMap<PeerId, Score>>,
}

#[derive(Clone, Copy)]
struct Score {
    seen: Instant,
    /// Has given a good answer: known to be alive and honest.
    proven: bool,
    liar: bool,
    untrusted: u32,
    /// Since when a request has gone unanswered.
    waiting_since: Option<Instant>,
    silence: Option<Silence>,
    /// Until when it is asked for NARs after the others: it may have sent part of a wrong one.
    suspected_until: Option<Instant>,
}

/// A holder that timed out: probes it missed, and when the next is due.
#[derive(Clone, Copy)]
struct Silence {
    missed: u32,
    probe_at: Instant,
}

/// The holders of a path in the order to ask them (the first `at_once` together), the slow ones
/// to ask when they all failed, and the silent ones due for a probe.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub ask: Vec<PeerId>,
    pub at_once: usize,
    pub last_resort: Vec<PeerId>,
    pub probe: Vec<PeerId>,
}

impl Score {
    fn new(now: Instant) -> Self {
        Self {
            seen: now,
            proven: false,
            liar: false,
            untrusted: 0,
            waiting_since: None,
            silence: None,
            suspected_until: None,
        }
    }
}

impl Scores {
    /// `peers` without those that lied, and the suspected ones after the others, in their
    /// order.
    pub fn honest(&self, mut peers: Vec<PeerId>) -> Vec<PeerId> {
        if let Ok(scores) = self.peers.lock() {
            let now = Instant::now();
            peers.retain(|p| !scores.get(p).is_some_and(|s| s.liar));
            peers.sort_by_key(|p| {
                scores
                    .get(p)
                    .and_then(|s| s.suspected_until)
                    .is_some_and(|until| until > now)
            });
        }
        peers
    }

    /// Marks `peer` as one that may have sent part of a wrong NAR, though nothing proves it:
    /// asked for NARs after the others for [`SUSPECTED_FOR`]; its narinfos count as before.
    pub fn suspect(&self, peer: PeerId) {
        if let Ok(mut scores) = self.peers.lock() {
            let now = Instant::now();
            entry(&mut scores, peer, now).suspected_until = Some(now + SUSPECTED_FOR);
        }
    }

    /// Orders `holders` for a lookup; a probe is taken by this caller alone (the next one is
    /// scheduled at once).
    pub fn plan(&self, holders: Vec<PeerId>) -> Plan {
        let Ok(mut scores) = self.peers.lock() else {
            return Plan {
                ask: holders,
                ..Plan::default()
            };
        };
        let now = Instant::now();
        let mut plan = Plan::default();
        let mut ranked = Vec::with_capacity(holders.len());
        for peer in holders {
            let score = entry(&mut scores, peer, now);
            if score.liar {
                continue;
            }
            if let Some(silence) = &mut score.silence {
                if silence.probe_at <= now {
                    silence.probe_at = now + probe_pause(silence.missed + 1);
                    plan.probe.push(peer);
                }
                continue;
            }
            let waited = score.waiting_since.map(|t| now - t);
            if waited.is_some_and(|w| w >= SLOW) {
                plan.last_resort.push(peer);
                continue;
            }
            // A holder that let another lookup wait past a hedge is likely slow: others first.
            let busy = waited.is_some_and(|w| w >= HEDGE);
            ranked.push(((score.untrusted, busy, !score.proven), peer));
        }
        // Equally good proven holders take turns, so that each is tried first now and then;
        // holders never heard from keep the order they came in (a tracker's, best score first).
        let proven = ranked
            .iter()
            .filter(|((_, _, unproven), _)| !unproven)
            .count();
        if proven > 0 {
            ranked.sort_by_key(|((_, _, unproven), _)| *unproven);
            let mut seed = [0u8; 2];
            let turn = getrandom::getrandom(&mut seed).map_or(0, |()| u16::from_be_bytes(seed));
            ranked[..proven].rotate_left(usize::from(turn) % proven);
        }
        ranked.sort_by_key(|(rank, _)| *rank);
        // Holders never heard from may all be asleep: a few are asked at once, so that a lookup
        // among new holders costs at most one hedge. Proven ones are asked one by one.
        let unproven = ranked.iter().take_while(|((_, _, unproven), _)| *unproven);
        plan.at_once = unproven.count().clamp(1, UNPROVEN_AT_ONCE);
        plan.ask = ranked.into_iter().map(|(_, peer)| peer).collect();
        plan
    }

    /// Notes that `peer` is being asked, until it answers.
    pub fn asking(&self, peer: PeerId) {
        if let Ok(mut scores) = self.peers.lock() {
            let now = Instant::now();
            entry(&mut scores, peer, now)
                .waiting_since
                .get_or_insert(now);
        }
    }

    pub fn record(&self, peer: PeerId, answer: Answer) {
        let Ok(mut scores) = self.peers.lock() else {
            return;
        };
        let now = Instant::now();
        let score = entry(&mut scores, peer, now);
        match answer {
            Answer::TimedOut => {
                let missed = score.silence.map_or(0, |s| s.missed + 1);
                score.silence = Some(Silence {
                    missed,
                    probe_at: now + probe_pause(missed),
                });
                return;
            }
            Answer::Lied => score.liar = true,
            Answer::Untrusted => score.untrusted = score.untrusted.saturating_add(1),
            Answer::Good => score.proven = true,
        }
        score.waiting_since = None;
        if score.silence.take().is_some() {
            tracing::info!(%peer, "a silent holder answers again");
        }
    }
}

fn probe_pause(missed: u32) -> Duration {
    FIRST_PROBE
        .saturating_mul(1 << missed.min(16))
        .min(LAST_PROBE)
}

/// `peer`'s score, made when new; a full map forgets the peer seen least lately first.
fn entry(scores: &mut HashMap<PeerId, Score>, peer: PeerId, now: Instant) -> &mut Score {
    if scores.len() >= PEERS && !scores.contains_key(&peer) {
        let oldest = scores.iter().min_by_key(|(_, s)| s.seen).map(|(p, _)| *p);
        if let Some(oldest) = oldest {
            scores.remove(&oldest);
        }
    }
    let score = scores.entry(peer).or_insert_with(|| Score::new(now));
    score.seen = now;
    score
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn liars_go_silent_ones_wait_for_a_probe_and_untrusted_ones_come_last() {
        let scores = Scores::default();
        let (good, untrusted, liar, silent) = (
            PeerId::random(),
            PeerId::random(),
            PeerId::random(),
            PeerId::random(),
        );
        let all = vec![untrusted, liar, silent, good];
        let mut first = scores.plan(all.clone()).ask;
        first.sort();
        let mut sorted = all.clone();
        sorted.sort();
        assert_eq!(first, sorted);
        scores.record(untrusted, Answer::Untrusted);
        scores.record(liar, Answer::Lied);
        scores.record(silent, Answer::TimedOut);
        scores.record(good, Answer::Good);
        assert_eq!(scores.plan(all.clone()).ask, vec![good, untrusted]);
        assert_eq!(scores.honest(all.clone()), vec![untrusted, silent, good]);
        scores.suspect(untrusted);
        assert_eq!(scores.honest(all.clone()), vec![silent, good, untrusted]);
        // Once the probe is due, one lookup takes it; an answer restores the holder.
        if let Ok(mut map) = scores.peers.lock() {
            if let Some(s) = map.get_mut(&silent).and_then(|s| s.silence.as_mut()) {
                s.probe_at = Instant::now();
            }
        }
        assert_eq!(scores.plan(all.clone()).probe, vec![silent]);
        assert!(scores.plan(all.clone()).probe.is_empty());
        scores.record(silent, Answer::Good);
        scores.record(good, Answer::Good);
        scores.record(untrusted, Answer::Good);
        let ask = scores.plan(all).ask;
        assert_eq!(ask.len(), 3);
        assert_eq!(ask[2], untrusted);
    }

    #[test]
    fn new_holders_are_asked_together_and_busy_ones_after_free_ones() {
        let scores = Scores::default();
        let peers: Vec<PeerId> = (0..4).map(|_| PeerId::random()).collect();
        assert_eq!(scores.plan(peers.clone()).at_once, UNPROVEN_AT_ONCE);
        assert_eq!(scores.plan(peers[..2].to_vec()).at_once, 2);
        // A proven holder comes first, alone.
        scores.record(peers[2], Answer::Good);
        let plan = scores.plan(peers.clone());
        assert_eq!((plan.ask[0], plan.at_once), (peers[2], 1));
        // Once its request has waited past a hedge, the others go before it.
        scores.asking(peers[2]);
        if let Ok(mut map) = scores.peers.lock() {
            if let Some(score) = map.get_mut(&peers[2]) {
                score.waiting_since = Some(Instant::now() - HEDGE);
            }
        }
        let plan = scores.plan(peers.clone());
        assert_eq!(plan.ask.len(), 4);
        assert_eq!(plan.ask[3], peers[2]);
        assert_eq!(plan.at_once, UNPROVEN_AT_ONCE);
    }

    #[test]
    fn holders_never_heard_from_keep_their_order_and_proven_ones_take_turns() {
        let scores = Scores::default();
        let peers: Vec<PeerId> = (0..6).map(|_| PeerId::random()).collect();
        for _ in 0..8 {
            assert_eq!(scores.plan(peers.clone()).ask, peers);
        }
        scores.record(peers[4], Answer::Good);
        scores.record(peers[5], Answer::Good);
        let firsts: HashSet<PeerId> = (0..64).map(|_| scores.plan(peers.clone()).ask[0]).collect();
        assert_eq!(firsts, HashSet::from([peers[4], peers[5]]));
        assert_eq!(scores.plan(peers.clone()).ask[2..], peers[..4]);
    }

    #[test]
    fn probes_back_off_exponentially_and_the_map_is_bounded() {
        assert_eq!(probe_pause(0), FIRST_PROBE);
        assert_eq!(probe_pause(3), FIRST_PROBE * 8);
        assert_eq!(probe_pause(40), LAST_PROBE);
        let scores = Scores::default();
        for _ in 0..PEERS + 10 {
            scores.record(PeerId::random(), Answer::Lied);
        }
        assert_eq!(scores.peers.lock().unwrap().len(), PEERS);
    }
}
