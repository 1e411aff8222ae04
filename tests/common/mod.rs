//! Shared test harness: real Nix commands, fixture stores, a running `peerix`, curl as the client.
#![allow(dead_code)] // Each test binary uses its own subset.

pub mod bare_peer;
pub mod control;
pub mod front_latency;
pub mod interop;
pub mod nar_flood;
pub mod netns;
mod nix_commands;
pub mod nixos;
pub mod proc_stats;
pub mod static_cache;
pub mod synthetic_store;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tempfile::TempDir;

// Each test binary uses its own subset, as with the rest of the harness.
#[allow(unused_imports)]
pub use nix_commands::{
    assert_copied, nix, nix_copy_from, nix_copy_ok, nix_copy_with, require_nix, run, NIX_CONFIG,
};

pub fn stdout_text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The fixture closure from tests/fixtures/closure.nix, built once per test binary.
pub struct Fixture {
    pub top: String,
    pub app: String,
    pub lib: String,
    pub big: String,
    pub secrets: String,
    scratch: TempDir,
}

impl Fixture {
    pub fn get() -> &'static Fixture {
        static FIXTURE: OnceLock<Fixture> = OnceLock::new();
        FIXTURE.get_or_init(|| {
            let scratch = TempDir::new().unwrap();
            let expr = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/closure.nix");
            let build = |attr: &str| {
                stdout_text(&run(nix("nix-build", scratch.path()).arg(&expr).args([
                    "--no-out-link",
                    "-A",
                    attr,
                ])))
            };
            Fixture {
                top: build("top"),
                app: build("app"),
                lib: build("lib"),
                big: build("big"),
                secrets: build("secrets"),
                scratch,
            }
        })
    }

    /// Every fixture path, the sensitive one included.
    pub fn all(&self) -> Vec<&str> {
        vec![&self.top, &self.app, &self.lib, &self.big, &self.secrets]
    }
}

pub fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

pub fn hash_part(store_path: &str) -> &str {
    &store_path["/nix/store/".len()..][..32]
}

/// A chroot store (`local?root=DIR`) standing in for one machine.
pub struct ChrootStore {
    pub dir: TempDir,
}

impl ChrootStore {
    /// Adds a file named `name` holding `content` (written in `scratch`) to the store; returns
    /// its store path.
    pub fn add_file(&self, scratch: &Path, name: &str, content: &[u8]) -> String {
        let file = scratch.join(name);
        std::fs::write(&file, content).unwrap();
        let out = run(nix("nix-store", self.root())
            .args(["--store", &self.url(), "--add"])
            .arg(&file));
        stdout_text(&out)
    }

    pub fn empty() -> Self {
        Self {
            dir: TempDir::new().unwrap(),
        }
    }

    /// An empty store with its Nix database, as on a machine that has Nix.
    pub fn initialised() -> Self {
        let store = Self::empty();
        run(nix("nix", store.root()).args(["store", "ping", "--store", &store.url()]));
        store
    }

    pub fn with_paths(paths: &[&str]) -> Self {
        let store = Self::empty();
        store.copy_in(paths);
        store
    }

    /// A store holding `paths`, signed by `key` as a binary cache would have them.
    pub fn signed(key: &NixKey, paths: &[&str]) -> Self {
        let store = Self::with_paths(paths);
        store.sign(&key.secret, paths);
        store
    }

    /// Every one of `paths` has the same NAR here as in `other`.
    pub fn assert_same_nars(&self, other: &ChrootStore, paths: &[&str]) {
        for path in paths {
            let (left, right) = (
                Sha256::digest(self.dump(path)),
                Sha256::digest(other.dump(path)),
            );
            assert_eq!(left, right, "{path} differs");
        }
    }

