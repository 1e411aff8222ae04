//! Machines heard speaking the old LAN protocol (a request of theirs, or an answer to ours) that
//! are not Peerix nodes. Broadcast queries are sent only while one was heard on the link lately:
//! a LAN of Peerix nodes alone never waits for a broadcast on a miss. Until then a miss is
//! broadcast now and then in the background, a probe that no request waits for.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long an old peer counts as present after it was last heard.
pub const HEARD_FOR: Duration = Duration::from_secs(600);
/// Probes are sent at most this often.
pub const PROBE_EVERY: Duration = Duration::from_secs(30);
/// Old peers remembered at most; past that the longest silent is forgotten.
const MAX_REMEMBERED: usize = 256;

#[derive(Default)]
pub struct OldPeers {
    heard: Mutex<HashMap<IpAddr, Instant>>,
    last_probe: Mutex<Option<Instant>>,
}

impl OldPeers {
    pub fn heard(&self, ip: IpAddr, now: Instant) {
        let mut heard = self.heard.lock().unwrap_or_else(|e| e.into_inner());
        if heard.len() >= MAX_REMEMBERED && !heard.contains_key(&ip) {
            if let Some(oldest) = heard.iter().min_by_key(|(_, at)| **at).map(|(ip, _)| *ip) {
                heard.remove(&oldest);
            }
        }
        if heard.insert(ip, now).is_none() {
            tracing::info!(%ip, "a machine running the old LAN protocol was heard");
        }
    }

    /// Whether an old peer for which `counts` holds was heard within [`HEARD_FOR`].
    pub fn any_heard(&self, now: Instant, counts: impl Fn(IpAddr) -> bool) -> bool {
        let heard = self.heard.lock().unwrap_or_else(|e| e.into_inner());
        heard
            .iter()
            .any(|(ip, at)| now.saturating_duration_since(*at) < HEARD_FOR && counts(*ip))
    }

    /// Whether a probe may go out now (and then it counts as sent).
    pub fn may_probe(&self, now: Instant) -> bool {
        let mut last = self.last_probe.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_some_and(|at| now.saturating_duration_since(at) < PROBE_EVERY) {
            return false;
        }
        *last = Some(now);
        true
    }

    /// The old peers heard lately, for `/status`.
    pub fn recent(&self, now: Instant) -> Vec<IpAddr> {
        let heard = self.heard.lock().unwrap_or_else(|e| e.into_inner());
        let mut ips: Vec<IpAddr> = heard
            .iter()
            .filter(|(_, at)| now.saturating_duration_since(**at) < HEARD_FOR)
            .map(|(ip, _)| *ip)
            .collect();
        ips.sort();
        ips
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_old_peer_counts_for_a_while_and_probes_are_paced() {
        let peers = OldPeers::default();
        let t = Instant::now();
        let ip: IpAddr = "10.88.1.5".parse().unwrap();
        assert!(!peers.any_heard(t, |_| true));
        peers.heard(ip, t);
        assert!(peers.any_heard(t + Duration::from_secs(1), |_| true));
        assert!(!peers.any_heard(t, |other| other != ip));
        assert!(!peers.any_heard(t + HEARD_FOR, |_| true));
        assert_eq!(peers.recent(t), vec![ip]);

        assert!(peers.may_probe(t));
        assert!(!peers.may_probe(t + Duration::from_secs(1)));
        assert!(peers.may_probe(t + PROBE_EVERY));
    }

    #[test]
    fn the_memory_is_bounded() {
        let peers = OldPeers::default();
        let t = Instant::now();
        for i in 0..(MAX_REMEMBERED as u32 + 50) {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            peers.heard(ip, t + Duration::from_millis(u64::from(i)));
        }
        assert_eq!(peers.heard.lock().unwrap().len(), MAX_REMEMBERED);
    }
}
