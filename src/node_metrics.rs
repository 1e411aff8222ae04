//! The node's families at `/metrics`, from the same sources as `/status`, so the two never
//! disagree: the publication scan, DHT announcements, connected peers and traffic, the
//! bandwidth cap's waits, what peers hold, narinfo lookups by source, refusals by kind, the
//! tracker's health and the LAN protocol. Prometheus conventions: `_total` for
//! counters, units in names.

use std::fmt::Write as _;
use std::future::Future;
use std::pin::Pin;

use peerix_http::MoreMetrics;

use crate::fetch::{LookupSource, Source};
use crate::status::StatusSources;

pub struct NodeMetrics(pub StatusSources);

/// One family: its help, type and samples (label text, value).
fn family(out: &mut String, name: &str, kind: &str, help: &str, samples: &[(&str, f64)]) {
    let _ = writeln!(
        out,
        "# HELP peerix_{name} {help}\n# TYPE peerix_{name} {kind}"
    );
    for (labels, value) in samples {
        match labels.is_empty() {
            true => {
                let _ = writeln!(out, "peerix_{name} {value}");
            }
            false => {
                let _ = writeln!(out, "peerix_{name}{{{labels}}} {value}");
            }
        }
    }
}

fn as_samples(labelled: &[(String, f64)]) -> Vec<(&str, f64)> {
    labelled.iter().map(|(l, n)| (l.as_str(), *n)).collect()
}

impl MoreMetrics for NodeMetrics {
    fn render(&self) -> Pin<Box<dyn Future<Output = String> + Send + '_>> {
        Box::pin(self.render_families())
    }
}

