//! The report: the conditions, then every round of every flood.

use std::fmt::Write as _;

use crate::bench_env::machine_line;
use crate::{
    RoundResult, Setup, ALONE, FLOODER_THREADS, FLOODS, PATHS, PATH_STEP, REQUESTS, ROUNDS,
    TARGET_P99_MS,
};

pub(crate) fn render(
    load_at_start: &str,
    setup: &Setup,
    results: &[RoundResult],
    failures: &[String],
) -> String {
    let mut text = String::from("# NAR-request flood: the HTTP front under a flood of peers\n\n");
    text.push_str(&machine_line(load_at_start));
    let _ = writeln!(
        text,
        "- node: `peerix serve --offline` on a synthetic store of {PATHS} paths (generated in \
         {:.1?}, indexed and scanned in {:.1?}), libp2p on 127.0.0.1",
        setup.generated_in, setup.scanned_in
    );
    let _ = writeln!(
        text,
        "- front: narinfos of every {PATH_STEP}th path, one after another, each over a fresh \
         HTTP/1.1 connection; alone for {ALONE:?} before each flood, then for as long as the \
         flood lasts"
    );
    let floods: Vec<String> = FLOODS
        .iter()
        .map(|f| {
            format!(
                "{} identit{} x {} in flight",
                f.identities,
                if f.identities == 1 { "y" } else { "ies" },
                f.in_flight_per_identity
            )
        })
        .collect();
    let _ = writeln!(
        text,
        "- flood: {REQUESTS} NAR requests for random NAR hashes, a stream each, from {} on one \
         address; the flooder runs in this process on a pool of {FLOODER_THREADS} threads of its \
         own; {ROUNDS} rounds, the two floods alternating",
        floods.join(", or ")
    );
    let _ = writeln!(
        text,
        "\n| round | identities | alone p50 / p99 (ms) | during p50 / p99 (ms) | narinfos during \
         | flood (s) | requests/s | not found | busy | found | flooder CPU (s) | node CPU (s) |"
    );
    let _ = writeln!(
        text,
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    for r in results {
        let _ = writeln!(
            text,
            "| {} | {} | {:.2} / {:.2} | {:.2} / {:.2} | {} | {:.2} | {:.0} | {} | {} | {} | \
             {:.2} | {:.2} |",
            r.round + 1,
            r.flooders.identities,
            r.alone.p50,
            r.alone.p99,
            r.during.p50,
            r.during.p99,
            r.during.count,
            r.outcome.took.as_secs_f64(),
            r.outcome.per_second(),
            r.outcome.not_found,
            r.outcome.busy,
            r.outcome.found + r.outcome.malformed,
            r.flooder_cpu.as_secs_f64(),
            r.node_cpu.as_secs_f64(),
        );
    }
    let worst = results.iter().map(|r| r.during.p99).reduce(f64::max);
    if let Some(worst) = worst {
        let met = if worst < TARGET_P99_MS && failures.is_empty() {
            "met"
        } else {
            "**not met**"
        };
        let _ = writeln!(
            text,
            "\nTarget: narinfo p99 during the flood under {TARGET_P99_MS} ms in every round: \
             worst {worst:.2} ms, {met}."
        );
    }
    for failure in failures {
        let _ = writeln!(text, "- failed: {failure}");
    }
    text
}
