//! Swarming: the near nodes that fetch the same large NAR at the same time fetch it together.
//! A node that starts tells the near members over `/peerix/<tag>/swarm/1.0.0`; those fetching
//! it too answer so, and each side adds the other to the node's [`Swarm`] for that CID, which
//! then takes each block from the holders once for all of them and passes it on (see
//! `peerix_node::Swarm`). Every block is checked against its CID, the whole NAR against its
//! NarHash as on every other path; a member that sends a wrong block is banned by the node.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use cid::Cid;
use hashlink::LruCache;
use peerix_node::{InboundStream, NodeError, NodeHandle, PeerId, Swarm, MAX_MEMBERS};
use serde_json::{json, Value};

use super::near::NearMembers;
use crate::publish::Admission;
use crate::wire::frames::{expect_frame, write_frame};
use crate::wire::swarm::{Fetching, SwarmAnswer};
use crate::wire::SWARM_PROTOCOL;

/// NARs fetched with a swarm at once at most; more are fetched from their holders alone.
const ACTIVE: usize = 64;
/// CIDs whose fetchers were heard of, remembered at most, and for how long: a node that
/// starts a little later than the others still finds them.
const HEARD: usize = 1024;
const HEARD_FOR: Duration = Duration::from_secs(120);
/// How often the near members are looked at again.
const NEAR_REFRESH: Duration = Duration::from_secs(1);
/// How long a NAR request may wait for the near members as they are now.
const NEAR_LOOKUP: Duration = Duration::from_millis(200);
/// Deadlines of one notice: to open the stream, and for the whole exchange.
const OPEN_DEADLINE: Duration = Duration::from_secs(2);
const EXCHANGE_DEADLINE: Duration = Duration::from_secs(3);
/// Notices answered at once: per peer, and in all.
const PER_PEER: usize = 8;
const IN_ALL: usize = 64;
const TURN_WAIT: Duration = Duration::from_secs(1);

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

struct Active {
    swarm: Swarm,
    /// Readers of the NAR fetching with it.
    readers: usize,
}

pub struct Swarms {
    node: NodeHandle,
    near: Arc<NearMembers>,
    /// The near members as last looked at (every second, and by each fetch that may swarm):
    /// whom a new swarm tells, and what `why` and the status report.
    near_now: RwLock<Vec<PeerId>>,
    active: Mutex<HashMap<Cid, Active>>,
    /// Near members that said they fetch a CID, and when.
    heard: Mutex<LruCache<Cid, Vec<(PeerId, Instant)>>>,
    /// NARs fetched with a swarm since start.
    joined: std::sync::atomic::AtomicU64,
}

/// A fetch's place in its swarm, left when dropped.
pub struct Joined {
    swarms: Arc<Swarms>,
    swarm: Swarm,
}

impl Joined {
    pub fn swarm(&self) -> Swarm {
        self.swarm.clone()
    }
}

impl Drop for Joined {
    fn drop(&mut self) {
        let mut active = lock(&self.swarms.active);
        let cid = self.swarm.root();
        if let Some(entry) = active.get_mut(&cid) {
            entry.readers -= 1;
            if entry.readers == 0 {
                active.remove(&cid);
            }
        }
    }
}

impl Swarms {
    /// Answers near members' notices from now on.
    pub fn start(node: NodeHandle, near: Arc<NearMembers>) -> Result<Arc<Self>, NodeError> {
        let mut notices = node.accept(node.network_protocol(SWARM_PROTOCOL))?;
        let this = Arc::new(Self {
            node,
            near,
            near_now: RwLock::default(),
            active: Mutex::default(),
            heard: Mutex::new(LruCache::new(HEARD)),
            joined: Default::default(),
        });
        let turns = Admission::new(PER_PEER, IN_ALL, TURN_WAIT);
        let answering = this.clone();
        tokio::spawn(async move {
            while let Some((peer, stream)) = notices.next().await {
                let (swarms, turns) = (answering.clone(), turns.clone());
                tokio::spawn(async move {
                    let Some(_turn) = turns.turn(peer).await else {
                        return;
                    };
                    let exchange = swarms.answer(peer, stream);
                    let _ = tokio::time::timeout(EXCHANGE_DEADLINE, exchange).await;
                });
            }
        });
        let watching = Arc::downgrade(&this);
        tokio::spawn(async move {
            while let Some(swarms) = watching.upgrade() {
                swarms.look_at_near().await;
                drop(swarms);
                tokio::time::sleep(NEAR_REFRESH).await;
            }
        });
        Ok(this)
    }

    /// The near members that are not among `holders`: the company a fetch of their NAR may
    /// have.
    pub fn company(&self, holders: &[PeerId]) -> usize {
        let near = self.near_now.read().unwrap_or_else(PoisonError::into_inner);
        near.iter().filter(|p| !holders.contains(p)).count()
    }

    /// Whether a NAR held by `holders` could be fetched with others, by the near members as
    /// they are now: a fleet's machines ask for a new path in the same second they connect, and
    /// one that looked at a list a second old would fetch alone from the holders.
    ///
    /// A node too busy to say within [`NEAR_LOOKUP`] is judged by the list it gave last.
    pub async fn may_have_company(&self, holders: &[PeerId]) -> bool {
        let _ = tokio::time::timeout(NEAR_LOOKUP, self.look_at_near()).await;
        self.company(holders) > 0
    }

