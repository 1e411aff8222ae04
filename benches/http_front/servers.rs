//! Starting and stopping the servers under test (Peerix and harmonia) on the fixture, and
//! waiting until they serve it.

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::fs;
use std::io::{self, BufRead};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tokio::runtime::Runtime;

use crate::fixture::Fixture;
use crate::http_client::HttpConnection;
use crate::BenchResult;

const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);

pub(crate) enum ServerKind {
    Peerix,
    /// An earlier build of Peerix at this path (from `PEERIX_BASELINE_BIN`).
    PeerixBaseline(PathBuf),
    /// harmonia-cache at this path (from `HARMONIA_BIN`).
    Harmonia(PathBuf),
}

impl ServerKind {
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Self::Peerix => "Peerix",
            Self::PeerixBaseline(_) => "Peerix baseline",
            Self::Harmonia(_) => "harmonia",
        }
    }

    /// Starts the server on the fixture, signing with its key when `signed`, and waits until it
    /// serves the fixture.
    pub(crate) fn start(
        &self,
        runtime: &Runtime,
        fixture: &Fixture,
        signed: bool,
    ) -> BenchResult<ServerProcess> {
        let key = signed.then_some(fixture.secret_key.as_path());
        let mut server = match self {
            Self::Peerix => start_peerix(&crate::bench_env::peerix_bin(), fixture, key)?,
            Self::PeerixBaseline(bin) => start_peerix(bin, fixture, key)?,
            Self::Harmonia(bin) => start_harmonia(bin, fixture, key)?,
        };
        server.wait_until_serving(runtime, &fixture.big_hash)?;
        Ok(server)
    }
}

/// A running server; killed (and reaped) when dropped, also on error or panic.
pub(crate) struct ServerProcess {
    name: &'static str,
    child: Child,
    pub(crate) addr: SocketAddr,
    /// State directory / config file of this instance.
    _scratch: tempfile::TempDir,
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        // The process may have died already; nothing more to do then.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ServerProcess {
    fn fail_if_exited(&mut self) -> BenchResult<()> {
        match self.child.try_wait()? {
            Some(status) => Err(format!("{} exited: {status}", self.name).into()),
            None => Ok(()),
        }
    }

