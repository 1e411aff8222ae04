//! The bench's two LAN labs, kept up for the whole run: Peerix hosts only, and the same hosts
//! with an old peer on the link. A holds a synthetic store, B and C start empty; every node runs
//! `--mode lan` with its defaults (no `--offline`: mDNS and broadcasts stay in the lab), B with
//! `--no-verify --trusted-peer A` since synthetic paths are unsigned.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use sha2::{Digest, Sha256};
use tempfile::TempDir;

use crate::common::eventually;
use crate::common::synthetic_store::{nar_of_file, store_hashes, SyntheticStore, FILE_CONTENTS};
use crate::lan_lab::old_peer::{old_peer_ask_from_port, OldPeer, OLD_UDP_PORT};
use crate::lan_lab::peerix::{LanNode, Launch};
use crate::lan_lab::{Host, LanLab};
use crate::BenchResult;

/// Paths in A's store: every round asks B for paths of A's it has not asked for before.
pub(crate) const A_PATHS: usize = 3_000;
pub(crate) const A: Host = Host::Lan(0);
pub(crate) const B: Host = Host::Lan(1);
const C: Host = Host::Lan(2);
/// The old peer's host, in the lab that has one.
const OLD: Host = Host::Lan(3);
const OLD_HTTP_PORT: u16 = 8080;
/// The port the old peer's own requests leave from: its server holds the UDP port.
const OLD_ASK_PORT: u16 = 12399;
/// What the nodes log: their start, warnings and errors.
const NODE_LOG: &str = "info";
/// How long A may take to scan its store and B to learn its paths.
const READY_LIMIT: Duration = Duration::from_secs(120);
/// How long B may take to notice an old peer's request.
const HEARD_LIMIT: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Link {
    PeerixOnly,
    WithOldPeer,
}

impl std::fmt::Display for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Link::PeerixOnly => "Peerix peers only",
            Link::WithOldPeer => "one old peer on the link",
        })
    }
}

/// One lab with its nodes. Fields drop in order: the processes, then their files and the
/// namespaces.
pub(crate) struct Lab {
    pub(crate) link: Link,
    pub(crate) b: LanNode,
    _a: LanNode,
    _c: LanNode,
    old_peer: Option<OldPeer>,
    /// A's paths no round has asked B for yet.
    unasked: Vec<String>,
    /// Every hash A holds, so that no miss is one of them.
    held: HashSet<String>,
    _store: SyntheticStore,
    _empty_stores: TempDir,
    pub(crate) lab: LanLab,
}

impl Lab {
    /// The lab for `link`, its nodes running `peerix`, once A has scanned its store and B
    /// serves A's paths; `None` without root.
    pub(crate) fn start(link: Link, peerix: &Path) -> BenchResult<Option<Lab>> {
        let hosts = match link {
            Link::PeerixOnly => 3,
            Link::WithOldPeer => 4,
        };
        let Some(lab) = LanLab::new(hosts) else {
            return Ok(None);
        };
        let store = SyntheticStore::generate(A_PATHS)?;
        let empty_stores = TempDir::new()?;
        let (b_root, c_root) = (empty_stores.path().join("b"), empty_stores.path().join("c"));
        std::fs::create_dir_all(&b_root)?;
        std::fs::create_dir_all(&c_root)?;
        let launch = Launch {
            peerix,
            rust_log: NODE_LOG,
        };
        let a = LanNode::serve_store_root(&lab, A, launch, "lan", &store.root, &[]);
        let a_id = status(&lab, &a)["node"]["peer_id"]
            .as_str()
            .ok_or("A's /status names no peer id")?
            .to_owned();
        let b_flags = ["--no-verify", "--trusted-peer", &a_id];
        let b = LanNode::serve_store_root(&lab, B, launch, "lan", &b_root, &b_flags);
        let c = LanNode::serve_store_root(&lab, C, launch, "lan", &c_root, &[]);
        let old_peer = match link {
            Link::PeerixOnly => None,
            Link::WithOldPeer => {
                let (narinfo, nar) = old_peer_path(empty_stores.path())?;
                let paths = [(narinfo.as_path(), nar.as_path())];
                Some(OldPeer::serve(
                    &lab,
                    OLD,
                    OLD_UDP_PORT,
                    OLD_HTTP_PORT,
                    &paths,
                ))
            }
        };

        eventually(READY_LIMIT, "A never finished its scan", || {
            scanned(&status(&lab, &a), A_PATHS)
        });
        eventually(READY_LIMIT, "B never learned A's paths", || {
            status(&lab, &b)["peers"]["paths"].as_u64() >= Some(A_PATHS as u64)
        });
        Ok(Some(Lab {
            link,
            b,
            _a: a,
            _c: c,
            old_peer,
            unasked: store.hashes.clone(),
            held: store.hashes.iter().cloned().collect(),
            _store: store,
            _empty_stores: empty_stores,
            lab,
        }))
    }