impl NodeMetrics {
    async fn render_families(&self) -> String {
        let sources = &self.0;
        let mut out = String::with_capacity(4096);
        let scan = sources.progress.report();
        let flag = |on: bool| if on { 1.0 } else { 0.0 };
        family(
            &mut out,
            "scan_paths",
            "gauge",
            "Paths of the current (or last) publication scan, by state.",
            &[
                ("state=\"done\"", scan.paths_done as f64),
                ("state=\"total\"", scan.paths_total as f64),
                ("state=\"failed\"", scan.paths_failed as f64),
            ],
        );
        family(
            &mut out,
            "scan_bytes",
            "gauge",
            "Bytes the current (or last) publication scan read.",
            &[("", scan.bytes as f64)],
        );
        family(
            &mut out,
            "scan_running",
            "gauge",
            "1 while a publication scan runs.",
            &[("", flag(scan.running))],
        );
        family(
            &mut out,
            "scan_paused",
            "gauge",
            "1 while the publication scan is paused.",
            &[("", flag(sources.scan_control.is_paused()))],
        );
        let by_source = |count: &dyn Fn(Source) -> u64| -> Vec<(String, f64)> {
            Source::ALL
                .iter()
                .map(|s| (format!("source=\"{}\"", s.name()), count(*s) as f64))
                .collect()
        };
        let narinfos = by_source(&|s| sources.served.narinfos(s));
        let nar_bytes = by_source(&|s| sources.served.nar_bytes(s));
        family(
            &mut out,
            "narinfo_served_total",
            "counter",
            "Narinfos Nix got, by where they came from.",
            &as_samples(&narinfos),
        );
        family(
            &mut out,
            "nar_served_bytes_total",
            "counter",
            "NAR bytes Nix got, by where they came from: none had to come from upstream.",
            &as_samples(&nar_bytes),
        );
        let lookups: Vec<(String, f64)> = LookupSource::ALL
            .iter()
            .flat_map(|&source| {
                let (hits, misses) = sources.lookups.count(source);
                let labels =
                    |outcome| format!("source=\"{}\",outcome=\"{outcome}\"", source.name());
                [
                    (labels("hit"), hits as f64),
                    (labels("miss"), misses as f64),
                ]
            })
            .collect();
        family(
            &mut out,
            "narinfo_lookups_total",
            "counter",
            "Narinfo lookups by where they were tried (in this order), hit or miss.",
            &as_samples(&lookups),
        );
        let refusals: Vec<(String, f64)> = sources
            .refusals
            .by_kind()
            .map(|(kind, count)| (format!("kind=\"{kind}\""), count as f64))
            .collect();
        family(
            &mut out,
            "refusals_total",
            "counter",
            "What others sent for Nix and this node refused, by kind.",
            &as_samples(&refusals),
        );
        let (holders, remote_paths) = sources.holders.summary();
        family(
            &mut out,
            "holders",
            "gauge",
            "Peers whose held paths this node knows.",
            &[("", holders as f64)],
        );
        family(
            &mut out,
            "remote_paths",
            "gauge",
            "Store paths peers hold, as this node knows them.",
            &[("", remote_paths as f64)],
        );
        if let Ok(status) = sources.node.status().await {
            let a = status.announcements;
            family(
                &mut out,
                "announcements",
                "gauge",
                "DHT announcements waiting and under way.",
                &[
                    ("state=\"queued\"", a.queued as f64),
                    ("state=\"running\"", a.running as f64),
                ],
            );
            family(
                &mut out,
                "announcements_done_total",
                "counter",
                "DHT announcements finished since start.",
                &[("", a.done as f64)],
            );
            family(
                &mut out,
                "announcements_paused",
                "gauge",
                "1 while DHT announcements are paused.",
                &[("", flag(a.paused))],
            );
            family(
                &mut out,
                "provided_keys",
                "gauge",
                "Keys this node provides in the DHT.",
                &[("", status.provided_keys as f64)],
            );
            family(
                &mut out,
                "p2p_stopped",
                "gauge",
                "1 while the operator has stopped all peer-to-peer traffic.",
                &[("", flag(status.traffic_stopped))],
            );
            let waits = status.bandwidth_waits;
            family(
                &mut out,
                "bandwidth_cap_waits_total",
                "counter",
                "Times a substream waited for the bandwidth cap, by direction.",
                &[
                    ("direction=\"in\"", waits.inbound.waits as f64),
                    ("direction=\"out\"", waits.outbound.waits as f64),
                ],
            );
            family(
                &mut out,
                "bandwidth_cap_wait_seconds_total",
                "counter",
                "Time substreams spent waiting for the bandwidth cap, by direction.",
                &[
                    ("direction=\"in\"", waits.inbound.waited.as_secs_f64()),
                    ("direction=\"out\"", waits.outbound.waited.as_secs_f64()),
                ],
            );
            let secured = status.secured;
            family(
                &mut out,
                "p2p_connections_secured_total",
                "counter",
                "TCP connections secured since start, by protocol and cipher.",
                &[
                    (
                        "protocol=\"tls\",cipher=\"aes-gcm\"",
                        secured.tls_aes_gcm as f64,
                    ),
                    (
                        "protocol=\"tls\",cipher=\"chacha20-poly1305\"",
                        secured.tls_chacha20 as f64,
                    ),
                    (
                        "protocol=\"noise\",cipher=\"chacha20-poly1305\"",
                        secured.noise as f64,
                    ),
                ],
            );
            let relayed = status.peers.iter().filter(|p| p.relayed).count();
            family(
                &mut out,
                "peers",
                "gauge",
                "Connected peers, by connection.",
                &[
                    (
                        "connection=\"direct\"",
                        (status.peers.len() - relayed) as f64,
                    ),
                    ("connection=\"relayed\"", relayed as f64),
                ],
            );
            family(
                &mut out,
                "p2p_bytes_total",
                "counter",
                "Bytes over direct peer-to-peer connections since start, by direction.",
                &[
                    ("direction=\"in\"", status.bytes_in as f64),
                    ("direction=\"out\"", status.bytes_out as f64),
                ],
            );
        }
        if let Some(tracker) = &sources.tracker {
            let status = tracker.status();
            family(
                &mut out,
                "tracker_reachable",
                "gauge",
                "1 while the tracker answers.",
                &[("", flag(status["reachable"] == true))],
            );
        }
        let (found, not_found) = sources.answered.narinfos();
        family(
            &mut out,
            "peer_narinfo_requests_total",
            "counter",
            "Peers' narinfo requests this node answered, by outcome.",
            &[
                ("outcome=\"found\"", found as f64),
                ("outcome=\"not_found\"", not_found as f64),
            ],
        );
        let (nars, nar_bytes) = sources.answered.nars();
        family(
            &mut out,
            "peer_nar_requests_total",
            "counter",
            "NAR ranges this node sent peers whole.",
            &[("", nars as f64)],
        );
        family(
            &mut out,
            "peer_nar_bytes_total",
            "counter",
            "Bytes of the NAR ranges this node sent peers whole.",
            &[("", nar_bytes as f64)],
        );
        if let Some(lan) = &sources.lan {
            let status = lan.status();
            family(
                &mut out,
                "lan_requests_total",
                "counter",
                "Old LAN peers' requests, by what became of them.",
                &[
                    ("outcome=\"answered\"", status.requests_answered as f64),
                    ("outcome=\"unanswered\"", status.requests_unanswered as f64),
                    (
                        "outcome=\"rate_limited\"",
                        status.requests_rate_limited as f64,
                    ),
                ],
            );
            family(
                &mut out,
                "lan_queries_total",
                "counter",
                "LAN queries this node sent, and those answered.",
                &[
                    ("outcome=\"sent\"", status.queries as f64),
                    ("outcome=\"answered\"", status.queries_answered as f64),
                ],
            );
            family(
                &mut out,
                "lan_answers_refused_total",
                "counter",
                "LAN answers not taken (unknown id, wrong source or hash).",
                &[("", status.answers_refused as f64)],
            );
            family(
                &mut out,
                "lan_old_peers",
                "gauge",
                "Machines heard speaking the old LAN protocol lately.",
                &[("", status.old_peers_heard.len() as f64)],
            );
        }
        out
    }
}
