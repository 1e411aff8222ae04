//! The fleet's lab: one holder and up to fifteen fetchers, each a host of its own on one bridge
//! (namespaces `fb-h0` .. `fb-h15` and `fb-switch`, nothing else up in them). The holder runs on
//! host 0 for the whole run, holding one signed path; every round starts fresh fetchers (fresh
//! stores and state dirs) on hosts 1.., each connected to the holder and to the fetchers started
//! before it, so all of them are directly connected. Every node runs `--mode libp2p` (mDNS stays
//! inside the lab) with its upload and download capped by `--bandwidth-limit`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::{Digest, Sha256};
use tempfile::TempDir;

use crate::common::{nix, run, ChrootStore, NixKey};
use crate::lan_lab::peerix::{LanNode, Launch};
use crate::lan_lab::{Host, LanLab};
use crate::BenchResult;

/// What every namespace of the lab is named after.
const PREFIX: &str = "fb-";
/// The holder and the most fetchers a round can have.
pub(crate) const MAX_FETCHERS: usize = 15;
const HOLDER: Host = Host::Lan(0);
/// Every node's libp2p port, on its host's bridge address.
const P2P_PORT: u16 = 13304;
/// Each node's cap, each direction (`--bandwidth-limit` takes SI suffixes: 10,000,000 B/s).
pub(crate) const BANDWIDTH_LIMIT: &str = "10M";
pub(crate) const BANDWIDTH_BYTES_PER_S: f64 = 10e6;
/// The signed path's one file.
pub(crate) const PATH_BYTES: usize = 64 << 20;
/// What the nodes log: warnings and errors.
const NODE_LOG: &str = "warn";
/// How long the holder may take to publish its path.
const PUBLISH_LIMIT: Duration = Duration::from_secs(120);
/// How long fetchers may take to learn the path and connect to one another.
const READY_LIMIT: Duration = Duration::from_secs(60);

/// The lab with its holder. Fields drop in order: the node, then its files and the namespaces.
pub(crate) struct Lab {
    holder: LanNode,
    /// The holder's libp2p address, `/ip4/.../tcp/.../p2p/<id>`.
    holder_addr: String,
    pub(crate) path: String,
    pub(crate) nar_size: u64,
    nar_sha256: [u8; 32],
    key: NixKey,
    _holder_store: ChrootStore,
    peerix: PathBuf,
    lab: LanLab,
}

/// One round's fetchers, killed on drop before their stores are removed.
pub(crate) struct Fetchers {
    nodes: Vec<LanNode>,
    stores: Vec<ChrootStore>,
    /// The fewest peers any fetcher was connected to when the copies started.
    pub(crate) fewest_connected: usize,
}

/// What one round's copies did.
pub(crate) struct Copies {
    /// Each fetcher's `nix copy`, from the moment all were started.
    pub(crate) each: Vec<Duration>,
    /// Until the last one had the path.
    pub(crate) all: Duration,
    /// What the holder sent to peers during the copies.
    pub(crate) holder_upload: u64,
    /// What each fetcher sent to peers.
    pub(crate) fetcher_uploads: Vec<u64>,
    /// Fetchers whose copy has the holder's NAR, byte for byte.
    pub(crate) equal_nars: usize,
    /// Fetchers that fetched it with a swarm (the others took it from the holder alone).
    pub(crate) swarmed: usize,
}

impl Lab {
    /// The lab, once the holder has published its path; `None` without root.
    pub(crate) fn start(peerix: &Path) -> BenchResult<Option<Lab>> {
        let Some(lab) = LanLab::named(PREFIX, MAX_FETCHERS + 1) else {
            return Ok(None);
        };
        let key = NixKey::generate("fleet-bench-1");
        let store = ChrootStore::empty();
        let scratch = TempDir::new()?;
        let path = store.add_file(scratch.path(), "fleet-64MiB", &incompressible(PATH_BYTES));
        store.sign(&key.secret, &[&path]);
        let nar_sha256 = Sha256::digest(store.dump(&path)).into();
        let nar_size = store.path_info(&path)["narSize"]
            .as_u64()
            .ok_or("no narSize in nix path-info")?;

        let holder = serve(&lab, peerix, HOLDER, &store, &key.public, &[]);
        wait_for(PUBLISH_LIMIT, || published(&status(&lab, &holder)))
            .map_err(|_| "the holder never published its path")?;
        let holder_addr = p2p_addr(&lab, &holder, HOLDER)?;
        Ok(Some(Lab {
            holder,
            holder_addr,
            path,
            nar_size,
            nar_sha256,
            key,
            _holder_store: store,
            peerix: peerix.to_owned(),
            lab,
        }))
    }

    /// `count` fresh fetchers, once each knows the path and is connected to the holder and to
    /// every other fetcher (or [`READY_LIMIT`] has passed: `fewest_connected` tells).
    pub(crate) fn fetchers(&self, count: usize) -> BenchResult<Fetchers> {
        assert!((1..=MAX_FETCHERS).contains(&count));
        let mut nodes = Vec::with_capacity(count);
        let mut stores = Vec::with_capacity(count);
        let mut bootstrap = vec![self.holder_addr.clone()];
        for i in 1..=count {
            let store = empty_store();
            let peers = bootstrap.join(",");
            let extra = ["--bootstrap-peers", &peers];
            let node = serve(
                &self.lab,
                &self.peerix,
                Host::Lan(i),
                &store,
                &self.key.public,
                &extra,
            );
            bootstrap.push(p2p_addr(&self.lab, &node, Host::Lan(i))?);
            nodes.push(node);
            stores.push(store);
        }
        let knows_path =
            |node: &LanNode| status(&self.lab, node)["peers"]["paths"].as_u64() >= Some(1);
        wait_for(READY_LIMIT, || nodes.iter().all(knows_path))
            .map_err(|_| "a fetcher never learned the holder's path")?;
        let connected = |node: &LanNode| connected_peers(&status(&self.lab, node));
        // Connections come as the mesh fills; a slow one is reported, not waited for forever.
        let _ = wait_for(READY_LIMIT, || nodes.iter().all(|n| connected(n) >= count));
        let fewest_connected = nodes.iter().map(connected).min().unwrap_or(0);
        Ok(Fetchers {
            nodes,
            stores,
            fewest_connected,
        })
    }

