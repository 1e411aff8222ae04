//! The report: the conditions, every round, and a summary against the targets and the
//! old program's timeouts.

use std::fmt::Write as _;

use crate::bench_env::machine_line;
use crate::client::Measured;
use crate::labs::{Link, A_PATHS};
use crate::{
    Round, HITS, MISSES_PEERIX_ONLY, MISSES_WITH_OLD_PEER, OLD_MODULE_TIMEOUT_MS, OLD_PEER_ASKS,
    OLD_PROGRAM_TIMEOUT_MS, TARGET_HIT_P99_MS, TARGET_MISS_P99_MS, TIMEOUT_SLACK_MS,
};

fn p50_p99(m: Option<&Measured>) -> String {
    m.map_or_else(
        || "—".to_owned(),
        |m| format!("{:.2} / {:.2}", m.latency.p50, m.latency.p99),
    )
}

/// One figure of a round (a p99), where the round has it.
type Figure = fn(&Round) -> Option<f64>;

/// One figure of each round of `link`.
fn p99s(rounds: &[Round], link: Link, figure: Figure) -> Vec<f64> {
    rounds
        .iter()
        .filter(|r| r.link == link)
        .filter_map(figure)
        .collect()
}

/// `values` as the report lists them: `1.23, 4.56`.
fn listed(values: &[f64]) -> String {
    let each: Vec<String> = values.iter().map(|v| format!("{v:.2}")).collect();
    each.join(", ")
}

fn summary_row(report: &mut String, label: &str, values: &[f64], target: &str, limit: f64) {
    let verdict = match values {
        [] => "not measured",
        _ if values.iter().all(|v| *v < limit) => "met",
        _ => "**missed**",
    };
    let _ = writeln!(
        report,
        "| {label} | {} | {target} | {verdict} |",
        listed(values)
    );
}