    pub fn url(&self) -> String {
        format!("local?root={}", self.dir.path().display())
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn copy_in(&self, paths: &[&str]) {
        run(nix("nix", self.root())
            .args(["copy", "--no-check-sigs", "--to", &self.url()])
            .args(paths));
    }

    pub fn sign(&self, secret_key_file: &Path, paths: &[&str]) {
        run(nix("nix", self.root())
            .args(["store", "sign", "--store", &self.url(), "--key-file"])
            .arg(secret_key_file)
            .arg("-r")
            .args(paths));
    }

    pub fn physical(&self, store_path: &str) -> PathBuf {
        self.root().join(store_path.trim_start_matches('/'))
    }

    /// `nix-store --dump` of the physical path: the reference NAR bytes.
    pub fn dump(&self, store_path: &str) -> Vec<u8> {
        run(nix("nix-store", self.root())
            .arg("--dump")
            .arg(self.physical(store_path)))
        .stdout
    }

    /// `nix path-info --json` of one path in this store.
    pub fn path_info(&self, store_path: &str) -> serde_json::Value {
        let out = run(nix("nix", self.root()).args([
            "path-info",
            "--json",
            "--store",
            &self.url(),
            store_path,
        ]));
        let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        list[0].clone()
    }
}

/// A key pair made by `nix-store --generate-binary-cache-key`.
pub struct NixKey {
    pub secret: PathBuf,
    pub public: String,
    _dir: TempDir,
}

impl NixKey {
    pub fn generate(name: &str) -> Self {
        let dir = TempDir::new().unwrap();
        let secret = dir.path().join("secret");
        let public = dir.path().join("public");
        run(nix("nix-store", dir.path())
            .args(["--generate-binary-cache-key", name])
            .args([&secret, &public]));
        Self {
            public: std::fs::read_to_string(&public).unwrap().trim().to_owned(),
            secret,
            _dir: dir,
        }
    }

    pub fn peerix_keygen(name: &str) -> Self {
        let dir = TempDir::new().unwrap();
        let secret = dir.path().join("secret");
        let public = dir.path().join("public");
        let out = Command::new(env!("CARGO_BIN_EXE_peerix"))
            .args(["keygen", name])
            .args([&secret, &public])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self {
            public: std::fs::read_to_string(&public).unwrap().trim().to_owned(),
            secret,
            _dir: dir,
        }
    }
}

/// A running `peerix serve`; killed on drop.
pub struct Peerix {
    child: Child,
    pub port: u16,
    /// The state dir, when the server made its own.
    _state: Option<TempDir>,
    /// Every line the server wrote to stderr so far.
    log: Arc<Mutex<Vec<String>>>,
}

impl Peerix {
    pub fn serve(store_root: &Path, extra: &[&str]) -> Self {
        Self::serve_with_env(store_root, extra, &[])
    }

    pub fn serve_with_env(store_root: &Path, extra: &[&str], env: &[(&str, &Path)]) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_peerix"));
        cmd.envs(env.iter().copied());
        Self::launch(cmd, store_root, None, extra)
    }

    /// Serves with the state dir `state`, which outlives the server (to restart on it).
    pub fn serve_in(store_root: &Path, state: &Path, extra: &[&str]) -> Self {
        let cmd = Command::new(env!("CARGO_BIN_EXE_peerix"));
        Self::launch(cmd, store_root, Some(state), extra)
    }

    /// Runs Peerix as the unprivileged `nobody` user (the caller must be root).
    pub fn serve_as_nobody(store_root: &Path) -> Self {
        let mut cmd = Command::new("setpriv");
        cmd.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
            .arg(env!("CARGO_BIN_EXE_peerix"));
        Self::launch(cmd, store_root, None, &[])
    }

