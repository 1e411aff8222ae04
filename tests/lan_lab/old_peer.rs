//! The old Peerix LAN peer (`old_peer.py`, the old program's UDP and `/local/` protocol written
//! afresh) run inside a lab host: serving paths, or asking for one once and reporting.

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::{Host, LanLab};

pub const OLD_PEER_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/lan_lab/old_peer.py");
/// The old program's default UDP port (also its HTTP port).
pub const OLD_UDP_PORT: u16 = 12304;

/// How long a starting old peer may take to answer on its HTTP port.
const START_LIMIT: Duration = Duration::from_secs(20);

/// `old_peer.py serve` in a lab host; killed on drop.
pub struct OldPeer {
    child: Child,
    /// Its stdout, one JSON object per line.
    log: Arc<Mutex<Vec<String>>>,
    /// Where its HTTP server listens.
    pub http: SocketAddrV4,
}

/// A request datagram the old peer received, and whether it answered it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct ReceivedRequest {
    pub from: SocketAddrV4,
    pub id: u32,
    pub hash: String,
    pub answered: bool,
}

/// An HTTP request the old peer answered.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct ServedHttp {
    pub from: SocketAddrV4,
    pub path: String,
    pub status: u16,
}

#[derive(Deserialize)]
#[serde(tag = "event", rename_all = "lowercase")]
enum LogLine {
    Request(ReceivedRequest),
    Http(ServedHttp),
}

impl OldPeer {
    /// Serves `paths` (narinfo file, NAR file) from `host`, answering UDP requests on
    /// `udp_port`; returns once its HTTP port answers (its UDP socket is bound by then).
    pub fn serve(
        lab: &LanLab,
        host: impl Into<Host>,
        udp_port: u16,
        http_port: u16,
        paths: &[(&Path, &Path)],
    ) -> OldPeer {
        let host = host.into();
        let mut cmd = lab.command(host, "python3");
        cmd.arg(OLD_PEER_SCRIPT).args([
            "serve",
            "--udp-port",
            &udp_port.to_string(),
            "--http-port",
            &http_port.to_string(),
        ]);
        for (narinfo, nar) in paths {
            cmd.arg("--path").arg(narinfo).arg(nar);
        }
        let mut child = cmd.stdout(Stdio::piped()).spawn().expect("python3 starts");
        let stdout = child.stdout.take().expect("stdout is piped");
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let mut peer = OldPeer {
            child,
            log,
            http: SocketAddrV4::new(lab.addr(host), http_port),
        };
        peer.wait_until_answering(lab, host);
        peer
    }