    /// `count` of A's paths that B was never asked for.
    pub(crate) fn first_time_hits(&mut self, count: usize) -> BenchResult<Vec<String>> {
        if self.unasked.len() < count {
            return Err(format!("A has only {} paths left to ask for", self.unasked.len()).into());
        }
        Ok(self.unasked.split_off(self.unasked.len() - count))
    }

    /// `count` valid store hashes that no node holds, new every call.
    pub(crate) fn misses(&self, count: usize) -> Vec<String> {
        let mut hashes = store_hashes(count + 16);
        hashes.retain(|h| !self.held.contains(h));
        hashes.truncate(count);
        hashes
    }

    /// B's `/status` section of the LAN protocol.
    pub(crate) fn b_lan(&self) -> Value {
        self.b.lan_status(&self.lab)
    }

    /// The old peer asks by broadcast for a path nobody has, waiting up to `timeout_ms`; returns
    /// the milliseconds its own process waited. Its request makes B hear it.
    pub(crate) fn old_peer_asks(&self, timeout_ms: u64) -> BenchResult<f64> {
        if self.old_peer.is_none() {
            return Err("this lab has no old peer".into());
        }
        let hash = &self.misses(1)[0];
        let report =
            old_peer_ask_from_port(&self.lab, OLD, OLD_UDP_PORT, OLD_ASK_PORT, hash, timeout_ms);
        if report.answered {
            return Err(format!("someone answered for a path nobody has: {report:?}").into());
        }
        Ok(report.elapsed_ms)
    }

    /// Waits until B counts an old peer as heard.
    pub(crate) fn until_b_hears_the_old_peer(&self) {
        eventually(HEARD_LIMIT, "B never heard the old peer", || {
            self.b_lan()["old_peers_heard"]
                .as_array()
                .is_some_and(|heard| !heard.is_empty())
        });
    }
}

fn status(lab: &LanLab, node: &LanNode) -> Value {
    node.json(lab, "/status").unwrap_or(Value::Null)
}

/// Whether a node's publication scan went over all of its `paths`: measuring during the scan
/// would charge its hashing to B.
fn scanned(status: &Value, paths: usize) -> bool {
    let scan = &status["scan"];
    let number = |field: &str| scan[field].as_u64().unwrap_or(0);
    status["indexed_paths"].as_u64() == Some(paths as u64)
        && scan["running"] == false
        && number("paths_done") + number("paths_failed") >= paths as u64
}

/// A path of the old peer's own, which nobody asks for (the script serves at least one): its
/// narinfo and NAR files in `dir`.
fn old_peer_path(dir: &Path) -> BenchResult<(PathBuf, PathBuf)> {
    let nar = nar_of_file(FILE_CONTENTS);
    let hash = &store_hashes(1)[0];
    let narinfo = format!(
        "StorePath: /nix/store/{hash}-old-peer-only\nURL: nar/{hash}.nar\nCompression: none\n\
         NarHash: {}\nNarSize: {}\nReferences: \n",
        peerix_http::NarHash(Sha256::digest(&nar).into()),
        nar.len()
    );
    let (narinfo_file, nar_file) = (dir.join("old.narinfo"), dir.join("old.nar"));
    std::fs::write(&narinfo_file, narinfo)?;
    std::fs::write(&nar_file, nar)?;
    Ok((narinfo_file, nar_file))
}