    /// Takes the near members as they are now into `near_now`.
    async fn look_at_near(&self) {
        let near = self.near.list().await;
        *self
            .near_now
            .write()
            .unwrap_or_else(PoisonError::into_inner) = near;
    }

    /// Joins (or starts) the swarm for `cid`, telling the near members that are not holders;
    /// `None` when too many NARs are being fetched with swarms.
    pub fn join(self: &Arc<Self>, cid: Cid, holders: Vec<PeerId>) -> Option<Joined> {
        let (swarm, first) = {
            let mut active = lock(&self.active);
            let full = active.len() >= ACTIVE;
            match active.get_mut(&cid) {
                Some(entry) => {
                    entry.readers += 1;
                    (entry.swarm.clone(), false)
                }
                None if full => return None,
                None => {
                    let swarm = Swarm::new(cid, holders.clone());
                    let entry = Active {
                        swarm: swarm.clone(),
                        readers: 1,
                    };
                    active.insert(cid, entry);
                    (swarm, true)
                }
            }
        };
        if first {
            self.joined
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            for peer in self.heard_of(&cid) {
                swarm.add_member(peer);
            }
            let near: Vec<PeerId> = self
                .near_now
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .iter()
                .copied()
                .filter(|p| !holders.contains(p))
                .take(MAX_MEMBERS)
                .collect();
            for peer in near {
                tokio::spawn(self.clone().tell(peer, swarm.clone()));
            }
        }
        Some(Joined {
            swarms: self.clone(),
            swarm,
        })
    }

    /// Tells `peer` this node fetches the swarm's CID; it joins if it fetches it too.
    async fn tell(self: Arc<Self>, peer: PeerId, swarm: Swarm) {
        let protocol = self.node.network_protocol(SWARM_PROTOCOL);
        let exchange = async {
            let opened = tokio::time::timeout(OPEN_DEADLINE, self.node.open_stream(peer, protocol));
            let mut stream = opened.await.ok()?.ok()?;
            write_frame(&mut stream, &Fetching(swarm.root()).encode())
                .await
                .ok()?;
            let answer = expect_frame(&mut stream).await.ok()?;
            SwarmAnswer::decode(&answer).ok()
        };
        let answer = tokio::time::timeout(EXCHANGE_DEADLINE, exchange).await;
        if let Ok(Some(SwarmAnswer::Fetching)) = answer {
            swarm.add_member(peer);
        }
    }

    async fn answer(&self, peer: PeerId, mut stream: InboundStream) {
        let Ok(Ok(notice)) = expect_frame(&mut stream)
            .await
            .map(|frame| Fetching::decode(&frame))
        else {
            tracing::debug!(%peer, "bad swarm notice");
            return;
        };
        let Fetching(cid) = notice;
        // Only a near member may count on this node's uplink.
        let answer = if self.near.contains(peer).await {
            self.heard(cid, peer);
            match lock(&self.active).get(&cid) {
                Some(entry) => {
                    entry.swarm.add_member(peer);
                    SwarmAnswer::Fetching
                }
                None => SwarmAnswer::NotFetching,
            }
        } else {
            SwarmAnswer::NotFetching
        };
        let _ = write_frame(&mut stream, &answer.encode()).await;
    }

    fn heard(&self, cid: Cid, peer: PeerId) {
        let mut heard = lock(&self.heard);
        let now = Instant::now();
        if !heard.contains_key(&cid) {
            heard.insert(cid, Vec::new());
        }
        let Some(peers) = heard.get_mut(&cid) else {
            return;
        };
        peers.retain(|(p, at)| *p != peer && now.duration_since(*at) < HEARD_FOR);
        if peers.len() < MAX_MEMBERS {
            peers.push((peer, now));
        }
    }

    fn heard_of(&self, cid: &Cid) -> Vec<PeerId> {
        let mut heard = lock(&self.heard);
        heard.get(cid).map_or_else(Vec::new, |peers| {
            peers
                .iter()
                .filter(|(_, at)| at.elapsed() < HEARD_FOR)
                .map(|(p, _)| *p)
                .collect()
        })
    }

    /// For `/status`: the swarms now, what the node keeps and passed on, and whom it banned.
    pub fn json(&self) -> Value {
        let node = self.node.swarm_status();
        let active = lock(&self.active);
        let swarms: Vec<Value> = active
            .iter()
            .map(|(cid, entry)| json!({"cid": cid.to_string(), "members": entry.swarm.members().len()}))
            .collect();
        let near = self.near_now.read().map_or(0, |n| n.len());
        json!({
            "near_members": near,
            "fetching": swarms,
            "nars_joined": self.joined.load(std::sync::atomic::Ordering::Relaxed),
            "kept_blocks": node.kept_blocks,
            "kept_bytes": node.kept_bytes,
            "owed_wants": node.owed_wants,
            "blocks_passed_on": node.passed_on,
            "banned": node.banned.iter().map(ToString::to_string).collect::<Vec<_>>(),
        })
    }
}
