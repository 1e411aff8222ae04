//! Keeping the tracker and this node in step: heartbeats with the node's addresses, the shared
//! store paths (a full set once, then what changed) and the CIDs their NARs are published
//! under, and the network's membership set in the other direction. A failure is retried with
//! backoff; nothing here ever holds a request of Nix.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use cid::Cid;
use peerix_http::StoreHash;
use peerix_node::Multiaddr;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

use super::client::TrackerError;
use super::source::TrackerSource;
use crate::publish::IndexDb;
use crate::wire::tracker::{WriteAnswer, WritePayload, MAX_ADDRS, MAX_CIDS, MAX_HASHES};

/// Between heartbeats; the tracker forgets a peer silent for twice as long.
pub const HEARTBEAT: Duration = Duration::from_secs(60);
/// Between polls of the membership set: how stale "nobody holds it" may be.
const MEMBERSHIP_POLL: Duration = Duration::from_secs(5);
/// Changes to the shared set are sent at most this often.
const DELTA_PAUSE: Duration = Duration::from_secs(1);
/// Between looks for newly published CIDs (a count of the publication index first) and for
/// changes of the node's addresses.
const RECHECK: Duration = Duration::from_secs(5);
/// Between looks at the tracker's peer list for peers to connect to.
const MEET_PEERS: Duration = Duration::from_secs(30);
const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_LAST: Duration = Duration::from_secs(30);

/// Runs both directions until the node stops.
pub async fn run(
    source: Arc<TrackerSource>,
    shared: watch::Receiver<Arc<HashSet<StoreHash>>>,
    index: Arc<IndexDb>,
    http_port: u16,
) {
    let restarted = Arc::new(Notify::new());
    tokio::join!(
        follow_membership(&source, &restarted),
        announce(&source, shared, &index, http_port, &restarted),
        meet_peers(&source),
    );
}

/// Doubles the pause after each failure, back to the first after a success.
struct Backoff(Duration);

impl Backoff {
    fn next(&mut self) -> Duration {
        let pause = self.0;
        self.0 = (self.0 * 2).min(RETRY_LAST);
        pause
    }

    fn reset(&mut self) {
        self.0 = RETRY_FIRST;
    }
}

/// Runs `round` forever: `every` apart after a success, backing off after a failure.
async fn repeat<F, R>(source: &TrackerSource, every: Duration, mut round: F)
where
    F: FnMut() -> R,
    R: Future<Output = Result<(), TrackerError>>,
{
    let mut backoff = Backoff(RETRY_FIRST);
    loop {
        let pause = match round().await {
            Ok(()) => {
                backoff.reset();
                every
            }
            Err(e) => {
                source.health.failed(source.client.url(), &e);
                backoff.next()
            }
        };
        tokio::time::sleep(pause).await;
    }
}

async fn follow_membership(source: &TrackerSource, restarted: &Notify) {
    repeat(source, MEMBERSHIP_POLL, || async {
        let since = source.membership.version();
        let answer = source.client.membership(since).await?;
        source.health.succeeded(source.client.url());
        if source.membership.apply(&answer) {
            tracing::info!("the tracker restarted: announcing again");
            restarted.notify_one();
        }
        Ok(())
    })
    .await;
}

async fn meet_peers(source: &TrackerSource) {
    repeat(source, MEET_PEERS, || source.meet_peers()).await;
}

/// What the tracker holds of this node, as far as this node knows.
#[derive(Default)]
struct Told {
    /// Its addresses at the last heartbeat.
    addrs: Vec<Multiaddr>,
    /// Its shared paths; `None`: unknown, send them whole.
    paths: Option<Arc<HashSet<StoreHash>>>,
    /// The CIDs registered, and the size of the publication index they were read at.
    cids: HashMap<StoreHash, Cid>,
    cids_at: Option<u64>,
}

