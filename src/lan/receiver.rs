//! The UDP socket's one reader: old peers' requests are answered here (for shared paths only,
//! to local subnets and extra hosts only, within the rate limits), answers go to the queries in
//! flight.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use peerix_http::StoreHash;

use super::in_flight::Delivery;
use super::Lan;
use crate::wire::lan::{is_peerix_request_id, LanDatagram, MAX_DATAGRAM};

pub async fn receive(lan: Arc<Lan>) {
    let mut buf = vec![0u8; MAX_DATAGRAM + 1];
    loop {
        let (len, from) = match lan.socket.recv_from(&mut buf).await {
            Ok(received) => received,
            Err(e) => {
                tracing::debug!(error = %e, "LAN socket");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let networks = lan.networks.now();
        // Our own broadcasts come back to us.
        if networks.is_own(from.ip()) {
            continue;
        }
        let datagram = match LanDatagram::parse(&buf[..len]) {
            Ok(datagram) => datagram,
            Err(e) => {
                tracing::debug!(%from, error = %e, "not a LAN datagram");
                continue;
            }
        };
        let now = Instant::now();
        match datagram {
            // Another Peerix node asking for old peers' paths: not for us to answer.
            LanDatagram::Request { id, .. } if is_peerix_request_id(id) => {}
            LanDatagram::Request { id, hash } => {
                if !lan.peerix_hosts.contains(from.ip()) {
                    lan.old_peers.heard(from.ip(), now);
                }
                lan.answer(id, hash, from, now).await;
            }
            LanDatagram::Answer { id, port, hash } => {
                match lan.in_flight.deliver(id, hash, from, port, &networks) {
                    Delivery::Accepted => {
                        lan.counters
                            .queries_answered
                            .fetch_add(1, Ordering::Relaxed);
                        if !lan.peerix_hosts.contains(from.ip()) {
                            lan.old_peers.heard(from.ip(), now);
                        }
                    }
                    refused => {
                        lan.counters.answers_refused.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(%from, %hash, ?refused, "LAN answer not taken");
                    }
                }
            }
        }
    }
}

impl Lan {
    /// Answers request `id` from `from` if the path is shared and the limits allow.
    async fn answer(&self, id: u32, hash: StoreHash, from: SocketAddr, now: Instant) {
        let counters = &self.counters;
        if !self.may_fetch(from.ip()) {
            // Nobody off this network is answered: an answer would be an amplifier's.
            counters.requests_unanswered.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if self.per_source.take(from.ip(), now).is_err() || self.in_all.take((), now).is_err() {
            counters.requests_limited.fetch_add(1, Ordering::Relaxed);
            return;
        }
        match self.store.shared_path_info(hash) {
            Ok(Some(_)) => {}
            Ok(None) => {
                counters.requests_unanswered.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Err(e) => {
                tracing::warn!(%hash, error = %e, "cannot answer a LAN request");
                return;
            }
        }
        let answer = LanDatagram::Answer {
            id,
            port: self.config.http_port,
            hash,
        };
        match self.socket.send_to(&answer.encode(), from).await {
            Ok(_) => {
                counters.requests_answered.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => tracing::debug!(%from, error = %e, "cannot answer a LAN request"),
        }
    }
}
