//! The report: facts about the environment and the markdown table of both servers' results.

use std::fmt::Write as _;

use crate::bench_env::machine_line;
use crate::fixture::{Fixture, KEY_NAME};
use crate::servers::ServerKind;
use crate::session::{NarinfoScenario, ServerResults};
use crate::{
    BIG_NAR_BYTES, CONNECTIONS, LOAD_THREADS, MEASURED, NAR_FETCHES, ROUNDS, SMALL_PATHS, WARM_UP,
};

pub(crate) fn environment_facts(
    fixture: &Fixture,
    baseline: Option<&ServerKind>,
    load_at_start: &str,
) -> String {
    let baseline = match baseline {
        Some(ServerKind::Harmonia(bin)) => format!(
            "harmonia 3.2 at `{}` (HARMONIA_BIN; workers = 2, compression off)",
            bin.display()
        ),
        Some(ServerKind::PeerixBaseline(bin)) => {
            format!("Peerix baseline: `{}` (PEERIX_BASELINE_BIN)", bin.display())
        }
        Some(ServerKind::Peerix) | None => {
            "baseline: neither PEERIX_BASELINE_BIN nor HARMONIA_BIN set".to_owned()
        }
    };
    let mut facts = String::new();
    facts.push_str(&machine_line(load_at_start));
    let _ = writeln!(
        facts,
        "- load generator: in-process, tokio runtime with {LOAD_THREADS} worker threads on the same \
         cores as the server; {CONNECTIONS} keep-alive HTTP/1.1 connections for narinfo \
         ({WARM_UP:?} warm-up + {MEASURED:?} measured), 1 connection for NAR ({NAR_FETCHES} whole \
         fetches after 1 untimed)"
    );
    let _ = writeln!(
        facts,
        "- {ROUNDS} rounds, servers alternating (ABA/BAB), best round of each in the table, \
         every round below it"
    );
    let _ = writeln!(
        facts,
        "- fixture: {SMALL_PATHS} small paths + one {} MiB path in `local?root={}`",
        BIG_NAR_BYTES >> 20,
        fixture.store_root.display()
    );
    let _ = writeln!(
        facts,
        "- Peerix: `{}`",
        crate::bench_env::peerix_bin().display()
    );
    let _ = writeln!(facts, "- {baseline}");
    facts
}

/// One table row: the label, each server's cell, and the number the ratio is taken of.
struct Row {
    label: String,
    cells: [String; 2],
    ratio_of: [Option<f64>; 2],
}

impl Row {
    fn numbers(label: String, values: [Option<f64>; 2], format: fn(f64) -> String) -> Self {
        Self {
            label,
            cells: values.map(|v| v.map_or_else(|| "—".to_owned(), format)),
            ratio_of: values,
        }
    }

    fn ratio(&self) -> String {
        match self.ratio_of {
            [Some(peerix), Some(baseline)] if baseline > 0.0 => format!("{:.2}", peerix / baseline),
            _ => "—".to_owned(),
        }
    }
}

