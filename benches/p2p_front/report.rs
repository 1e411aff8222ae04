//! The report: the environment the numbers were measured in, and the table of both fronts.

use std::fmt::Write as _;
use std::time::Duration;

use crate::bench_env::machine_line;
use crate::fixture::Fixture;
use crate::load::NarinfoMeasurement;
use crate::{
    Front, FrontResults, RoundFigures, BIG_NAR_BYTES, COLD_CONNECTIONS, CONNECTIONS, KEY_NAME,
    LOAD_THREADS, LOOPBACK_TCP, MEASURED, NAR_FETCHES, ROUNDS, SMALL_PATHS, TARGET_HIT_P99_MS,
    TARGET_MISS_P99_MS, TARGET_NAR_MB_PER_S, WARM_UP,
};

pub(crate) fn environment_facts(
    fixture: &Fixture,
    load_at_start: &str,
    b_ready_after: &[Duration],
    a_scanned_after: &[Duration],
) -> String {
    let seconds = |durations: &[Duration]| {
        let each: Vec<String> = durations
            .iter()
            .map(|d| format!("{:.2}", d.as_secs_f64()))
            .collect();
        if each.is_empty() {
            "never".to_owned()
        } else {
            each.join(", ")
        }
    };
    let mut facts = String::new();
    facts.push_str(&machine_line(load_at_start));
    let _ = writeln!(
        facts,
        "- load generator: in-process, tokio runtime with {LOAD_THREADS} worker threads on the same \
         cores as both nodes; {CONNECTIONS} keep-alive HTTP/1.1 connections for narinfo \
         ({WARM_UP:?} warm-up + {MEASURED:?} measured), 1 connection for NAR ({NAR_FETCHES} whole \
         fetches after 1 untimed)"
    );
    let _ = writeln!(
        facts,
        "- {ROUNDS} rounds, fresh A and B each round, fronts alternating (AB/BA), best round of \
         each in the table, every round below it"
    );
    let _ = writeln!(
        facts,
        "- fixture: {SMALL_PATHS} small paths + one {} MiB path in `local?root={}`, served by A \
         (signing with `{KEY_NAME}`); B: empty store, `--bootstrap-peers` A's loopback TCP \
         address, `--trusted-public-key` A's key; both `--offline`, libp2p on {LOOPBACK_TCP}",
        BIG_NAR_BYTES >> 20,
        fixture.store_root.display()
    );
    let _ = writeln!(
        facts,
        "- B served A's big path this long after reporting its HTTP address (s, per round): {}",
        seconds(b_ready_after)
    );
    let _ = writeln!(
        facts,
        "- A's publication scan (`GET /status`) finished this long after A reported its HTTP \
         address (s, per round): {}; measuring starts after it",
        seconds(a_scanned_after)
    );
    let _ = writeln!(
        facts,
        "- Peerix: `{}`",
        crate::bench_env::peerix_bin().display()
    );
    facts
}

/// One table row: the label, each front's cell, the numbers the ratio is taken of, and the
/// target for B with whether it was met.
struct Row {
    label: String,
    cells: [String; 2],
    ratio_of: [Option<f64>; 2],
    target: String,
}

impl Row {
    fn numbers(label: String, values: [Option<f64>; 2], format: fn(f64) -> String) -> Self {
        Self {
            label,
            cells: values.map(|v| v.map_or_else(|| "—".to_owned(), format)),
            ratio_of: values,
            target: "—".to_owned(),
        }
    }

    fn latencies(label: String, best: [Option<NarinfoMeasurement>; 2]) -> Self {
        Self {
            label,
            cells: best.map(|m| {
                m.map_or_else(
                    || "—".to_owned(),
                    |m| format!("{:.2} / {:.2}", m.p50_ms, m.p99_ms),
                )
            }),
            ratio_of: best.map(|m| m.map(|m| m.p99_ms)),
            target: "—".to_owned(),
        }
    }

    /// `target` is "p99 < 20 ms" and the like; `met` judges B's number.
    fn with_target(mut self, target: &str, met: impl Fn(f64) -> bool) -> Self {
        let verdict = match self.ratio_of[1] {
            Some(value) if met(value) => "met",
            Some(_) => "**missed**",
            None => "not measured",
        };
        self.target = format!("{target}: {verdict}");
        self
    }

    fn ratio(&self) -> String {
        match self.ratio_of {
            [Some(baseline), Some(through_b)] if baseline > 0.0 => {
                format!("{:.2}", through_b / baseline)
            }
            _ => "—".to_owned(),
        }
    }
}

