//! The report: the conditions, every round, and each pair's fleet / one ratio against the target.

use std::fmt::Write as _;

use crate::bench_env::machine_line;
use crate::lab::{BANDWIDTH_BYTES_PER_S, BANDWIDTH_LIMIT, MAX_FETCHERS, PATH_BYTES};
use crate::{median, secs, Kind, Round, TARGET_RATIO};

pub(crate) fn render_report(rounds: &[Round], load_at_start: &str) -> String {
    let mut report =
        String::from("# Fleet: one holder, fifteen fetchers of one 64 MiB path at once\n\n");
    report.push_str(&machine_line(load_at_start));
    let nar_size = rounds.first().map_or(0, |r| r.nar_size);
    let _ = writeln!(
        report,
        "- {} hosts on one bridge (network namespaces), each a `peerix serve --mode libp2p` with \
         `--bandwidth-limit {BANDWIDTH_LIMIT}` (both directions), its own chroot store and state \
         dir; fetchers connected to the holder and to each other; the path: one file of \
         {PATH_BYTES} bytes (NAR {nar_size} bytes), signed, only its key trusted",
        MAX_FETCHERS + 1
    );
    let _ = writeln!(
        report,
        "- each round starts fresh fetchers; each runs `nix copy --from` its own Peerix with \
         `require-sigs = true` into the store its Peerix serves; \"fleet\": all {MAX_FETCHERS} \
         started at once, timed until the last has the path; rounds alternate one, fleet"
    );
    let _ = writeln!(
        report,
        "- one NAR through one {BANDWIDTH_LIMIT} cap takes {:.1} s at least; one server alone \
         would take {MAX_FETCHERS}x for the fleet\n",
        nar_size as f64 / BANDWIDTH_BYTES_PER_S
    );

    report.push_str(
        "| round | fetchers | all have it (s) | each: first / median / last (s) | holder upload \
         (NARs) | fetchers' upload (NARs) | fewest peers connected | NAR equal | with the swarm |\n\
         | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
    );
    for r in rounds {
        let each: Vec<f64> = r.copies.each.iter().copied().map(secs).collect();
        let first = each.iter().copied().fold(f64::INFINITY, f64::min);
        let last = each.iter().copied().fold(0.0, f64::max);
        let _ = writeln!(
            report,
            "| {} {} | {} | {:.2} | {first:.2} / {:.2} / {last:.2} | {:.2} | {:.2} | {} | {}/{} | {}/{} |",
            r.pair,
            match r.kind {
                Kind::One => "one",
                Kind::Fleet => "fleet",
            },
            r.fetchers(),
            secs(r.copies.all),
            median(&each),
            r.nars(r.copies.holder_upload),
            r.nars(r.fetchers_upload()),
            r.fewest_connected,
            r.copies.equal_nars,
            r.fetchers(),
            r.copies.swarmed,
            r.fetchers(),
        );
    }

    let times = |kind: Kind| -> Vec<f64> {
        rounds
            .iter()
            .filter(|r| r.kind == kind)
            .map(|r| secs(r.copies.all))
            .collect()
    };
    let (ones, fleets) = (times(Kind::One), times(Kind::Fleet));
    let ratios: Vec<f64> = ones
        .iter()
        .zip(&fleets)
        .map(|(one, fleet)| fleet / one)
        .collect();
    report.push_str(
        "\n| pair | one (s) | fleet (s) | fleet / one |\n| ---: | ---: | ---: | ---: |\n",
    );
    for (i, ((one, fleet), ratio)) in ones.iter().zip(&fleets).zip(&ratios).enumerate() {
        let _ = writeln!(
            report,
            "| {} | {one:.2} | {fleet:.2} | {ratio:.2}x |",
            i + 1
        );
    }
    let median_ratio = median(&ratios);
    let _ = writeln!(
        report,
        "| median | {:.2} | {:.2} | {median_ratio:.2}x |\n",
        median(&ones),
        median(&fleets)
    );
    let holder_nars: Vec<f64> = rounds
        .iter()
        .filter(|r| r.kind == Kind::Fleet)
        .map(|r| r.nars(r.copies.holder_upload))
        .collect();
    let verdict = if median_ratio <= TARGET_RATIO {
        "met"
    } else {
        "**missed**"
    };
    let _ = writeln!(
        report,
        "Target: the fleet within {TARGET_RATIO}x of one fetcher: {verdict} (median \
         {median_ratio:.2}x); the holder uploaded a median {:.2} NARs per fleet round.",
        median(&holder_nars)
    );
    report
}