pub(crate) fn render_report(rounds: &[Round], timeout_ms: u64, load_at_start: &str) -> String {
    let mut report = String::from(
        "# `--mode lan`: B's narinfo latency, Peerix peers only and with an old peer\n\n",
    );
    report.push_str(&machine_line(load_at_start));
    let _ = writeln!(
        report,
        "- two LAN labs (network namespaces on one bridge), kept up for the run, rounds \
         alternated; every node `peerix serve --mode lan` with its defaults; A: a synthetic \
         store of {A_PATHS} paths; B and C: empty stores, B with `--no-verify --trusted-peer A`; \
         the second lab adds the old peer script serving on a fourth host"
    );
    let _ = writeln!(
        report,
        "- the client runs in B's namespace, requests one after another over one keep-alive \
         connection to B's front; per round: {MISSES_PEERIX_ONLY} misses (Peerix peers only) \
         or {MISSES_WITH_OLD_PEER} misses then the same again (old peer), and {HITS} first-time \
         hits (A's paths, each asked once in the run); then {OLD_PEER_ASKS} broadcast misses of \
         the old peer script with `--timeout-ms {OLD_PROGRAM_TIMEOUT_MS}`, timed in its process"
    );
    let _ = writeln!(report, "- B's `--timeout`: {timeout_ms} ms (its default)\n");

    report.push_str(
        "| round | link | misses p50 / p99 (ms) | the same misses again p50 / p99 (ms) | \
         first-time hits p50 / p99 (ms) | B's broadcast queries | old peers heard by B | \
         old script's wait p50 / p99 (ms) |\n| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |\n",
    );
    for r in rounds {
        let waits = r.old_peer_waits.map_or_else(
            || "—".to_owned(),
            |w| format!("{:.2} / {:.2}", w.p50, w.p99),
        );
        let _ = writeln!(
            report,
            "| {} | {} | {} | {} | {} | {} | {} | {waits} |",
            r.number,
            r.link,
            p50_p99(Some(&r.misses)),
            p50_p99(r.repeated_misses.as_ref()),
            p50_p99(Some(&r.hits)),
            r.queries,
            r.old_peers_heard,
        );
    }

    report.push_str(
        "\n| measurement | p99 of each round (ms) | target | |\n| --- | --- | --- | --- |\n",
    );
    let miss: Figure = |r| Some(r.misses.latency.p99);
    let hit: Figure = |r| Some(r.hits.latency.p99);
    let again: Figure = |r| r.repeated_misses.map(|m| m.latency.p99);
    let under = |limit: f64| (format!("< {limit} ms"), limit);
    let rows = [
        (
            "B's miss, Peerix peers only",
            Link::PeerixOnly,
            miss,
            under(TARGET_MISS_P99_MS),
        ),
        (
            "B's first-time hit, Peerix peers only",
            Link::PeerixOnly,
            hit,
            under(TARGET_HIT_P99_MS),
        ),
        (
            "B's miss, one old peer on the link (one broadcast wait)",
            Link::WithOldPeer,
            miss,
            (
                format!("< `--timeout` {timeout_ms} ms + {TIMEOUT_SLACK_MS} ms"),
                timeout_ms as f64 + TIMEOUT_SLACK_MS,
            ),
        ),
        (
            "B's same miss again, one old peer (remembered for 30 s)",
            Link::WithOldPeer,
            again,
            under(TARGET_MISS_P99_MS),
        ),
        (
            "B's first-time hit, one old peer on the link",
            Link::WithOldPeer,
            hit,
            under(TARGET_HIT_P99_MS),
        ),
    ];
    for (label, link, figure, (target, limit)) in rows {
        summary_row(
            &mut report,
            label,
            &p99s(rounds, link, figure),
            &target,
            limit,
        );
    }
    let waits = p99s(rounds, Link::WithOldPeer, |r| {
        r.old_peer_waits.map(|w| w.p99)
    });
    let _ = writeln!(
        report,
        "\n| a miss with an old peer on the link | ms |\n| --- | --- |\n\
         | Peerix (B), p99 of each round: one broadcast wait, `--timeout` {timeout_ms} (default) \
         | {} |\n\
         | the old peer script, `--timeout-ms {OLD_PROGRAM_TIMEOUT_MS}`, p99 of each round, timed \
         in its process | {} |\n\
         | the old program's documented broadcast timeout | {OLD_PROGRAM_TIMEOUT_MS} (old \
         program's default, too short in practice) |\n\
         | the old program's NixOS module's timeout | {OLD_MODULE_TIMEOUT_MS} |\n",
        listed(&p99s(rounds, Link::WithOldPeer, miss)),
        listed(&waits),
    );
    report.push_str(&problems(rounds));
    report
}

/// What went against the setup: unexpected statuses, and broadcasts where none (or another
/// number) belonged.
fn problems(rounds: &[Round]) -> String {
    let mut problems = String::new();
    for r in rounds {
        let measured = [Some(&r.misses), r.repeated_misses.as_ref(), Some(&r.hits)];
        let unexpected: usize = measured.iter().flatten().map(|m| m.unexpected).sum();
        if unexpected > 0 {
            let _ = writeln!(
                problems,
                "- round {}, {}: {unexpected} answers with an unexpected status",
                r.number, r.link
            );
        }
        let expected_queries = match r.link {
            Link::PeerixOnly => 0,
            Link::WithOldPeer => MISSES_WITH_OLD_PEER as u64,
        };
        if r.queries != expected_queries {
            let _ = writeln!(
                problems,
                "- round {}, {}: B sent {} broadcast queries, not {expected_queries}",
                r.number, r.link, r.queries
            );
        }
        let heard_expected = usize::from(r.link == Link::WithOldPeer);
        if r.old_peers_heard != heard_expected {
            let _ = writeln!(
                problems,
                "- round {}, {}: B heard {} old peers, not {heard_expected}",
                r.number, r.link, r.old_peers_heard
            );
        }
    }
    if problems.is_empty() {
        problems.push_str(
            "Every answer had the expected status. With Peerix peers only, B sent no broadcast \
             query and heard no old peer; with the old peer, B sent one query per first miss \
             and none for the same misses again.\n",
        );
    }
    problems
}