async fn announce(
    source: &TrackerSource,
    mut shared: watch::Receiver<Arc<HashSet<StoreHash>>>,
    index: &Arc<IndexDb>,
    http_port: u16,
    restarted: &Notify,
) {
    // Until the store was read, the empty set only means "not known yet".
    let mut store_read = false;
    let mut told = Told::default();
    let mut next_heartbeat = Instant::now();
    let mut backoff = Backoff(RETRY_FIRST);
    loop {
        let due = Instant::now() >= next_heartbeat;
        let current = store_read.then(|| shared.borrow().clone());
        let pause = match step(source, &mut told, due, current, index, http_port).await {
            Ok(beat) => {
                if beat {
                    next_heartbeat = Instant::now() + HEARTBEAT;
                }
                backoff.reset();
                None
            }
            Err(TrackerError::UnknownPeer) => {
                told = Told::default();
                next_heartbeat = Instant::now();
                Some(RETRY_FIRST)
            }
            Err(e) => {
                source.health.failed(source.client.url(), &e);
                Some(backoff.next())
            }
        };
        if let Some(pause) = pause {
            tokio::time::sleep(pause).await;
            continue;
        }
        tokio::select! {
            () = tokio::time::sleep_until(next_heartbeat) => {}
            changed = shared.changed() => {
                if changed.is_err() {
                    return;
                }
                store_read = true;
                tokio::time::sleep(DELTA_PAUSE).await;
            }
            () = restarted.notified() => told = Told::default(),
            // The scan publishes paths (and their CIDs) after they appear in the store, and
            // the node's addresses change (a relay reservation, an address confirmed).
            () = tokio::time::sleep(RECHECK) => {}
        }
    }
}

/// Brings the tracker up to date: a heartbeat when one is `due` or the node's addresses
/// changed, then the shared paths (`current`, once the store was read) and their CIDs. Returns
/// whether a heartbeat was sent.
async fn step(
    source: &TrackerSource,
    told: &mut Told,
    due: bool,
    current: Option<Arc<HashSet<StoreHash>>>,
    index: &Arc<IndexDb>,
    http_port: u16,
) -> Result<bool, TrackerError> {
    let addrs = own_addrs(source).await;
    let beat = due || addrs != told.addrs;
    if beat {
        heartbeat(source, http_port, addrs.clone()).await?;
        told.addrs = addrs;
    }
    let Some(current) = current else {
        return Ok(beat);
    };
    if told.paths.is_none() && current.len() > MAX_HASHES {
        tracing::warn!(
            shared = current.len(),
            "the tracker takes {MAX_HASHES} paths per peer: the rest are found over libp2p only"
        );
    }
    let current = trackable(current);
    let changed = told.paths.as_deref() != Some(&*current);
    if told.paths.is_none() {
        told.cids.clear();
        told.cids_at = None;
    }
    send_packages(source, told.paths.as_deref(), &current).await?;
    told.paths = Some(current.clone());
    // A cheap count tells whether the scan published anything since.
    let indexed = index.count().ok();
    if changed || indexed.is_none() || indexed != told.cids_at {
        send_cids(source, index, &current, &mut told.cids).await?;
        told.cids_at = indexed;
    }
    Ok(beat)
}

async fn heartbeat(
    source: &TrackerSource,
    http_port: u16,
    addrs: Vec<Multiaddr>,
) -> Result<(), TrackerError> {
    source
        .client
        .write::<WriteAnswer>(WritePayload::Announce {
            port: http_port,
            addrs,
        })
        .await?;
    source.health.succeeded(source.client.url());
    Ok(())
}

/// The addresses others may reach this node at: confirmed external ones first.
async fn own_addrs(source: &TrackerSource) -> Vec<Multiaddr> {
    let Some(node) = source.node() else {
        return Vec::new();
    };
    let Ok(status) = node.status().await else {
        return Vec::new();
    };
    let mut addrs = status.advertised_addrs();
    addrs.truncate(MAX_ADDRS);
    addrs
}

/// Tells the tracker `current`: whole when it knows nothing of this node, else what changed.
async fn send_packages(
    source: &TrackerSource,
    told: Option<&HashSet<StoreHash>>,
    current: &HashSet<StoreHash>,
) -> Result<(), TrackerError> {
    let client = &source.client;
    let Some(told) = told else {
        let hashes: Vec<StoreHash> = current.iter().copied().collect();
        client
            .write::<WriteAnswer>(WritePayload::PackagesBatch { hashes })
            .await?;
        return Ok(());
    };
    let added: Vec<StoreHash> = current.difference(told).copied().collect();
    let removed: Vec<StoreHash> = told.difference(current).copied().collect();
    for removed in removed.chunks(MAX_HASHES) {
        let payload = WritePayload::PackagesDelta {
            added: Vec::new(),
            removed: removed.to_vec(),
        };
        client.write::<WriteAnswer>(payload).await?;
    }
    for added in added.chunks(MAX_HASHES) {
        let payload = WritePayload::PackagesDelta {
            added: added.to_vec(),
            removed: Vec::new(),
        };
        client.write::<WriteAnswer>(payload).await?;
    }
    Ok(())
}