    fn launch(mut cmd: Command, store_root: &Path, state: Option<&Path>, extra: &[&str]) -> Self {
        let own_state = state.is_none().then(|| TempDir::new().unwrap());
        let state_dir = state.or(own_state.as_ref().map(TempDir::path)).unwrap();
        std::fs::set_permissions(state_dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let mut child = cmd
            .args(["serve", "--offline", "--port", "0", "--store-root"])
            .arg(store_root)
            .arg("--state-dir")
            .arg(state_dir)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("peerix binary runs");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let log = Arc::new(Mutex::new(Vec::new()));
        let kept = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(addr) = line.split("serving the Nix store at http://").nth(1) {
                    let _ = tx.send(addr.rsplit(':').next().unwrap_or("").parse::<u16>());
                }
                eprintln!("[peerix] {line}");
                kept.lock().unwrap().push(line);
            }
        });
        let port = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(Ok(port)) => port,
            other => {
                let _ = child.kill();
                panic!("peerix did not report its address: {other:?}");
            }
        };
        Self {
            child,
            port,
            _state: own_state,
            log,
        }
    }

    /// The lines the server wrote to stderr so far.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The node's loopback TCP address with its peer id, from `peerix ipfs id`.
    pub fn p2p_addr(&self) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_peerix"))
            .args(["ipfs", "--api", &self.url(), "id"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let id: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        id["multiaddrs"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(serde_json::Value::as_str)
            .find(|a| a.starts_with("/ip4/127.0.0.1/tcp/"))
            .expect("a loopback TCP address")
            .to_owned()
    }

    /// The server's process id (to stop, continue or kill it from a test).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Peak resident memory of the server process so far (VmHWM), in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        proc_stats::status_field(self.pid(), "VmHWM:")
    }

    /// The `URL:` of the narinfo this server gives for `store_path` (relative, `nar/...`).
    pub fn nar_url(&self, store_path: &str) -> String {
        let (status, narinfo) = self.get(&format!("/{}.narinfo", hash_part(store_path)));
        assert_eq!(status, 200, "no narinfo for {store_path}");
        let narinfo = String::from_utf8(narinfo).unwrap();
        narinfo
            .lines()
            .find_map(|l| l.strip_prefix("URL: "))
            .expect("a URL line")
            .to_owned()
    }

    /// One GET over a fresh connection with a minimal HTTP/1.1 client: (status, body).
    pub fn get(&self, path: &str) -> (u16, Vec<u8>) {
        front_latency::get(self.port, path)
    }

    /// Waits (bounded by `limit`) until this server answers 200 for `path`'s narinfo: peers'
    /// indexes arrive shortly after they connect.
    pub fn wait_for_narinfo(&self, path: &str, limit: Duration) {
        let narinfo = format!("/{}.narinfo", hash_part(path));
        eventually(limit, &format!("{path} never became available"), || {
            self.get(&narinfo).0 == 200
        });
    }

    /// `GET /status`, parsed.
    pub fn status(&self) -> serde_json::Value {
        let (code, body) = self.get("/status");
        assert_eq!(code, 200, "GET /status");
        serde_json::from_slice(&body).unwrap()
    }
}

impl Drop for Peerix {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A curl response: status, lower-cased header lines, body.
pub struct Curl {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Curl {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Runs curl (a real, independent HTTP client) with `args` against `url`.
pub fn curl(url: &str, args: &[&str]) -> Curl {
    let dir = TempDir::new().unwrap();
    let headers = dir.path().join("headers");
    let body = dir.path().join("body");
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "60", "-D"])
        .arg(&headers)
        .arg("-o")
        .arg(&body)
        .args(args)
        .arg(url)
        .output()
        .expect("curl is installed");
    assert!(
        out.status.success(),
        "curl {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let head = std::fs::read_to_string(&headers).unwrap();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Curl {
        status,
        headers,
        body: std::fs::read(&body).unwrap_or_default(),
    }
}

/// Polls `ready` every 100 ms until it holds; fails with `what` after `limit`.
pub fn eventually(limit: Duration, what: &str, mut ready: impl FnMut() -> bool) {
    let started = Instant::now();
    while !ready() {
        assert!(started.elapsed() < limit, "{what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// [`eventually`] for async tests: polls without holding up the runtime's workers.
pub async fn eventually_async(limit: Duration, what: &str, mut ready: impl FnMut() -> bool) {
    let started = Instant::now();
    while !ready() {
        assert!(started.elapsed() < limit, "{what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