    /// Every fetcher `nix copy`s the path from its own Peerix at once, with `require-sigs` and
    /// only the holder's key trusted; then their NARs are checked against the holder's.
    pub(crate) fn copy_all(&self, fetchers: &Fetchers) -> BenchResult<Copies> {
        let holder_before = bytes_out(&status(&self.lab, &self.holder));
        let started = Instant::now();
        let finished: Vec<_> = std::thread::scope(|scope| {
            let copies: Vec<_> = fetchers
                .nodes
                .iter()
                .zip(&fetchers.stores)
                .map(|(node, store)| {
                    scope.spawn(move || {
                        let out = node.nix_copy(&self.lab, &self.key.public, store, &[&self.path]);
                        (started.elapsed(), out)
                    })
                })
                .collect();
            copies
                .into_iter()
                .map(|copy| copy.join().expect("a copy thread panicked"))
                .collect()
        });
        let all = started.elapsed();
        let holder_upload =
            bytes_out(&status(&self.lab, &self.holder)).saturating_sub(holder_before);
        let mut each = Vec::with_capacity(finished.len());
        for (i, (elapsed, out)) in finished.into_iter().enumerate() {
            if !out.status.success() {
                let stderr = String::from_utf8_lossy(&out.stderr);
                return Err(format!("fetcher {}'s nix copy failed: {stderr}", i + 1).into());
            }
            each.push(elapsed);
        }
        let statuses: Vec<Value> = fetchers
            .nodes
            .iter()
            .map(|node| status(&self.lab, node))
            .collect();
        let fetcher_uploads = statuses.iter().map(bytes_out).collect();
        let swarmed = statuses
            .iter()
            .filter(|s| s["swarm"]["nars_joined"].as_u64() >= Some(1))
            .count();
        let equal_nars = fetchers
            .stores
            .iter()
            .filter(|store| {
                <[u8; 32]>::from(Sha256::digest(store.dump(&self.path))) == self.nar_sha256
            })
            .count();
        Ok(Copies {
            each,
            all,
            holder_upload,
            fetcher_uploads,
            equal_nars,
            swarmed,
        })
    }
}

/// A store with an empty Nix database, as a machine's is before it fetches anything.
fn empty_store() -> ChrootStore {
    let store = ChrootStore::empty();
    run(nix("nix", store.root()).args(["store", "ping", "--store", &store.url()]));
    store
}

/// `peerix serve` on `host` over `store`, trusting `key`, capped, on the host's bridge address.
fn serve(
    lab: &LanLab,
    peerix: &Path,
    host: Host,
    store: &ChrootStore,
    key: &str,
    extra: &[&str],
) -> LanNode {
    let listen = format!("/ip4/{}/tcp/{P2P_PORT}", lab.addr(host));
    let mut flags = vec![
        "--listen-addrs",
        &listen,
        "--bandwidth-limit",
        BANDWIDTH_LIMIT,
        "--trusted-public-key",
        key,
        // Nothing outside the lab to ask.
        "--upstream-cache",
        "",
    ];
    flags.extend_from_slice(extra);
    let launch = Launch {
        peerix,
        rust_log: NODE_LOG,
    };
    LanNode::serve_store_root(lab, host, launch, "libp2p", store.root(), &flags)
}

/// `node`'s libp2p address on the bridge, with its peer id.
fn p2p_addr(lab: &LanLab, node: &LanNode, host: Host) -> BenchResult<String> {
    let status = status(lab, node);
    let id = status["node"]["peer_id"]
        .as_str()
        .ok_or("/status names no peer id")?;
    Ok(format!("/ip4/{}/tcp/{P2P_PORT}/p2p/{id}", lab.addr(host)))
}

fn status(lab: &LanLab, node: &LanNode) -> Value {
    node.json(lab, "/status").unwrap_or(Value::Null)
}

/// Whether the scan has finished with the one path indexed: its NAR is imported, so none of
/// the import's hashing falls into a round.
fn published(status: &Value) -> bool {
    let scan = &status["scan"];
    status["indexed_paths"].as_u64() == Some(1)
        && scan["running"] == false
        && scan["paths_done"].as_u64() >= Some(1)
}

fn connected_peers(status: &Value) -> usize {
    status["node"]["peers"].as_array().map_or(0, Vec::len)
}

/// What the node sent to peers since it started.
fn bytes_out(status: &Value) -> u64 {
    status["node"]["bytes_out"].as_u64().unwrap_or(0)
}

/// Polls `ready` every 100 ms for up to `limit`; `Err(())` when it never held.
fn wait_for(limit: Duration, mut ready: impl FnMut() -> bool) -> Result<(), ()> {
    let started = Instant::now();
    while !ready() {
        if started.elapsed() > limit {
            return Err(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// `len` bytes no compression shrinks (xorshift64*, seeded by the clock): new every run.
fn incompressible(len: usize) -> Vec<u8> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64);
    let mut state = nanos | 1;
    let mut bytes = Vec::with_capacity(len + 8);
    while bytes.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        bytes.extend_from_slice(&state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    bytes.truncate(len);
    bytes
}
