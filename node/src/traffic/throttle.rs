//! The token bucket behind the bandwidth cap, and the waiting it makes substreams do (counted,
//! for the node's status).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

use super::lock;
use crate::status::CapWaits;

/// The bucket holds at least this much, so small caps still allow a useful burst.
pub(super) const MIN_BURST: f64 = 64.0 * 1024.0;
/// Shortest wait when the bucket is empty: bounds wakeups per waiting substream to 100/s and
/// lets each wakeup move a reasonably sized chunk.
pub(super) const MIN_WAIT: Duration = Duration::from_millis(10);

/// Token bucket for one direction; `now` is passed in so tests need no clock.
#[derive(Debug)]
pub(super) struct Bucket {
    /// Bytes per second.
    rate: f64,
    burst: f64,
    /// May dip below zero by less than one byte (see `take`).
    tokens: f64,
    last: Instant,
}

impl Bucket {
    pub(super) fn new(cap: u64, now: Instant) -> Self {
        let rate = cap as f64;
        let burst = (rate / 4.0).max(MIN_BURST);
        Self {
            rate,
            burst,
            tokens: burst,
            last: now,
        }
    }

    /// Grants `1..=want` bytes (`want > 0`), or says how long to wait before asking again.
    pub(super) fn take(&mut self, want: usize, now: Instant) -> Result<usize, Duration> {
        let elapsed = now.saturating_duration_since(self.last);
        self.last = self.last.max(now);
        self.tokens = (self.tokens + elapsed.as_secs_f64() * self.rate).min(self.burst);
        if self.tokens > 0.0 {
            // At least one byte so a fraction of a token still makes progress.
            let granted = (self.tokens as usize).clamp(1, want);
            self.tokens -= granted as f64;
            Ok(granted)
        } else {
            let refill = Duration::from_secs_f64((1.0 - self.tokens) / self.rate);
            Err(refill.max(MIN_WAIT))
        }
    }

    /// Returns tokens granted but not used (the I/O was pending, failed or was short).
    pub(super) fn refund(&mut self, unused: usize) {
        self.tokens = (self.tokens + unused as f64).min(self.burst);
    }
}

/// One direction's cap: its bucket, and the waits it made substreams do.
#[derive(Debug)]
pub(super) struct Meter {
    pub(super) bucket: Mutex<Bucket>,
    waits: AtomicU64,
    waited_micros: AtomicU64,
}

impl Meter {
    pub(super) fn new(cap: u64, now: Instant) -> Self {
        Self {
            bucket: Mutex::new(Bucket::new(cap, now)),
            waits: AtomicU64::new(0),
            waited_micros: AtomicU64::new(0),
        }
    }

    pub(super) fn waits(&self) -> CapWaits {
        CapWaits {
            waits: self.waits.load(Relaxed),
            waited: Duration::from_micros(self.waited_micros.load(Relaxed)),
        }
    }
}

/// A pending delay before asking a bucket again; the `Sleep` is kept and reset to avoid an
/// allocation per wait.
#[derive(Default)]
pub(super) struct Wait {
    sleep: Option<Pin<Box<Sleep>>>,
    armed: bool,
    /// When the substream found the bucket empty, until it is granted bytes again: one wait,
    /// however many timers it takes.
    since: Option<Instant>,
}

impl Wait {
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.armed {
            if let Some(sleep) = &mut self.sleep {
                ready!(sleep.as_mut().poll(cx));
            }
            self.armed = false;
        }
        Poll::Ready(())
    }

    fn arm(&mut self, deadline: Instant) {
        match &mut self.sleep {
            Some(sleep) => sleep.as_mut().reset(deadline),
            None => self.sleep = Some(Box::pin(tokio::time::sleep_until(deadline))),
        }
        self.armed = true;
    }
}

/// Runs `io` with at most the tokens available (all of `want` when unthrottled), waiting on
/// a timer while the bucket is empty, and returns unused tokens.
pub(super) fn poll_metered(
    meter: Option<&Meter>,
    wait: &mut Wait,
    cx: &mut Context<'_>,
    want: usize,
    mut io: impl FnMut(&mut Context<'_>, usize) -> Poll<io::Result<usize>>,
) -> Poll<io::Result<usize>> {
    let Some(meter) = meter.filter(|_| want > 0) else {
        return io(cx, want);
    };
    let bucket = &meter.bucket;
    loop {
        ready!(wait.poll(cx));
        let now = Instant::now();
        let taken = lock(bucket).take(want, now);
        match taken {
            Ok(granted) => {
                if let Some(since) = wait.since.take() {
                    let waited = now.saturating_duration_since(since).as_micros();
                    meter
                        .waited_micros
                        .fetch_add(u64::try_from(waited).unwrap_or(u64::MAX), Relaxed);
                }
                let result = io(cx, granted);
                let used = match result {
                    Poll::Ready(Ok(n)) => n.min(granted),
                    _ => 0,
                };
                if used < granted {
                    lock(bucket).refund(granted - used);
                }
                return result;
            }
            // Looping polls the new timer, which registers the wakeup.
            Err(delay) => {
                if wait.since.is_none() {
                    wait.since = Some(now);
                    meter.waits.fetch_add(1, Relaxed);
                }
                wait.arm(now + delay)
            }
        }
    }
}
