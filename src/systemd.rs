//! systemd's notification protocol (sd_notify(3)) for `Type=notify` units: `READY=1` once the
//! service answers, `STOPPING=1` at a shutdown signal, and `WATCHDOG=1` pings that stop when a
//! runtime hangs, so that systemd restarts the service. Without `NOTIFY_SOCKET`, nothing is sent;
//! the shutdown signal is listened for here either way, so that it is the same for every server.

use std::ffi::OsStr;
use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::{mpsc, Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures_util::future::{BoxFuture, FutureExt, Shared};
use tokio::runtime::Handle;
use tokio::signal::unix::{signal, Signal, SignalKind};

/// The service's side of the protocol; inert when systemd did not ask for notifications.
pub struct Systemd {
    notifier: Option<Arc<Notifier>>,
    watchdog: Mutex<Option<Watchdog>>,
}

impl Systemd {
    /// From `NOTIFY_SOCKET` (a path, or `@name` in the abstract namespace).
    pub fn from_env() -> Arc<Self> {
        let notifier = std::env::var_os("NOTIFY_SOCKET").and_then(|text| {
            Notifier::new(&text)
                .inspect_err(|e| tracing::warn!("NOTIFY_SOCKET {text:?}: {e}: systemd is not told"))
                .ok()
        });
        Arc::new(Self {
            notifier: notifier.map(Arc::new),
            watchdog: Mutex::new(None),
        })
    }

    /// Says the service is ready, with `status` for `systemctl status`, and starts the
    /// watchdog (when systemd set one) over `runtimes`.
    pub fn ready(&self, status: &str, runtimes: Vec<Handle>) {
        let Some(notifier) = &self.notifier else {
            return;
        };
        notifier.tell(&format!("READY=1\nSTATUS={status}"));
        let watchdog = watchdog_period().and_then(|period| {
            Watchdog::start(notifier.clone(), period, runtimes)
                .inspect_err(|e| tracing::warn!("cannot start the watchdog thread: {e}"))
                .ok()
        });
        *self.watchdog.lock().unwrap_or_else(PoisonError::into_inner) = watchdog;
    }

    /// Resolves at `signal`, once the watchdog is stopped and systemd told `STOPPING=1`
    /// (before any server winds down); shared, so that every server stops at it.
    pub fn stopping_at(self: Arc<Self>, signal: ShutdownSignal) -> Shutdown {
        let stopping = async move {
            signal.received().await;
            self.watchdog
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            if let Some(notifier) = &self.notifier {
                notifier.tell("STOPPING=1");
            }
        };
        stopping.boxed().shared()
    }
}

/// The moment a shutdown signal arrived, awaited by every server.
pub type Shutdown = Shared<BoxFuture<'static, ()>>;

/// SIGTERM and SIGINT, listened for from its creation on: made before `READY=1` is sent, so
/// that a signal right after it is seen (a listener made later would miss it, while the
/// earlier one kept the signal from ending the process).
pub struct ShutdownSignal {
    terminate: Signal,
    interrupt: Signal,
}

impl ShutdownSignal {
    /// Listens from now on; within a Tokio runtime.
    pub fn listen() -> io::Result<Self> {
        Ok(Self {
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
        })
    }

    async fn received(mut self) {
        tokio::select! {
            _ = self.terminate.recv() => {}
            _ = self.interrupt.recv() => {}
        }
    }
}

struct Notifier {
    socket: UnixDatagram,
    addr: SocketAddr,
}

impl Notifier {
    fn new(text: &OsStr) -> io::Result<Self> {
        let addr = match text.as_bytes().split_first() {
            Some((b'@', name)) => SocketAddr::from_abstract_name(name)?,
            Some((b'/', _)) => SocketAddr::from_pathname(text)?,
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "neither an absolute path nor @name",
                ))
            }
        };
        // std opens it close-on-exec: no child inherits it.
        let socket = UnixDatagram::unbound()?;
        Ok(Self { socket, addr })
    }

    /// Sends `state`; a failure is logged, never fatal (systemd may have gone away).
    fn tell(&self, state: &str) {
        if let Err(e) = self.send(state) {
            tracing::warn!("cannot tell systemd {state:?}: {e}");
        }
    }

    fn send(&self, state: &str) -> io::Result<()> {
        self.socket
            .send_to_addr(state.as_bytes(), &self.addr)
            .map(drop)
    }
}

/// Half of `WATCHDOG_USEC`, when it is meant for this process (`WATCHDOG_PID` unset or ours).
fn watchdog_period() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.parse::<u32>().ok() != Some(std::process::id()) {
            return None;
        }
    }
    (usec > 0).then(|| Duration::from_micros(usec) / 2)
}

/// A thread of its own (so that no hung runtime can hold it up) pinging the watchdog every
/// period, after every runtime ran a task within it; stops when dropped.
struct Watchdog {
    _stop: mpsc::Sender<()>,
}

impl Watchdog {
    fn start(notifier: Arc<Notifier>, period: Duration, runtimes: Vec<Handle>) -> io::Result<Self> {
        let (stop, stopped) = mpsc::channel();
        std::thread::Builder::new()
            .name("peerix-watchdog".to_owned())
            .spawn(move || {
                // Said once: a ping that cannot be sent fails the same way every period.
                let mut failed_before = false;
                loop {
                    let deadline = Instant::now() + period;
                    if runtimes.iter().all(|runtime| answers(runtime, deadline)) {
                        let sent = notifier.send("WATCHDOG=1");
                        if let (Err(e), false) = (sent, failed_before) {
                            tracing::warn!("cannot ping systemd's watchdog: {e}");
                            failed_before = true;
                        }
                    } else {
                        tracing::error!("a runtime ran no task for {period:?}: no watchdog ping");
                    }
                    let rest = deadline.saturating_duration_since(Instant::now());
                    if stopped.recv_timeout(rest) != Err(mpsc::RecvTimeoutError::Timeout) {
                        return;
                    }
                }
            })?;
        Ok(Self { _stop: stop })
    }
}

/// Whether `runtime` runs a task of ours before `deadline`.
fn answers(runtime: &Handle, deadline: Instant) -> bool {
    let (reply, replied) = mpsc::sync_channel(1);
    runtime.spawn(async move {
        let _ = reply.send(());
    });
    replied
        .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hung_runtime_does_not_answer_and_a_running_one_does() {
        let running = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .build()
            .unwrap();
        assert!(answers(
            running.handle(),
            Instant::now() + Duration::from_secs(5)
        ));
        let hung = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        // Nothing drives it: as a runtime whose every thread is stuck.
        let brief = Instant::now() + Duration::from_millis(50);
        assert!(!answers(hung.handle(), brief));
    }

    #[test]
    fn notify_socket_is_a_path_or_an_abstract_name() {
        assert!(Notifier::new(OsStr::new("/run/systemd/notify")).is_ok());
        assert!(Notifier::new(OsStr::new("@peerix-test")).is_ok());
        assert!(Notifier::new(OsStr::new("relative")).is_err());
        assert!(Notifier::new(OsStr::new("")).is_err());
    }
}
