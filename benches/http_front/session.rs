//! The scenarios one server runs in one round, and the best results kept over all rounds.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::runtime::Runtime;

use crate::fixture::{miss_hashes, Fixture, KEY_NAME};
use crate::http_client::HttpConnection;
use crate::load::{nar_target, nar_throughput, narinfo_load, NarinfoMeasurement, Targets};
use crate::servers::{ServerKind, ServerProcess};
use crate::{BenchResult, SMALL_PATHS};

const NAR_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Clone, Copy)]
pub(crate) enum NarinfoScenario {
    Hits,
    Misses,
    SignedHits,
}

impl NarinfoScenario {
    pub(crate) const ALL: [Self; 3] = [Self::Hits, Self::Misses, Self::SignedHits];

    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Hits => "narinfo hits, unsigned",
            Self::Misses => "narinfo misses",
            Self::SignedHits => "narinfo hits, signed",
        }
    }

    fn expected_status(self) -> u16 {
        match self {
            Self::Hits | Self::SignedHits => 200,
            Self::Misses => 404,
        }
    }
}

/// One server's best results over all rounds, and what went wrong on the way.
#[derive(Default)]
pub(crate) struct ServerResults {
    /// Best (highest req/s) measurement, indexed like `NarinfoScenario::ALL`.
    pub(crate) narinfo: [Option<NarinfoMeasurement>; 3],
    pub(crate) nar_mb_per_s: Option<f64>,
    /// Every round's measurements, in order, indexed like `NarinfoScenario::ALL`.
    pub(crate) narinfo_rounds: [Vec<NarinfoMeasurement>; 3],
    pub(crate) nar_rounds: Vec<f64>,
    /// Peak RSS (VmHWM, KiB) after the narinfo scenarios, highest over the rounds.
    pub(crate) rss_before_nar_kib: Option<u64>,
    /// Peak RSS (VmHWM, KiB) after the NAR scenario, highest over the rounds.
    pub(crate) rss_after_nar_kib: Option<u64>,
    /// Failed narinfo requests plus failed NAR measurements.
    pub(crate) errors: u64,
    /// Narinfo answers with the wrong valid status (404 for a hit, 200 for a miss).
    pub(crate) wrong_status: u64,
    /// A signed server served a narinfo without the bench key's `Sig:`.
    pub(crate) signature_missing: bool,
}

impl ServerResults {
    fn record_narinfo(&mut self, scenario: NarinfoScenario, measurement: NarinfoMeasurement) {
        self.errors += measurement.errors;
        self.wrong_status += measurement.wrong_status;
        self.narinfo_rounds[scenario as usize].push(measurement);
        let best = &mut self.narinfo[scenario as usize];
        if best.is_none_or(|b| measurement.requests_per_s > b.requests_per_s) {
            *best = Some(measurement);
        }
    }

    fn record_nar(&mut self, mb_per_s: f64) {
        self.nar_rounds.push(mb_per_s);
        self.nar_mb_per_s = Some(self.nar_mb_per_s.map_or(mb_per_s, |b| b.max(mb_per_s)));
    }

    fn record_rss(slot: &mut Option<u64>, kib: Option<u64>) {
        *slot = (*slot).max(kib);
    }
}

/// One round of one server: its own process per signing mode, on the shared fixture.
pub(crate) struct Session<'a> {
    pub(crate) runtime: &'a Runtime,
    pub(crate) fixture: &'a Fixture,
    pub(crate) kind: &'a ServerKind,
}

impl Session<'_> {
    /// Unsigned server: hits, misses, NAR; then a signed server: hits.
    pub(crate) fn measure_all(&self, results: &mut ServerResults) -> BenchResult<()> {
        let hit_targets = Targets::narinfos(&self.fixture.small_hashes);
        let taken: HashSet<&str> = self
            .fixture
            .small_hashes
            .iter()
            .map(String::as_str)
            .collect();
        let miss_targets = Targets::narinfos(&miss_hashes(SMALL_PATHS, &taken));
        {
            let server = self.kind.start(self.runtime, self.fixture, false)?;
            self.narinfo(NarinfoScenario::Hits, &server, &hit_targets, results);
            self.narinfo(NarinfoScenario::Misses, &server, &miss_targets, results);
            self.nar(&server, results);
        }
        let server = self.kind.start(self.runtime, self.fixture, true)?;
        results.signature_missing |= !self.serves_signature(&server)?;
        self.narinfo(NarinfoScenario::SignedHits, &server, &hit_targets, results);
        Ok(())
    }

    fn narinfo(
        &self,
        scenario: NarinfoScenario,
        server: &ServerProcess,
        targets: &Arc<Targets>,
        results: &mut ServerResults,
    ) {
        targets.rewind();
        let stats = self
            .runtime
            .block_on(narinfo_load(server.addr, targets.clone()));
        let measurement = NarinfoMeasurement::from_stats(&stats, scenario.expected_status());
        eprintln!(
            "  {}: {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, {} errors, {} wrong status",
            scenario.label(),
            measurement.requests_per_s,
            measurement.p50_ms,
            measurement.p99_ms,
            measurement.errors,
            measurement.wrong_status,
        );
        results.record_narinfo(scenario, measurement);
    }

    fn nar(&self, server: &ServerProcess, results: &mut ServerResults) {
        ServerResults::record_rss(&mut results.rss_before_nar_kib, server.peak_rss_kib());
        let measured = self.runtime.block_on(async {
            let target = nar_target(server.addr, &self.fixture.big_hash).await?;
            tokio::time::timeout(NAR_TIMEOUT, nar_throughput(server.addr, &target))
                .await
                .map_err(|_| format!("NAR streaming took over {NAR_TIMEOUT:?}"))?
        });
        ServerResults::record_rss(&mut results.rss_after_nar_kib, server.peak_rss_kib());
        match measured {
            Ok(mb_per_s) => {
                eprintln!("  NAR: {mb_per_s:.0} MB/s");
                results.record_nar(mb_per_s);
            }
            Err(e) => {
                eprintln!("  NAR: error: {e}");
                results.errors += 1;
            }
        }
    }

    /// Whether the signed server's narinfo carries a `Sig:` by the bench key.
    fn serves_signature(&self, server: &ServerProcess) -> BenchResult<bool> {
        let probe = format!("/{}.narinfo", self.fixture.small_hashes[0]);
        let narinfo = self.runtime.block_on(async {
            HttpConnection::connect(server.addr)
                .await?
                .get_text(&probe)
                .await
        })?;
        let marker = format!("Sig: {KEY_NAME}:");
        Ok(narinfo.body.lines().any(|line| line.starts_with(&marker)))
    }
}
