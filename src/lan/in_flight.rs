//! Requests this node has sent and not yet seen answered. An answer is taken only for an id in
//! flight, for the hash asked, and from where it was asked: the exact address of a unicast
//! target, or a host on a local subnet for a broadcast. Ids are random (16 bits of them, the
//! rest marks them as Peerix's: see `wire::lan`), so an answer forged blind must also come from
//! the address asked and name the hash asked; a forged answer that passes still only names a
//! narinfo, which must then pass the trust checks like any other.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;

use peerix_http::StoreHash;
use tokio::sync::oneshot;

use super::networks::Networks;
use crate::cidr::unmapped;
use crate::wire::lan::peerix_request_id;

/// Requests in flight at most; a query beyond that is not sent (and misses).
const MAX_IN_FLIGHT: usize = 1024;

/// What a request was sent to.
#[derive(Clone, Debug, Default)]
pub struct Asked {
    /// Unicast targets (`--extra-hosts`).
    pub hosts: Vec<SocketAddr>,
    /// Whether it was also broadcast.
    pub broadcast: bool,
}

/// Who answered: the HTTP server to fetch the narinfo from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Answerer {
    pub http: SocketAddr,
}

struct Waiter {
    hash: StoreHash,
    asked: Asked,
    answered: oneshot::Sender<Answerer>,
}

/// How an answer datagram was taken.
#[derive(Debug, PartialEq, Eq)]
pub enum Delivery {
    Accepted,
    /// For no request in flight (late, or forged).
    Unknown,
    /// For a request in flight, but from the wrong place or for another hash.
    Refused,
}

#[derive(Default)]
pub struct InFlight {
    waiters: Mutex<HashMap<u32, Waiter>>,
}

/// A request in flight; dropping it (answered or timed out) takes it out.
pub struct Pending<'a> {
    pub id: u32,
    in_flight: &'a InFlight,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        self.in_flight.lock().remove(&self.id);
    }
}

impl InFlight {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u32, Waiter>> {
        self.waiters.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a request for `hash` under a fresh random id; `None` when too many are in flight.
    pub fn register(
        &self,
        hash: StoreHash,
        asked: Asked,
    ) -> Option<(Pending<'_>, oneshot::Receiver<Answerer>)> {
        let mut waiters = self.lock();
        if waiters.len() >= MAX_IN_FLIGHT {
            return None;
        }
        let id = loop {
            let mut bytes = [0; 2];
            getrandom::getrandom(&mut bytes).ok()?;
            let id = peerix_request_id(u16::from_be_bytes(bytes));
            if !waiters.contains_key(&id) {
                break id;
            }
        };
        let (answered, answer) = oneshot::channel();
        waiters.insert(
            id,
            Waiter {
                hash,
                asked,
                answered,
            },
        );
        Some((
            Pending {
                id,
                in_flight: self,
            },
            answer,
        ))
    }

    /// Takes an answer to request `id` for `hash`, sent from `from`, naming HTTP port `port`.
    pub fn deliver(
        &self,
        id: u32,
        hash: StoreHash,
        from: SocketAddr,
        port: u16,
        networks: &Networks,
    ) -> Delivery {
        let mut waiters = self.lock();
        let Some(waiter) = waiters.get(&id) else {
            return Delivery::Unknown;
        };
        let ip = from.ip();
        let expected = waiter.asked.hosts.contains(&from)
            || (waiter.asked.broadcast && networks.is_local(ip) && !networks.is_own(ip));
        if waiter.hash != hash || !expected {
            return Delivery::Refused;
        }
        let Some(waiter) = waiters.remove(&id) else {
            return Delivery::Unknown;
        };
        let http = SocketAddr::new(unmapped(ip), port);
        // The asker may have given up meanwhile; then nobody needs it.
        let _ = waiter.answered.send(Answerer { http });
        Delivery::Accepted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(c: char) -> StoreHash {
        StoreHash::parse(&c.to_string().repeat(32)).unwrap()
    }

    #[test]
    fn only_the_asked_place_may_answer_the_asked_hash() {
        let in_flight = InFlight::default();
        let networks = Networks::default();
        let host: SocketAddr = "192.0.2.7:12304".parse().unwrap();
        let asked = Asked {
            hosts: vec![host],
            broadcast: false,
        };
        let (pending, mut answer) = in_flight.register(hash('a'), asked).unwrap();
        let id = pending.id;
        let other: SocketAddr = "192.0.2.8:12304".parse().unwrap();
        assert_eq!(
            in_flight.deliver(id.wrapping_add(1), hash('a'), host, 80, &networks),
            Delivery::Unknown
        );
        assert_eq!(
            in_flight.deliver(id, hash('a'), other, 80, &networks),
            Delivery::Refused
        );
        assert_eq!(
            in_flight.deliver(id, hash('b'), host, 80, &networks),
            Delivery::Refused
        );
        assert!(answer.try_recv().is_err());
        assert_eq!(
            in_flight.deliver(id, hash('a'), host, 8080, &networks),
            Delivery::Accepted
        );
        assert_eq!(
            answer.try_recv().unwrap().http,
            "192.0.2.7:8080".parse().unwrap()
        );
        // Answered once: a second answer has nothing to go to.
        assert_eq!(
            in_flight.deliver(id, hash('a'), host, 8080, &networks),
            Delivery::Unknown
        );
        drop(pending);
        assert!(in_flight.lock().is_empty());
    }

    #[test]
    fn a_dropped_request_is_no_longer_in_flight() {
        let in_flight = InFlight::default();
        let (pending, _answer) = in_flight.register(hash('a'), Asked::default()).unwrap();
        let id = pending.id;
        drop(pending);
        let from: SocketAddr = "127.0.0.1:1".parse().unwrap();
        assert_eq!(
            in_flight.deliver(id, hash('a'), from, 80, &Networks::default()),
            Delivery::Unknown
        );
    }
}
