//! The report: the conditions and the table of every store size.

use std::fmt::Write as _;
use std::time::Duration;

use crate::bench_env::machine_line;
use crate::load::NarinfoMeasurement;
use crate::{
    nar_of_file, ScaleResults, CONNECTIONS, FILE_CONTENTS, HIT_TARGETS, LOAD_THREADS, LOOPBACK_TCP,
    MEASURED, MISS_TARGETS, TARGET_HIT_P99_MS, TARGET_MISS_P99_MS, TARGET_RSS_MIB, WARM_UP,
};

pub(crate) fn render_report(results: &[ScaleResults], load_at_start: &str) -> String {
    let mib = |kib: Option<u64>| kib.map(|k| k as f64 / 1024.0);
    let cell = |value: Option<f64>, format: &dyn Fn(f64) -> String| {
        value.map_or_else(|| "—".to_owned(), format)
    };
    let seconds = |d: Option<Duration>| cell(d.map(|d| d.as_secs_f64()), &|v| format!("{v:.2}"));
    let latency = |m: Option<NarinfoMeasurement>| {
        m.map_or_else(
            || "—".to_owned(),
            |m| format!("{:.2} / {:.2}", m.p50_ms, m.p99_ms),
        )
    };
    let rate =
        |m: Option<NarinfoMeasurement>| cell(m.map(|m| m.requests_per_s), &|v| format!("{v:.0}"));
    let rss = |kib: Option<u64>| cell(mib(kib), &|v| format!("{v:.1}"));
    let largest = results.last();
    let verdict = |value: Option<f64>, met: &dyn Fn(f64) -> bool| match value {
        Some(v) if met(v) => "met",
        Some(_) => "**missed**",
        None => "not measured",
    };

    type RowFn<'a> = Box<dyn Fn(&ScaleResults) -> String + 'a>;
    let rows: Vec<(&str, RowFn, String)> = vec![
        (
            "store generation (s)",
            Box::new(|r: &ScaleResults| seconds(Some(r.generated_in))),
            "—".to_owned(),
        ),
        (
            "A: start to indexed + scan finished (s)",
            Box::new(|r: &ScaleResults| seconds(r.a_scanned_in)),
            "—".to_owned(),
        ),
        (
            "B: start to serving A's first/middle/last path (s)",
            Box::new(|r: &ScaleResults| seconds(r.b_ready_in)),
            "—".to_owned(),
        ),
        (
            "B narinfo misses (req/s)",
            Box::new(|r: &ScaleResults| rate(r.b_misses)),
            "—".to_owned(),
        ),
        (
            "B narinfo misses p50 / p99 (ms)",
            Box::new(|r: &ScaleResults| latency(r.b_misses)),
            format!(
                "p99 < {TARGET_MISS_P99_MS} ms: {}",
                verdict(largest.and_then(|r| r.b_misses).map(|m| m.p99_ms), &|v| v
                    < TARGET_MISS_P99_MS)
            ),
        ),
        (
            "A narinfo misses (req/s)",
            Box::new(|r: &ScaleResults| rate(r.a_misses)),
            "—".to_owned(),
        ),
        (
            "A narinfo misses p50 / p99 (ms)",
            Box::new(|r: &ScaleResults| latency(r.a_misses)),
            "—".to_owned(),
        ),
        (
            "B narinfo cold hits, each once, p50 / p99 (ms)",
            Box::new(|r: &ScaleResults| latency(r.b_cold_hits)),
            format!(
                "p99 < {TARGET_HIT_P99_MS} ms: {}",
                verdict(
                    largest.and_then(|r| r.b_cold_hits).map(|m| m.p99_ms),
                    &|v| v < TARGET_HIT_P99_MS
                )
            ),
        ),
        (
            "B narinfo warm hits via A (req/s)",
            Box::new(|r: &ScaleResults| rate(r.b_hits)),
            "—".to_owned(),
        ),
        (
            "B narinfo warm hits via A p50 / p99 (ms)",
            Box::new(|r: &ScaleResults| latency(r.b_hits)),
            "—".to_owned(),
        ),
        (
            "A peak RSS after scan, before B (MiB)",
            Box::new(|r: &ScaleResults| rss(r.a_rss_after_scan_kib)),
            "—".to_owned(),
        ),
        (
            "A peak RSS at end (MiB)",
            Box::new(|r: &ScaleResults| rss(r.a_rss_kib)),
            format!(
                "< {TARGET_RSS_MIB} MiB: {}",
                verdict(largest.and_then(|r| mib(r.a_rss_kib)), &|v| v
                    < TARGET_RSS_MIB)
            ),
        ),
        (
            "B peak RSS at end (MiB)",
            Box::new(|r: &ScaleResults| rss(r.b_rss_kib)),
            format!(
                "< {TARGET_RSS_MIB} MiB: {}",
                verdict(largest.and_then(|r| mib(r.b_rss_kib)), &|v| v
                    < TARGET_RSS_MIB)
            ),
        ),
    ];

    let mut report = String::from("# Peerix at scale: 100k indexed paths vs a 1k baseline\n\n");
    report.push_str(&machine_line(load_at_start));
    let _ = writeln!(
        report,
        "- synthetic chroot stores (identical {}-byte files, NAR {} bytes; distinct store \
         hashes); A serves the store, B has an empty store, `--bootstrap-peers` A's loopback \
         address and `--no-verify`; both `--offline`, libp2p on {LOOPBACK_TCP}",
        FILE_CONTENTS.len(),
        nar_of_file(FILE_CONTENTS).len()
    );
    let _ = writeln!(
        report,
        "- load generator: in-process, {LOAD_THREADS} tokio worker threads on the same cores as \
         both nodes; {CONNECTIONS} keep-alive HTTP/1.1 connections, {WARM_UP:?} warm-up + \
         {MEASURED:?} measured per scenario; misses cycle over {MISS_TARGETS} random hashes, \
         hits over {HIT_TARGETS} of A's paths"
    );
    let _ = writeln!(
        report,
        "- RSS is VmHWM of each process; targets apply to the largest store\n"
    );
    report.push_str("| scenario |");
    for r in results {
        let _ = write!(report, " {} paths |", r.paths);
    }
    report.push_str(" target (largest store) |\n| --- |");
    for _ in results {
        report.push_str(" ---: |");
    }
    report.push_str(" --- |\n");
    for (label, value, target) in &rows {
        let _ = write!(report, "| {label} |");
        for r in results {
            let _ = write!(report, " {} |", value(r));
        }
        let _ = writeln!(report, " {target} |");
    }
    report.push('\n');
    let mut problems = String::new();
    for r in results {
        for failure in &r.failures {
            let _ = writeln!(problems, "- {} paths: {failure}", r.paths);
        }
    }
    if problems.is_empty() {
        problems.push_str("No errors and no wrong statuses.\n");
    }
    report.push_str(&problems);
    for r in results {
        if let Some(status) = &r.a_status {
            let _ = writeln!(report, "\nA's `/status` at {} paths: `{status}`", r.paths);
        }
    }
    report
}
