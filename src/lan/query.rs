//! Asking the LAN for a path no Peerix node holds: by unicast to the extra hosts that are no
//! Peerix node (Peerix nodes' holdings are known already, and they stay silent on a miss), and
//! by broadcast only while an old peer was heard on the link lately. Otherwise the miss costs
//! nothing, and now and then goes out as a probe in the background, so that an old peer that
//! only answers is found too.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use peerix_http::StoreHash;

use super::in_flight::{Answerer, Asked};
use super::old_peer_http::{self, OldPeerError, OldPeerNarinfo};
use super::{Lan, MISSES, MISS_REMEMBERED};
use crate::wire::lan::LanDatagram;

impl Lan {
    /// The narinfo of `hash` from a machine on the LAN that answered for it (not yet trusted),
    /// or `None` at once when no one is to be asked, or after `--timeout` when no one answered.
    pub async fn narinfo(self: &Arc<Self>, hash: StoreHash) -> Option<OldPeerNarinfo> {
        let answerer = self.find(hash).await?;
        match old_peer_http::narinfo(answerer.http, hash).await {
            Ok(found) => Some(found),
            Err(e @ (OldPeerError::TooSlow(_) | OldPeerError::Unreachable { .. })) => {
                tracing::debug!(%hash, error = %e, "LAN answerer unreachable");
                None
            }
            Err(e) => {
                tracing::warn!(%hash, error = %e, "LAN answerer sent no usable narinfo");
                None
            }
        }
    }

    async fn find(self: &Arc<Self>, hash: StoreHash) -> Option<Answerer> {
        let now = Instant::now();
        if self.missed_lately(hash, now) {
            return None;
        }
        let networks = self.networks.now();
        let hosts: Vec<SocketAddr> = self
            .extra_hosts
            .addrs()
            .into_iter()
            .filter(|a| !self.peerix_hosts.contains(a.ip()))
            .collect();
        let can_broadcast = self.config.broadcast && !networks.broadcasts().is_empty();
        let old_peer_on_link = can_broadcast
            && self.old_peers.any_heard(now, |ip| {
                networks.is_local(ip) && !self.peerix_hosts.contains(ip)
            });
        if hosts.is_empty() && !old_peer_on_link {
            if can_broadcast && self.old_peers.may_probe(now) {
                self.counters.probes.fetch_add(1, Ordering::Relaxed);
                let lan = self.clone();
                let broadcasts = networks.broadcasts().to_vec();
                tokio::spawn(async move {
                    let asked = Asked {
                        hosts: Vec::new(),
                        broadcast: true,
                    };
                    lan.ask(hash, asked, &broadcasts).await;
                });
            }
            return None;
        }
        self.counters.queries.fetch_add(1, Ordering::Relaxed);
        let broadcasts = match old_peer_on_link {
            true => networks.broadcasts().to_vec(),
            false => Vec::new(),
        };
        let asked = Asked {
            hosts,
            broadcast: old_peer_on_link,
        };
        let answer = self.ask(hash, asked, &broadcasts).await;
        if answer.is_none() {
            self.remember_miss(hash, now);
        }
        answer
    }

    /// Sends one request for `hash` to the hosts and broadcast addresses; the first acceptable
    /// answer within `--timeout`.
    async fn ask(
        &self,
        hash: StoreHash,
        asked: Asked,
        broadcasts: &[Ipv4Addr],
    ) -> Option<Answerer> {
        let targets: Vec<SocketAddr> = asked
            .hosts
            .iter()
            .copied()
            .chain(
                broadcasts
                    .iter()
                    .map(|b| SocketAddr::new(IpAddr::V4(*b), self.config.udp_port)),
            )
            .collect();
        let (pending, answer) = self.in_flight.register(hash, asked)?;
        let request = LanDatagram::Request {
            id: pending.id,
            hash,
        }
        .encode();
        for target in targets {
            if let Err(e) = self.socket.send_to(&request, target).await {
                tracing::debug!(%target, error = %e, "cannot send a LAN request");
            }
        }
        let answered = tokio::time::timeout(self.config.timeout, answer).await;
        drop(pending);
        answered.ok()?.ok()
    }

    fn missed_lately(&self, hash: StoreHash, now: Instant) -> bool {
        let misses = self.misses.lock().unwrap_or_else(|e| e.into_inner());
        misses
            .get(&hash)
            .is_some_and(|at| now.saturating_duration_since(*at) < MISS_REMEMBERED)
    }

    fn remember_miss(&self, hash: StoreHash, now: Instant) {
        let mut misses = self.misses.lock().unwrap_or_else(|e| e.into_inner());
        if misses.len() >= MISSES {
            misses.retain(|_, at| now.saturating_duration_since(*at) < MISS_REMEMBERED);
            if misses.len() >= MISSES {
                misses.clear();
            }
        }
        misses.insert(hash, now);
    }
}