/// The shared paths the tracker is told of: all of them up to [`MAX_HASHES`], which it takes
/// per peer, else the `MAX_HASHES` smallest hashes. The choice is the same from one round to
/// the next, so a change in the store is a delta the tracker accepts (removals go first), and
/// only CIDs of paths the tracker knows this node holds are registered.
fn trackable(shared: Arc<HashSet<StoreHash>>) -> Arc<HashSet<StoreHash>> {
    if shared.len() <= MAX_HASHES {
        return shared;
    }
    let mut hashes: Vec<StoreHash> = shared.iter().copied().collect();
    hashes.select_nth_unstable(MAX_HASHES);
    hashes.truncate(MAX_HASHES);
    Arc::new(hashes.into_iter().collect())
}

/// Registers the CIDs of shared paths the tracker does not have yet, in batches.
async fn send_cids(
    source: &TrackerSource,
    index: &Arc<IndexDb>,
    shared: &HashSet<StoreHash>,
    registered: &mut HashMap<StoreHash, Cid>,
) -> Result<(), TrackerError> {
    let reading = index.clone();
    let read = tokio::task::spawn_blocking(move || reading.cids()).await;
    let published = match read
        .map_err(|e| e.to_string())
        .and_then(|r| r.map_err(|e| e.to_string()))
    {
        Ok(published) => published,
        Err(error) => {
            tracing::warn!(%error, "cannot read the CIDs to register");
            return Ok(());
        }
    };
    registered.retain(|hash, _| shared.contains(hash));
    let new: Vec<(StoreHash, Cid)> = published
        .into_iter()
        .filter(|(hash, cid)| shared.contains(hash) && registered.get(hash) != Some(cid))
        .collect();
    for mappings in new.chunks(MAX_CIDS) {
        let payload = WritePayload::CidBatch {
            mappings: mappings.to_vec(),
        };
        source.client.write::<WriteAnswer>(payload).await?;
        registered.extend(mappings.iter().copied());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A distinct valid hash for `n`: 32 nixbase32 digits.
    fn hash(n: u64) -> StoreHash {
        const DIGITS: &[u8] = b"0123456789abcdfghijklmnpqrsvwxyz";
        let text: String = (0..32u32)
            .rev()
            .map(|i| DIGITS[(n.checked_shr(5 * i).unwrap_or(0) & 31) as usize] as char)
            .collect();
        StoreHash::parse(&text).unwrap()
    }

    #[test]
    fn a_store_past_the_bound_changes_by_deltas_the_tracker_takes() {
        let many: HashSet<StoreHash> = (1..=MAX_HASHES as u64 + 50).map(hash).collect();
        assert_eq!(many.len(), MAX_HASHES + 50);
        let told = trackable(Arc::new(many.clone()));
        assert_eq!(told.len(), MAX_HASHES);
        assert_eq!(*trackable(Arc::new(many.clone())), *told, "the same choice");

        // A path that sorts first comes: it goes in and one other goes out, never 100,001.
        let mut grown = many.clone();
        grown.insert(hash(0));
        let now = trackable(Arc::new(grown));
        assert_eq!(now.len(), MAX_HASHES);
        assert!(now.contains(&hash(0)));
        assert_eq!(now.difference(&told).count(), 1);
        assert_eq!(told.difference(&now).count(), 1);

        // A path the tracker was not told of goes: nothing changes for it.
        let mut shrunk = many;
        let untold = *shrunk.iter().find(|h| !told.contains(h)).unwrap();
        shrunk.remove(&untold);
        assert_eq!(*trackable(Arc::new(shrunk)), *told);

        let few: Arc<HashSet<StoreHash>> = Arc::new((0..10).map(hash).collect());
        assert!(
            Arc::ptr_eq(&trackable(few.clone()), &few),
            "no copy below the bound"
        );
    }
}
