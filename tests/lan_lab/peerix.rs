//! Peerix nodes in the LAN lab, run as a user would run them (`--mode lan`, no `--offline`:
//! mDNS and broadcasts stay inside the lab's namespaces), and the ways to look at them from
//! inside their namespaces.

use std::path::Path;
use std::process::{Child, Output};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;

use super::{Host, LanLab};
use crate::common::netns::spawn_logged;
use crate::common::{eventually, nix_copy_with, ChrootStore};

pub const PEERIX: &str = env!("CARGO_BIN_EXE_peerix");
/// Every node's ports are the defaults: the front on 12304, `/local/` on 12306.
pub const FRONT: &str = "http://127.0.0.1:12304";

/// What tests log: the LAN protocol's and the fetches' decisions.
pub const TEST_LOG: &str = "info,peerix::lan=debug,peerix::fetch=debug";

/// Which binary a node runs and what it logs (`RUST_LOG`).
#[derive(Clone, Copy)]
pub struct Launch<'a> {
    pub peerix: &'a Path,
    pub rust_log: &'a str,
}

/// A `peerix serve` in one of the lab's hosts; killed on drop.
pub struct LanNode {
    child: Child,
    pub host: Host,
    log: Arc<Mutex<Vec<String>>>,
    _state: TempDir,
}

impl Drop for LanNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl LanNode {
    /// `peerix serve --mode MODE` over `store` in `host`, trusting `key`; `extra` flags after.
    pub fn serve(
        lab: &LanLab,
        host: impl Into<Host>,
        mode: &str,
        (store, key): (&ChrootStore, &str),
        extra: &[&str],
    ) -> LanNode {
        let mut flags = vec!["--trusted-public-key", key];
        flags.extend_from_slice(extra);
        let launch = Launch {
            peerix: Path::new(PEERIX),
            rust_log: TEST_LOG,
        };
        LanNode::serve_store_root(lab, host, launch, mode, store.root(), &flags)
    }

    /// `launch.peerix serve --mode MODE` over the store at `root` in `host`; `extra` flags after.
    pub fn serve_store_root(
        lab: &LanLab,
        host: impl Into<Host>,
        launch: Launch,
        mode: &str,
        root: &Path,
        extra: &[&str],
    ) -> LanNode {
        let host = host.into();
        let state = TempDir::new().unwrap();
        let mut cmd = lab.command(host, launch.peerix);
        cmd.args(["serve", "--mode", mode])
            .arg("--store-root")
            .arg(root)
            .arg("--state-dir")
            .arg(state.path())
            .args(extra)
            .env("RUST_LOG", launch.rust_log);
        let (child, log) = spawn_logged(&mut cmd, format!("{host:?}"));
        let node = LanNode {
            child,
            host,
            log,
            _state: state,
        };
        eventually(Duration::from_secs(20), "the node never served", || {
            node.json(lab, "/status").is_some()
        });
        node
    }

    /// GET `url` from inside this node's namespace: (status, body).
    pub fn curl(&self, lab: &LanLab, url: &str) -> (u16, Vec<u8>) {
        curl_in(lab, self.host, url)
    }

    /// GET `path` from the node's front.
    pub fn get(&self, lab: &LanLab, path: &str) -> (u16, Vec<u8>) {
        self.curl(lab, &format!("{FRONT}{path}"))
    }

    pub fn json(&self, lab: &LanLab, path: &str) -> Option<Value> {
        let (status, body) = self.get(lab, path);
        (status == 200).then(|| serde_json::from_slice(&body).ok())?
    }

    /// The `lan` section of `/status`.
    pub fn lan_status(&self, lab: &LanLab) -> Value {
        self.json(lab, "/status")
            .map_or(Value::Null, |s| s["lan"].clone())
    }

    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// `nix copy --from` this node's front into `dest`, run in its namespace, with
    /// `require-sigs` and only `key` trusted.
    pub fn nix_copy(&self, lab: &LanLab, key: &str, dest: &ChrootStore, paths: &[&str]) -> Output {
        nix_copy_with(lab.command(self.host, "nix"), FRONT, dest, key, paths)
    }
}

/// GET `url` with curl inside `host`: (status, body); status 0 when nothing answered.
pub fn curl_in(lab: &LanLab, host: impl Into<Host>, url: &str) -> (u16, Vec<u8>) {
    curl_with(lab, host, url, &[])
}

/// [`curl_in`] with more of curl's arguments (`-H NAME:VALUE`).
pub fn curl_with(lab: &LanLab, host: impl Into<Host>, url: &str, args: &[&str]) -> (u16, Vec<u8>) {
    let out = lab
        .command(host, "curl")
        .args(["-s", "--max-time", "10", "-o", "-", "-w", "\n%{http_code}"])
        .args(args)
        .arg(url)
        .output()
        .unwrap();
    let text = out.stdout;
    let split = text.iter().rposition(|b| *b == b'\n').unwrap_or(0);
    let code = String::from_utf8_lossy(&text[(split + 1).min(text.len())..])
        .trim()
        .parse()
        .unwrap_or(0);
    (code, text[..split].to_vec())
}

/// The narinfo a Peerix node serves for `path`, made by a throwaway node over `store` on
/// loopback: what an old peer's store would hand out for it (its URL is the old peer's to set).
pub fn narinfo_of(store: &ChrootStore, path: &str, dir: &Path) -> std::path::PathBuf {
    let node = crate::common::Peerix::serve(store.root(), &[]);
    let (status, narinfo) = node.get(&format!("/{}.narinfo", crate::common::hash_part(path)));
    assert_eq!(status, 200, "no narinfo for {path}");
    let file = dir.join(format!("{}.narinfo", crate::common::hash_part(path)));
    std::fs::write(&file, narinfo).unwrap();
    file
}