    fn wait_until_answering(&mut self, lab: &LanLab, host: Host) {
        let started = Instant::now();
        // Any HTTP answer will do (this one is a 404, and appears in the HTTP log).
        let url = format!("http://{}/", self.http);
        loop {
            if let Some(status) = self.child.try_wait().expect("the old peer can be polled") {
                panic!("the old peer on {host:?} exited at start: {status}");
            }
            let answered = lab
                .command(host, "curl")
                .args(["-s", "-o", "/dev/null", "--max-time", "1", &url])
                .status()
                .expect("curl is installed")
                .success();
            if answered {
                return;
            }
            assert!(
                started.elapsed() < START_LIMIT,
                "the old peer on {host:?} never answered on {url}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Every request datagram received so far, oldest first.
    pub fn requests(&self) -> Vec<ReceivedRequest> {
        self.events()
            .filter_map(|event| match event {
                LogLine::Request(request) => Some(request),
                LogLine::Http(_) => None,
            })
            .collect()
    }

    /// Every HTTP request answered so far, oldest first.
    pub fn http_log(&self) -> Vec<ServedHttp> {
        self.events()
            .filter_map(|event| match event {
                LogLine::Http(served) => Some(served),
                LogLine::Request(_) => None,
            })
            .collect()
    }

    fn events(&self) -> impl Iterator<Item = LogLine> {
        let lines = self.log.lock().unwrap().clone();
        lines.into_iter().map(|line| {
            serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("the old peer logged {line:?}: {e}"))
        })
    }
}

impl Drop for OldPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What `old_peer.py fetch` found: the answer it took and the downloads it made from there.
#[derive(Debug, Deserialize)]
pub struct FetchReport {
    /// The narinfo and the NAR were downloaded to `<out_dir>/<hash>.narinfo` and `.nar`.
    pub found: bool,
    /// The id of the request sent.
    pub id: u32,
    /// The source of the answer taken, with the HTTP port and path it named.
    pub from: Option<SocketAddrV4>,
    pub port: Option<u32>,
    pub path: Option<String>,
    /// The narinfo's URL field, and the Content-Types the narinfo and the NAR came with.
    pub url: Option<String>,
    pub narinfo_content_type: Option<String>,
    pub nar_content_type: Option<String>,
    /// An HTTP error status after an answer, or another failure after it.
    pub status: Option<u16>,
    pub error: Option<String>,
    /// 0 when nothing went wrong, whether found or not; non-zero after a protocol error.
    #[serde(skip)]
    pub exit_code: Option<i32>,
}

/// What `old_peer.py ask` heard back: the first answer with the request's id, if any.
#[derive(Debug, Deserialize)]
pub struct AskReport {
    pub answered: bool,
    pub id: u32,
    pub from: Option<SocketAddrV4>,
    pub port: Option<u32>,
    pub path: Option<String>,
    /// Milliseconds from sending the request to the answer, or to the end of the wait.
    pub elapsed_ms: f64,
}

/// Asks for `hash` once from `host` (by broadcast, or only `unicast`'s UDP port), waits up to
/// `timeout_ms` for an answer and downloads narinfo and NAR from its sender into `out_dir`.
pub fn old_peer_fetch(
    lab: &LanLab,
    host: impl Into<Host>,
    udp_port: u16,
    hash: &str,
    out_dir: &Path,
    unicast: Option<Ipv4Addr>,
    timeout_ms: u64,
) -> FetchReport {
    let out = out_dir.to_str().expect("a UTF-8 directory");
    let (mut report, exit_code): (FetchReport, _) = run_once(
        lab,
        host.into(),
        &["fetch", hash, "--out", out],
        udp_port,
        unicast,
        timeout_ms,
    );
    report.exit_code = exit_code;
    report
}

/// Asks for `hash` once from `host` and reports the first answer within `timeout_ms`.
pub fn old_peer_ask(
    lab: &LanLab,
    host: impl Into<Host>,
    udp_port: u16,
    hash: &str,
    unicast: Option<Ipv4Addr>,
    timeout_ms: u64,
) -> AskReport {
    let (report, exit_code) = run_once(
        lab,
        host.into(),
        &["ask", hash],
        udp_port,
        unicast,
        timeout_ms,
    );
    assert_eq!(exit_code, Some(0), "old peer ask: {report:?}");
    report
}

/// [`old_peer_ask`] by broadcast, sent from `source_port` instead of the UDP port: so it can
/// run in a host where an [`OldPeer`] holds that port.
pub fn old_peer_ask_from_port(
    lab: &LanLab,
    host: impl Into<Host>,
    udp_port: u16,
    source_port: u16,
    hash: &str,
    timeout_ms: u64,
) -> AskReport {
    let source_port = source_port.to_string();
    let (report, exit_code) = run_once(
        lab,
        host.into(),
        &["ask", hash, "--source-port", &source_port],
        udp_port,
        None,
        timeout_ms,
    );
    assert_eq!(exit_code, Some(0), "old peer ask: {report:?}");
    report
}

/// Runs one requester command of the old peer; returns its JSON report and exit code.
fn run_once<T: DeserializeOwned + std::fmt::Debug>(
    lab: &LanLab,
    host: Host,
    args: &[&str],
    udp_port: u16,
    unicast: Option<Ipv4Addr>,
    timeout_ms: u64,
) -> (T, Option<i32>) {
    let mut cmd = lab.command(host, "python3");
    cmd.arg(OLD_PEER_SCRIPT).args(args).args([
        "--udp-port",
        &udp_port.to_string(),
        "--timeout-ms",
        &timeout_ms.to_string(),
    ]);
    if let Some(target) = unicast {
        cmd.args(["--unicast", &target.to_string()]);
    }
    let out = cmd.output().expect("python3 starts");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report = stdout
        .lines()
        .last()
        .and_then(|line| serde_json::from_str(line).ok())
        .unwrap_or_else(|| {
            panic!(
                "old peer {args:?} on {host:?} reported nothing usable: {stdout:?}, {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    (report, out.status.code())
}
