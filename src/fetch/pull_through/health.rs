//! Whether the upstream cache answers, and how fast: probed every few seconds over the
//! connections narinfo requests use, which keeps them warm. Pull-through asks upstream only
//! while it answers, and waits for a narinfo a few of its round trips at most: a slow, stopped
//! or silent upstream makes Peerix answer 404 at once (Nix then asks upstream itself).

use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant};

use crate::fetch::Upstream;

const PROBE_EVERY: Duration = Duration::from_secs(5);
/// Typical answer times a narinfo request may take: a cold connection costs a few round trips
/// more than a warm one, and a busy moment here slows every answer alike.
const ROUND_TRIPS: u32 = 4;
/// The least and most a narinfo request waits for upstream, whatever its round trip.
const LEAST_WAIT: Duration = Duration::from_millis(50);
const MOST_WAIT: Duration = Duration::from_secs(1);
/// The weight of the newest answer time in the typical one.
const NEWEST_WEIGHT: f64 = 0.3;
/// Narinfo requests that may run out of time, with no answer to any request meanwhile, before
/// upstream counts as not answering (a busy moment makes some late while others are answered).
const LATE_IN_A_ROW: u32 = 3;

#[derive(Default)]
struct State {
    /// How long upstream typically takes to answer a probe (a moving average); `None` while it
    /// does not answer.
    typical: Option<Duration>,
    late: u32,
    /// When a request was last answered.
    answered_at: Option<Instant>,
}

impl State {
    fn took(&mut self, answer_time: Duration) {
        self.typical = Some(match self.typical {
            None => answer_time,
            Some(typical) => {
                typical.mul_f64(1.0 - NEWEST_WEIGHT) + answer_time.mul_f64(NEWEST_WEIGHT)
            }
        });
    }
}

pub struct UpstreamHealth {
    state: Mutex<State>,
}

impl UpstreamHealth {
    /// Probes `upstream` from now on, for as long as the health is kept.
    pub fn watch(upstream: Arc<Upstream>) -> Arc<Self> {
        let health = Arc::new(Self {
            state: Mutex::default(),
        });
        tokio::spawn(probe(Arc::downgrade(&health), upstream));
        health
    }

    /// How long a narinfo request to upstream may take now; `None` while it does not answer.
    pub fn wait(&self) -> Option<Duration> {
        let typical = self.lock().typical?;
        Some((typical * ROUND_TRIPS).clamp(LEAST_WAIT, MOST_WAIT))
    }

    /// Upstream answered a request in time (or it was answered from memory: only probes
    /// measure upstream).
    pub fn answered(&self) {
        let mut state = self.lock();
        state.late = 0;
        state.answered_at = Some(Instant::now());
    }

    /// A request asked at `asked_at` ran out of time: after a few with nothing answered since
    /// they were asked, upstream is not asked until a probe answers.
    pub fn late(&self, asked_at: Instant) {
        let mut state = self.lock();
        if state.answered_at.is_some_and(|at| at > asked_at) {
            return;
        }
        state.late += 1;
        if state.late >= LATE_IN_A_ROW {
            state.typical = None;
        }
    }

    /// A request failed (refused, reset): upstream is not asked until a probe answers.
    pub fn failed(&self) {
        self.lock().typical = None;
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn probed(&self, round_trip: Option<Duration>) {
        let mut state = self.lock();
        match round_trip {
            Some(round_trip) => {
                state.took(round_trip);
                state.late = 0;
            }
            None => state.typical = None,
        }
    }
}

async fn probe(health: Weak<UpstreamHealth>, upstream: Arc<Upstream>) {
    let mut told = None;
    loop {
        let answer = upstream.round_trip().await;
        let Some(health) = health.upgrade() else {
            return;
        };
        let answers = answer.is_ok();
        if told != Some(answers) {
            match &answer {
                Ok(rtt) => tracing::info!(
                    upstream = upstream.url(),
                    ?rtt,
                    "pull-through: upstream answers"
                ),
                Err(e) => {
                    tracing::warn!(upstream = upstream.url(), error = %e, "pull-through: upstream does not answer; paths no peer holds are 404 until it does")
                }
            }
            told = Some(answers);
        }
        health.probed(answer.ok());
        drop(health);
        tokio::time::sleep(PROBE_EVERY).await;
    }
}
