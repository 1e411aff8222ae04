//! The multi-source and scan part of the report: the conditions and the table.

use std::fmt::Write as _;

use crate::multi_source::{
    MultiSource, MultiSourceResults, ScanSample, BANDWIDTH_LIMIT, BANDWIDTH_LIMIT_MB_PER_S,
    INDEX_SETTLE, TARGET_SCAN_RATIO, TARGET_SPEEDUP,
};

/// The facts and the table, for the end of the report.
pub(crate) fn render(setup: Option<&MultiSource>, results: &MultiSourceResults) -> String {
    let best = |values: &mut dyn Iterator<Item = f64>| values.reduce(f64::max);
    let one = best(&mut results.fetches[0].iter().map(|f| f.mb_per_s));
    let two = best(&mut results.fetches[1].iter().map(|f| f.mb_per_s));
    let reported = best(&mut results.scans.iter().map(|s| s.reported_mb_per_s));
    let from_start = best(&mut results.scans.iter().map(|s| s.from_start_mb_per_s));
    let sha = best(&mut results.sha256sum_mb_per_s.iter().copied());
    let each = |values: &mut dyn Iterator<Item = String>| {
        let all: Vec<String> = values.collect();
        if all.is_empty() {
            "none".to_owned()
        } else {
            all.join(", ")
        }
    };

    let scans = |samples: &[ScanSample]| {
        each(&mut samples.iter().map(|s| {
            format!(
                "{:.0} / {:.0} ({}, {:.2})",
                s.reported_mb_per_s,
                s.from_start_mb_per_s,
                s.bytes,
                s.from_start.as_secs_f64()
            )
        }))
    };

    let mut text = String::from("\n## Multi-source NAR and publication scan\n\n");
    let _ = writeln!(
        text,
        "- every holder `--bandwidth-limit {BANDWIDTH_LIMIT}` ({BANDWIDTH_LIMIT_MB_PER_S} MB/s each \
         direction), signing with A's key; B uncapped, empty store, `--bootstrap-peers` every \
         holder; holder 1: the fixture store, holder 2: a second store with just the big path \
         (`nix copy --no-check-sigs`); fresh holders and B for each fetch; one whole NAR per \
         configuration and round, its SHA-256 checked against `sha256sum` of the NAR, best of the \
         rounds shown"
    );
    if let Some(setup) = setup {
        // The node's token bucket starts full with a quarter second of its rate
        // (node/src/traffic/throttle.rs), so a capped transfer beats the cap a little.
        let (size, cap) = (setup.nar_bytes as f64, BANDWIDTH_LIMIT_MB_PER_S * 1e6);
        let burst = cap / 4.0;
        let ideal = |holders: f64| size / ((size / holders - burst) / cap) / 1e6;
        let _ = writeln!(
            text,
            "- what the caps allow (each holder's bucket starts with a {:.1} MB burst): {:.1} MB/s \
             from one holder, {:.1} MB/s from two (ratio {:.2})",
            burst / 1e6,
            ideal(1.0),
            ideal(2.0),
            ideal(2.0) / ideal(1.0)
        );
    }
    let _ = writeln!(
        text,
        "- measured after: every holder's scan finished, B answered the narinfo 200, B connected \
         to every holder, then {INDEX_SETTLE:?}"
    );
    for (holders, fetches) in results.fetches.iter().enumerate() {
        let _ = writeln!(
            text,
            "- {} holder(s), per round: MB/s (bytes B received from each holder): {}",
            holders + 1,
            each(
                &mut fetches
                    .iter()
                    .map(|f| format!("{:.1} ({:?})", f.mb_per_s, f.bytes_from))
            )
        );
    }
    let _ = writeln!(
        text,
        "- holder 1's scan of the fixture store, each start: MB/s reported / MB/s from spawning \
         the process (bytes, seconds): {}",
        scans(&results.scans)
    );
    let _ = writeln!(
        text,
        "- for comparison, holder 2's scan of its store (just the big path), each start: {}",
        scans(&results.big_only_scans)
    );
    let _ = writeln!(
        text,
        "- `sha256sum` of the big NAR's file ({} bytes, page cache warm), per round (MB/s): {}",
        setup.map_or(0, |s| s.nar_bytes),
        each(&mut results.sha256sum_mb_per_s.iter().map(|v| format!("{v:.0}")))
    );

    let cell = |v: Option<f64>| v.map_or_else(|| "—".to_owned(), |v| format!("{v:.1}"));
    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    };
    let verdict = |r: Option<f64>, target: f64| match r {
        Some(r) if r >= target => format!("≥ {target}: met"),
        Some(_) => format!("≥ {target}: **missed**"),
        None => format!("≥ {target}: not measured"),
    };
    let ratio_cell = |r: Option<f64>| r.map_or_else(|| "—".to_owned(), |r| format!("{r:.2}"));
    let speedup = ratio(two, one);
    let scan_ratio = ratio(reported, sha);
    let start_ratio = ratio(from_start, sha);
    text.push_str("\n| measurement | Peerix | baseline | ratio | target for the ratio |\n");
    text.push_str("| --- | ---: | ---: | ---: | --- |\n");
    let _ = writeln!(
        text,
        "| NAR 256 MiB through B (MB/s): two holders vs one holder | {} | {} | {} | {} |",
        cell(two),
        cell(one),
        ratio_cell(speedup),
        verdict(speedup, TARGET_SPEEDUP)
    );
    let _ = writeln!(
        text,
        "| publication scan, rate in `GET /status` vs `sha256sum` (MB/s) | {} | {} | {} | {} |",
        cell(reported),
        cell(sha),
        ratio_cell(scan_ratio),
        verdict(scan_ratio, TARGET_SCAN_RATIO)
    );
    let _ = writeln!(
        text,
        "| publication scan, NAR bytes / (spawn → scan finished) vs `sha256sum` (MB/s) | {} | {} \
         | {} | {} |",
        cell(from_start),
        cell(sha),
        ratio_cell(start_ratio),
        verdict(start_ratio, TARGET_SCAN_RATIO)
    );
    text.push_str(
        "\nMB = 1e6 bytes. The scan hashes every NAR of the fixture store (1,000 small paths and \
         the 256 MiB one) and imports it into the embedded node; `sha256sum` hashes the 256 MiB \
         NAR once.\n",
    );
    if results.failures.is_empty() {
        text.push_str("\nNo failed fetch, every NAR's SHA-256 right.\n");
    } else {
        text.push('\n');
        for failure in &results.failures {
            let _ = writeln!(text, "- {failure}");
        }
    }
    text
}
