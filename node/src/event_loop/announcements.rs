//! The event loop's share of the DHTs: the queue of announcements (paced, paused, at most a few
//! at once), withdrawals, and the queries that answer handles.

use std::collections::HashSet;

use libp2p::kad;
use tokio::sync::oneshot;

use super::lookups::LookupId;
use super::EventLoop;

/// DHT announcements running at once; the rest wait in line, so that publishing a whole store
/// never floods the network with queries.
const CONCURRENT_ANNOUNCEMENTS: usize = 8;

pub(super) type ProvideReply = oneshot::Sender<Result<(), String>>;

/// Query ids are per DHT, so a query is known by both.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum Dht {
    Private,
    Public,
}

/// What a running DHT query answers when it is done.
pub(super) enum PendingQuery {
    Provide(Option<ProvideReply>),
    /// One DHT's share of a provider lookup (see lookups.rs).
    Providers(LookupId),
}

impl EventLoop {
    pub(super) fn reannounce(&mut self) {
        match self.storage.provided_keys() {
            Ok(keys) => {
                tracing::debug!(keys = keys.len(), "announcing provided keys");
                // Keys still queued from the last time (announcements paused, or paced slower
                // than the interval) are queued once, not once more each time.
                let queued: HashSet<kad::RecordKey> =
                    self.announce_queue.iter().map(|(k, _)| k.clone()).collect();
                let keys = keys.into_iter().map(|k| kad::RecordKey::new(&k));
                self.announce_queue
                    .extend(keys.filter(|k| !queued.contains(k)).map(|k| (k, None)));
                self.start_announcements();
            }
            Err(e) => tracing::warn!(error = %e, "cannot read provided keys"),
        }
    }

    /// Starts queued announcements while fewer than the limit run (unpaced and not paused).
    pub(super) fn start_announcements(&mut self) {
        if self.paused || self.announce_rate.is_some() {
            return;
        }
        while self.announcing < CONCURRENT_ANNOUNCEMENTS && self.start_announcement() {}
    }

    /// One announcement per tick of `--announce-rate`.
    pub(super) fn start_paced_announcement(&mut self) {
        if !self.paused && self.announcing < CONCURRENT_ANNOUNCEMENTS {
            self.start_announcement();
        }
    }

    /// Starts the next queued announcement; false when none is queued.
    fn start_announcement(&mut self) -> bool {
        let Some((key, reply)) = self.announce_queue.pop_front() else {
            return false;
        };
        let behaviour = self.swarm.behaviour_mut();
        if let Some(public) = behaviour.public_kad.as_mut() {
            if let Ok(id) = public.start_providing(key.clone()) {
                self.queries
                    .insert((Dht::Public, id), PendingQuery::Provide(None));
                self.announcing += 1;
            }
        }
        match self.swarm.behaviour_mut().private_kad.start_providing(key) {
            Ok(id) => {
                self.queries
                    .insert((Dht::Private, id), PendingQuery::Provide(reply));
                self.announcing += 1;
            }
            Err(e) => {
                if let Some(reply) = reply {
                    let _ = reply.send(Err(e.to_string()));
                }
            }
        }
        true
    }

    pub(super) fn stop_providing(&mut self, keys: &[kad::RecordKey]) {
        let withdrawn: HashSet<&kad::RecordKey> = keys.iter().collect();
        self.announce_queue
            .retain(|(key, _)| !withdrawn.contains(key));
        let behaviour = self.swarm.behaviour_mut();
        for key in keys {
            behaviour.private_kad.stop_providing(key);
            if let Some(public) = behaviour.public_kad.as_mut() {
                public.stop_providing(key);
            }
        }
        tracing::debug!(keys = keys.len(), "no longer provided");
    }

    pub(super) fn on_query(
        &mut self,
        id: (Dht, kad::QueryId),
        result: kad::QueryResult,
        last: bool,
    ) {
        match (result, self.queries.get(&id)) {
            (
                kad::QueryResult::GetProviders(Ok(kad::GetProvidersOk::FoundProviders {
                    providers,
                    ..
                })),
                Some(PendingQuery::Providers(lookup)),
            ) => {
                let lookup = *lookup;
                self.on_providers(id.0, lookup, providers);
            }
            (kad::QueryResult::StartProviding(result), Some(PendingQuery::Provide(_))) => {
                if let Some(PendingQuery::Provide(Some(reply))) = self.queries.remove(&id) {
                    // A network too small to store the record still leaves it in our own store.
                    let _ = reply.send(result.map(|_| ()).or_else(|e| match e {
                        kad::AddProviderError::Timeout { .. } => Ok(()),
                    }));
                }
                self.announcing = self.announcing.saturating_sub(1);
                self.announced += 1;
                self.start_announcements();
                return;
            }
            _ => {}
        }
        if last {
            if let Some(PendingQuery::Providers(lookup)) = self.queries.remove(&id) {
                self.on_lookup_query_done(lookup);
            }
        }
    }
}

/// The next tick of `pace`, or never when there is none.
pub(super) async fn tick(pace: &mut Option<tokio::time::Interval>) {
    match pace {
        Some(pace) => {
            pace.tick().await;
        }
        None => std::future::pending().await,
    }
}