pub(crate) fn render_report(facts: &str, results: &[FrontResults; 2]) -> String {
    let cold_hits = results.each_ref().map(|r| r.cold_hits);
    let hits = results.each_ref().map(|r| r.hits);
    let misses = results.each_ref().map(|r| r.misses);
    let mib = |kib: Option<u64>| kib.map(|k| k as f64 / 1024.0);
    let rows = [
        Row::latencies(
            format!(
                "narinfo cold hits, each of the {SMALL_PATHS} paths once over \
                 {COLD_CONNECTIONS} connections, p50 / p99 (ms; ratio of p99)"
            ),
            cold_hits,
        )
        .with_target(&format!("p99 < {TARGET_HIT_P99_MS} ms"), |p99| {
            p99 < TARGET_HIT_P99_MS
        }),
        Row::numbers(
            "narinfo warm hits (req/s)".to_owned(),
            hits.map(|m| m.map(|m| m.requests_per_s)),
            |v| format!("{v:.0}"),
        ),
        Row::latencies(
            "narinfo warm hits p50 / p99 (ms; ratio of p99)".to_owned(),
            hits,
        )
        .with_target(&format!("p99 < {TARGET_HIT_P99_MS} ms"), |p99| {
            p99 < TARGET_HIT_P99_MS
        }),
        Row::numbers(
            "narinfo misses (req/s)".to_owned(),
            misses.map(|m| m.map(|m| m.requests_per_s)),
            |v| format!("{v:.0}"),
        ),
        Row::latencies(
            "narinfo misses p50 / p99 (ms; ratio of p99)".to_owned(),
            misses,
        )
        .with_target(&format!("p99 < {TARGET_MISS_P99_MS} ms"), |p99| {
            p99 < TARGET_MISS_P99_MS
        }),
        Row::numbers(
            format!("NAR {} MiB, 1 connection (MB/s)", BIG_NAR_BYTES >> 20),
            results.each_ref().map(|r| r.nar_mb_per_s),
            |v| format!("{v:.0}"),
        )
        .with_target(&format!("≥ {TARGET_NAR_MB_PER_S} MB/s"), |mb_per_s| {
            mb_per_s >= TARGET_NAR_MB_PER_S
        }),
        Row::numbers(
            "peak RSS before NAR (MiB)".to_owned(),
            results.each_ref().map(|r| mib(r.rss_before_nar_kib)),
            |v| format!("{v:.1}"),
        ),
        Row::numbers(
            "peak RSS after NAR (MiB)".to_owned(),
            results.each_ref().map(|r| mib(r.rss_after_nar_kib)),
            |v| format!("{v:.1}"),
        ),
    ];

    let mut report = String::from("# Peer-to-peer front: through B vs A's own front\n\n");
    report.push_str(facts);
    let _ = writeln!(
        report,
        "\n| scenario | {} | {} | ratio (B/A) | target for B |",
        Front::Baseline.name(),
        Front::ThroughB.name()
    );
    report.push_str("| --- | ---: | ---: | ---: | --- |\n");
    for row in &rows {
        let _ = writeln!(
            report,
            "| {} | {} | {} | {} | {} |",
            row.label,
            row.cells[0],
            row.cells[1],
            row.ratio(),
            row.target
        );
    }
    report.push_str(
        "\nRatio > 1 is better for req/s and MB/s, worse for latency and RSS. MB = 1e6 bytes. \
         RSS is each serving process's VmHWM, highest over the rounds; A's also covers serving \
         B over libp2p in the same round.\n",
    );
    report.push_str(&every_round(results));
    report.push_str(&problems(results));
    report
}

/// A row of the every-round table: its label, the figure, and its decimals.
type Figure = (&'static str, fn(&RoundFigures) -> Option<f64>, usize);

/// Each scenario's figure in every round, in the order run, for both fronts.
fn every_round(results: &[FrontResults; 2]) -> String {
    let figures: [Figure; 5] = [
        ("narinfo cold hits p99 (ms)", |r| Some(r.cold_p99_ms), 2),
        ("narinfo warm hits (req/s)", |r| Some(r.hits_per_s), 0),
        ("narinfo warm hits p99 (ms)", |r| Some(r.hits_p99_ms), 2),
        ("narinfo misses p99 (ms)", |r| Some(r.misses_p99_ms), 2),
        ("NAR (MB/s)", |r| r.nar_mb_per_s, 0),
    ];
    let mut text = format!(
        "\n| every round | {} | {} |\n| --- | ---: | ---: |\n",
        Front::Baseline.name(),
        Front::ThroughB.name()
    );
    for (label, figure, decimals) in figures {
        let cells = results.each_ref().map(|r| {
            let values: Vec<String> = r
                .rounds
                .iter()
                .map(|round| figure(round).map_or("—".to_owned(), |v| format!("{v:.decimals$}")))
                .collect();
            values.join(" / ")
        });
        let _ = writeln!(text, "| {label} | {} | {} |", cells[0], cells[1]);
    }
    text
}

fn problems(results: &[FrontResults; 2]) -> String {
    let mut text = String::new();
    for (front, results) in Front::BOTH.iter().zip(results) {
        let name = front.name();
        if results.errors > 0 {
            let _ = writeln!(text, "- {name}: {} errors", results.errors);
        }
        if results.hit_404s > 0 {
            let _ = writeln!(
                text,
                "- {name}: {} of {} measured narinfo hits answered 404 ({:.1} %) for paths A holds",
                results.hit_404s,
                results.hits_answered,
                100.0 * results.hit_404s as f64 / results.hits_answered.max(1) as f64
            );
        }
        if results.miss_200s > 0 {
            let _ = writeln!(
                text,
                "- {name}: {} narinfo misses answered 200",
                results.miss_200s
            );
        }
        if results.signature_missing {
            let _ = writeln!(text, "- {name}: narinfo without a `Sig: {KEY_NAME}:`");
        }
        for failure in &results.failures {
            let _ = writeln!(text, "- {name}: {failure}");
        }
    }
    if text.is_empty() {
        text.push_str("No errors, no wrong statuses, A's signature on every front.\n");
    }
    format!("\n{text}")
}