    /// Polls until `/nix-cache-info` and a fixture narinfo both answer 200 from this process.
    pub(crate) fn wait_until_serving(
        &mut self,
        runtime: &Runtime,
        probe_hash: &str,
    ) -> BenchResult<()> {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let probe = format!("/{probe_hash}.narinfo");
        while Instant::now() < deadline {
            self.fail_if_exited()?;
            let ready = runtime.block_on(async {
                let mut connection = HttpConnection::connect(self.addr).await.ok()?;
                let info = connection.get_text("/nix-cache-info").await.ok()?;
                let narinfo = connection.get_text(&probe).await.ok()?;
                Some(info.status == 200 && narinfo.status == 200)
            });
            if ready == Some(true) {
                return self.fail_if_exited();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!(
            "{} did not serve the fixture within {STARTUP_TIMEOUT:?}",
            self.name
        )
        .into())
    }

    /// The server's process id (to stop or continue it; p2p_front's silent holders).
    #[allow(dead_code)]
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// CPU time (user and system, all threads) the process has used so far, in seconds.
    #[allow(dead_code)]
    pub(crate) fn cpu_seconds(&self) -> Option<f64> {
        // utime and stime, in clock ticks (USER_HZ, 100 on Linux).
        Some((self.stat_field(11)? + self.stat_field(12)?) as f64 / 100.0)
    }

    /// Page faults the process has taken so far (minor: no disk read, such as fresh memory the
    /// kernel zeroes; most of them).
    #[allow(dead_code)]
    pub(crate) fn page_faults(&self) -> Option<u64> {
        Some(self.stat_field(7)? + self.stat_field(9)?)
    }

    /// Field `index` of `/proc/PID/stat`, counted from the one after the command name (which is
    /// in parentheses and may hold spaces): 7 is minflt, 9 majflt, 11 utime, 12 stime.
    fn stat_field(&self, index: usize) -> Option<u64> {
        let stat = fs::read_to_string(format!("/proc/{}/stat", self.child.id())).ok()?;
        let after_name = stat.rsplit_once(')')?.1;
        after_name.split_whitespace().nth(index)?.parse().ok()
    }

    /// Peak resident set size (VmHWM) in KiB.
    pub(crate) fn peak_rss_kib(&self) -> Option<u64> {
        let status = fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }
}

fn start_peerix(bin: &Path, fixture: &Fixture, key: Option<&Path>) -> BenchResult<ServerProcess> {
    let mut extra: Vec<&OsStr> = Vec::new();
    if let Some(key) = key {
        extra.extend([OsStr::new("--private-key"), key.as_os_str()]);
    }
    spawn_peerix_binary(bin, "peerix", &fixture.store_root, &extra)
}

/// `peerix serve --offline --port 0` on `store_root`, in a fresh state directory, with `extra`
/// flags after the common ones; returns once it has reported its HTTP address (the p2p
/// benchmarks').
#[allow(dead_code)]
pub(crate) fn spawn_peerix(
    name: &'static str,
    store_root: &Path,
    extra: &[&OsStr],
) -> BenchResult<ServerProcess> {
    spawn_peerix_binary(&crate::bench_env::peerix_bin(), name, store_root, extra)
}

/// [`spawn_peerix`] with the `peerix` binary at `bin`.
fn spawn_peerix_binary(
    bin: &Path,
    name: &'static str,
    store_root: &Path,
    extra: &[&OsStr],
) -> BenchResult<ServerProcess> {
    let scratch = tempfile::Builder::new().prefix("peerix-state-").tempdir()?;
    let mut command = Command::new(bin);
    command
        .arg("serve")
        // Contact nothing: the benchmark measures the HTTP front on loopback only.
        .arg("--offline")
        .arg("--store-root")
        .arg(store_root)
        .args(["--port", "0"])
        .arg("--state-dir")
        .arg(scratch.path())
        .env("RUST_LOG", "error")
        .env_remove("NIX_SECRET_KEY_FILE")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // Flags also come from PEERIX_* variables; the scenarios must not inherit any.
    for (variable, _) in std::env::vars_os() {
        if variable.to_string_lossy().starts_with("PEERIX_") {
            command.env_remove(variable);
        }
    }
    command.args(extra);
    let mut child = command.spawn()?;
    let stderr = child.stderr.take().ok_or("peerix stderr not captured")?;
    // From here on the guard owns the child, so every early return kills it.
    let mut server = ServerProcess {
        name,
        child,
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        _scratch: scratch,
    };
    server.addr = listening_addr_from_stderr(name, stderr)?;
    Ok(server)
}

/// Waits for `peerix: serving the Nix store at http://ADDR` on stderr, then keeps forwarding
/// stderr to ours from a thread (so the pipe never fills).
fn listening_addr_from_stderr(
    name: &'static str,
    stderr: std::process::ChildStderr,
) -> BenchResult<SocketAddr> {
    const MARKER: &str = "serving the Nix store at http://";
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        for line in io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            match line.split_once(MARKER) {
                Some((_, addr)) => {
                    let _ = sender.send(addr.trim().trim_end_matches('/').to_owned());
                }
                None => eprintln!("[{name} stderr] {line}"),
            }
        }
    });
    let addr = receiver
        .recv_timeout(STARTUP_TIMEOUT)
        .map_err(|_| format!("{name} did not report its listening address (did it exit?)"))?;
    Ok(addr.parse()?)
}

fn start_harmonia(bin: &Path, fixture: &Fixture, key: Option<&Path>) -> BenchResult<ServerProcess> {
    let scratch = tempfile::Builder::new()
        .prefix("harmonia-conf-")
        .tempdir()?;
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()?));
    let config = scratch.path().join("config.toml");
    fs::write(&config, harmonia_config(addr, fixture, key))?;
    let child = Command::new(bin)
        .env("CONFIG_FILE", &config)
        .env("RUST_LOG", "error")
        // Both would change what harmonia serves or signs with.
        .env_remove("SIGN_KEY_PATHS")
        .env_remove("NIX_STORE_DIR")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()?;
    Ok(ServerProcess {
        name: "harmonia",
        child,
        addr,
        _scratch: scratch,
    })
}

/// A port that was free a moment ago (harmonia needs a concrete one). If another process takes
/// it first, harmonia exits or the fixture probe fails: the start then fails loudly.
fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn harmonia_config(addr: SocketAddr, fixture: &Fixture, key: Option<&Path>) -> String {
    let mut config = format!(
        "bind = \"{addr}\"\n\
         workers = 2\n\
         priority = 30\n\
         virtual_nix_store = \"/nix/store\"\n\
         real_nix_store = \"{}\"\n\
         nix_db_path = \"{}\"\n\
         enable_compression = false\n",
        fixture.nix_store_dir().display(),
        fixture.nix_db().display(),
    );
    if let Some(key) = key {
        let _ = writeln!(config, "sign_key_paths = [\"{}\"]", key.display());
    }
    config
}
