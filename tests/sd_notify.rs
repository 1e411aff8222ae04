//! systemd's notification protocol, read from a datagram socket as systemd would: `peerix
//! serve` says `READY=1` once it serves, pings `WATCHDOG=1` every half of `WATCHDOG_USEC`, and
//! says `STOPPING=1` at SIGTERM; `peerix tracker` says `READY=1` on an abstract socket. Without
//! the variables, or without the socket, nothing is sent and both still serve.

mod common;

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{curl, ChrootStore, Peerix};
use tempfile::TempDir;

const LOOPBACK: &str = "/ip4/127.0.0.1/tcp/0";
/// What the tests set `WATCHDOG_USEC` to: a ping is due every 200 ms.
const WATCHDOG_USEC: &str = "400000";

/// The next datagram, if one arrives within `limit`.
fn next_message(socket: &UnixDatagram, limit: Duration) -> Option<String> {
    socket.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0; 4096];
    let len = socket.recv(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf[..len]).into_owned())
}

/// Reads datagrams until one `wanted` accepts, for `limit` at most; returns it and how many
/// `WATCHDOG=1` pings came before it.
fn wait_for(
    socket: &UnixDatagram,
    limit: Duration,
    wanted: impl Fn(&str) -> bool,
) -> (String, usize) {
    let deadline = Instant::now() + limit;
    let mut pings = 0;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match next_message(socket, left) {
            Some(message) if wanted(&message) => return (message, pings),
            Some(message) if message == "WATCHDOG=1" => pings += 1,
            Some(message) => eprintln!("other message: {message:?}"),
            None => break,
        }
    }
    panic!("no awaited message within {limit:?} ({pings} pings)");
}

fn terminate(pid: u32) {
    let status = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

fn serve_told(store: &ChrootStore, env: &[(&str, &Path)]) -> Peerix {
    Peerix::serve_with_env(store.root(), &["--listen-addrs", LOOPBACK], env)
}

#[test]
fn serve_says_ready_pings_the_watchdog_and_says_stopping() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("notify");
    let socket = UnixDatagram::bind(&path).unwrap();
    let store = ChrootStore::empty();
    let started = Instant::now();
    let node = serve_told(
        &store,
        &[
            ("NOTIFY_SOCKET", &path),
            ("WATCHDOG_USEC", Path::new(WATCHDOG_USEC)),
        ],
    );
    let (ready, _) = wait_for(&socket, Duration::from_secs(30), |m| {
        m.starts_with("READY=1")
    });
    eprintln!("READY=1 {:?} after the start", started.elapsed());
    let status = format!("STATUS=serving on http://127.0.0.1:{}", node.port);
    assert_eq!(ready, format!("READY=1\n{status}"));
    // Ready means served: Nix's first request is answered.
    assert!(curl(&format!("{}/nix-cache-info", node.url()), &[])
        .body
        .starts_with(b"StoreDir"));

    let pinged = Instant::now();
    let mut pings = 0;
    while pings < 2 {
        let (_, before) = wait_for(&socket, Duration::from_secs(10), |m| m == "WATCHDOG=1");
        assert_eq!(before, 0);
        pings += 1;
    }
    eprintln!(
        "{pings} pings in {:?} (one due every 200 ms)",
        pinged.elapsed()
    );

    terminate(node.pid());
    let (stopping, _) = wait_for(&socket, Duration::from_secs(10), |m| m == "STOPPING=1");
    assert_eq!(stopping, "STOPPING=1");
    // And it ends: a zombie until the harness reaps it.
    let stat = format!("/proc/{}/stat", node.pid());
    common::eventually(Duration::from_secs(10), "serve exits", || {
        let text = std::fs::read_to_string(&stat).unwrap_or_default();
        text.rsplit(") ")
            .next()
            .is_some_and(|rest| rest.starts_with('Z'))
    });
}

#[test]
fn without_the_variables_or_the_socket_nothing_is_sent_and_serve_still_serves() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("notify");
    let socket = UnixDatagram::bind(&path).unwrap();
    let store = ChrootStore::empty();

    let untold = serve_told(&store, &[]);
    let info = format!("{}/nix-cache-info", untold.url());
    assert!(curl(&info, &[]).body.starts_with(b"StoreDir"));
    assert_eq!(next_message(&socket, Duration::from_secs(1)), None);

    // A watchdog meant for another process (WATCHDOG_PID) is not pinged; readiness still is.
    let other = serve_told(
        &store,
        &[
            ("NOTIFY_SOCKET", &path),
            ("WATCHDOG_USEC", Path::new(WATCHDOG_USEC)),
            ("WATCHDOG_PID", Path::new("1")),
        ],
    );
    let (ready, _) = wait_for(&socket, Duration::from_secs(30), |m| {
        m.starts_with("READY=1")
    });
    assert!(ready.contains(&format!(":{}", other.port)), "{ready}");
    assert_eq!(next_message(&socket, Duration::from_secs(1)), None);

    let missing = dir.path().join("no-such-socket");
    let unheard = serve_told(
        &store,
        &[
            ("NOTIFY_SOCKET", &missing),
            ("WATCHDOG_USEC", Path::new(WATCHDOG_USEC)),
        ],
    );
    // Several pings' worth of time later it still serves.
    std::thread::sleep(Duration::from_secs(1));
    let info = format!("{}/nix-cache-info", unheard.url());
    assert!(curl(&info, &[]).body.starts_with(b"StoreDir"));
}

/// A `peerix tracker` on a free port of 127.0.0.1, with `env`.
fn tracker(db: &Path, env: &[(&str, &str)]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_peerix"))
        .args(["tracker", "--host", "127.0.0.1", "--port", "0", "--db-path"])
        .arg(db)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("peerix runs")
}

#[test]
fn the_tracker_says_ready_on_an_abstract_socket_and_stopping_at_sigterm() {
    let name = format!("peerix-sd-notify-test-{}", std::process::id());
    let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let socket = UnixDatagram::bind_addr(&addr).unwrap();
    let dir = TempDir::new().unwrap();
    let notify = format!("@{name}");
    let env = [
        ("NOTIFY_SOCKET", notify.as_str()),
        ("WATCHDOG_USEC", WATCHDOG_USEC),
    ];
    let mut child = tracker(&dir.path().join("tracker.redb"), &env);
    let (ready, _) = wait_for(&socket, Duration::from_secs(30), |m| {
        m.starts_with("READY=1")
    });
    assert!(
        ready.starts_with("READY=1\nSTATUS=tracking on http://127.0.0.1:"),
        "{ready}"
    );
    let (_, _) = wait_for(&socket, Duration::from_secs(10), |m| m == "WATCHDOG=1");
    terminate(child.id());
    let (stopping, _) = wait_for(&socket, Duration::from_secs(10), |m| m == "STOPPING=1");
    assert_eq!(stopping, "STOPPING=1");
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let Some(exited) = child.try_wait().unwrap() else {
        let _ = child.kill();
        panic!("the tracker did not exit within 10 s of SIGTERM");
    };
    assert!(exited.success(), "{exited}");
}