pub(crate) fn render_report(facts: &str, baseline_name: &str, results: &[ServerResults]) -> String {
    let empty = ServerResults::default();
    let peerix = &results[0];
    let baseline = results.get(1).unwrap_or(&empty);
    let both = [peerix, baseline];

    let mut rows = Vec::new();
    for scenario in NarinfoScenario::ALL {
        let best = both.map(|r| r.narinfo[scenario as usize]);
        rows.push(Row::numbers(
            format!("{} (req/s)", scenario.label()),
            best.map(|m| m.map(|m| m.requests_per_s)),
            |v| format!("{v:.0}"),
        ));
        rows.push(Row {
            label: format!("{} p50 / p99 (ms; ratio of p99)", scenario.label()),
            cells: best.map(|m| {
                m.map_or_else(
                    || "—".to_owned(),
                    |m| format!("{:.2} / {:.2}", m.p50_ms, m.p99_ms),
                )
            }),
            ratio_of: best.map(|m| m.map(|m| m.p99_ms)),
        });
    }
    rows.push(Row::numbers(
        format!("NAR {} MiB, 1 connection (MB/s)", BIG_NAR_BYTES >> 20),
        both.map(|r| r.nar_mb_per_s),
        |v| format!("{v:.0}"),
    ));
    let mib = |kib: Option<u64>| kib.map(|k| k as f64 / 1024.0);
    rows.push(Row::numbers(
        "peak RSS before NAR (MiB)".to_owned(),
        both.map(|r| mib(r.rss_before_nar_kib)),
        |v| format!("{v:.1}"),
    ));
    rows.push(Row::numbers(
        "peak RSS after NAR (MiB)".to_owned(),
        both.map(|r| mib(r.rss_after_nar_kib)),
        |v| format!("{v:.1}"),
    ));

    let mut report = format!("# HTTP front: Peerix vs {baseline_name}\n\n");
    report.push_str(facts);
    let _ = writeln!(
        report,
        "\n| scenario | Peerix | {baseline_name} | ratio (Peerix/{baseline_name}) |"
    );
    report.push_str("| --- | ---: | ---: | ---: |\n");
    for row in &rows {
        let _ = writeln!(
            report,
            "| {} | {} | {} | {} |",
            row.label,
            row.cells[0],
            row.cells[1],
            row.ratio()
        );
    }
    report.push_str(
        "\nRatio > 1 is better for req/s and MB/s, worse for latency and RSS. \
         MB = 1e6 bytes.\n",
    );
    report.push_str(&every_round(baseline_name, both));
    report.push_str(&problems(&[("Peerix", peerix), (baseline_name, baseline)]));
    report
}

/// Each scenario's figure in every round, in the order run, for both servers.
fn every_round(baseline_name: &str, both: [&ServerResults; 2]) -> String {
    let list = |values: Vec<String>| {
        if values.is_empty() {
            "—".to_owned()
        } else {
            values.join(" / ")
        }
    };
    let mut text = format!("\n| every round | Peerix | {baseline_name} |\n| --- | ---: | ---: |\n");
    for scenario in NarinfoScenario::ALL {
        let rounds = both.map(|r| &r.narinfo_rounds[scenario as usize]);
        let rate = rounds.map(|r| {
            list(
                r.iter()
                    .map(|m| format!("{:.0}", m.requests_per_s))
                    .collect(),
            )
        });
        let p99 = rounds.map(|r| list(r.iter().map(|m| format!("{:.2}", m.p99_ms)).collect()));
        let label = scenario.label();
        let _ = writeln!(text, "| {label} (req/s) | {} | {} |", rate[0], rate[1]);
        let _ = writeln!(text, "| {label} p99 (ms) | {} | {} |", p99[0], p99[1]);
    }
    let nar = both.map(|r| list(r.nar_rounds.iter().map(|v| format!("{v:.0}")).collect()));
    let _ = writeln!(
        text,
        "| NAR {} MiB (MB/s) | {} | {} |",
        BIG_NAR_BYTES >> 20,
        nar[0],
        nar[1]
    );
    text
}

fn problems(servers: &[(&str, &ServerResults)]) -> String {
    let mut text = String::new();
    for (name, results) in servers {
        if results.errors > 0 {
            let _ = writeln!(text, "- {name}: {} errors", results.errors);
        }
        if results.wrong_status > 0 {
            let _ = writeln!(
                text,
                "- {name}: {} narinfo answers with the wrong status",
                results.wrong_status
            );
        }
        if results.signature_missing {
            let _ = writeln!(
                text,
                "- {name}: signed narinfo without a `Sig: {KEY_NAME}:`"
            );
        }
    }
    if text.is_empty() {
        text.push_str("No errors, no wrong statuses.\n");
    }
    format!("\n{text}")
}
