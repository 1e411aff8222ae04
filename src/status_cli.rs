//! `peerix status`: a running `peerix serve`'s `/status`, as a table for a terminal (or the
//! document itself with `--json`), once or every few seconds with `--watch`.

use std::fmt::Write as _;
use std::time::Duration;

use serde_json::Value;
use thiserror::Error;

use crate::cli::StatusArgs;

/// Between two tables of `--watch`.
const WATCH_EVERY: Duration = Duration::from_secs(2);
/// A `/status` document is a few KiB; more is no status.
const MAX_BODY: u64 = 4 << 20;
/// Connections listed at most; the count says how many there are.
const PEERS_LISTED: usize = 20;

#[derive(Debug, Error)]
pub enum StatusError {
    #[error("no Peerix answers at {url}: {reason} (is `peerix serve` running? --api names it)")]
    Unreachable { url: String, reason: String },
    #[error("{url} answered {status}")]
    Status { url: String, status: u16 },
    #[error("{url} sent no status document: {reason}")]
    NotAStatus { url: String, reason: String },
}

pub fn run(args: &StatusArgs) -> Result<(), StatusError> {
    let url = args.api.url("/status");
    let agent = agent();
    loop {
        let status = fetch(&agent, &url)?;
        let text = match args.json {
            true => format!("{status:#}\n"),
            false => render(&args.api.api, &status),
        };
        if !args.watch {
            print!("{text}");
            return Ok(());
        }
        // Clears the terminal and draws the table again from its top left corner.
        print!("\x1b[2J\x1b[H{text}");
        std::thread::sleep(WATCH_EVERY);
    }
}

/// A client for a local Peerix: every request answers within seconds or fails; statuses other
/// than 200 are answers, not errors.
pub(crate) fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .http_status_as_error(false)
        .build()
        .into()
}

/// The `/status` document at `url`.
pub(crate) fn fetch(agent: &ureq::Agent, url: &str) -> Result<Value, StatusError> {
    document(url, agent.get(url).call())
}

/// What a control route at `url` answers a POST with: the state it leaves.
pub(crate) fn press(agent: &ureq::Agent, url: &str) -> Result<Value, StatusError> {
    document(url, agent.post(url).send_empty())
}

/// The JSON document of a 200 answer from `url`.
fn document(
    url: &str,
    answer: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
) -> Result<Value, StatusError> {
    let mut response = answer.map_err(|e| StatusError::Unreachable {
        url: url.to_owned(),
        reason: e.to_string(),
    })?;
    let status = response.status().as_u16();
    if status != 200 {
        return Err(StatusError::Status {
            url: url.to_owned(),
            status,
        });
    }
    let not_a_status = |reason: String| StatusError::NotAStatus {
        url: url.to_owned(),
        reason,
    };
    let text = response
        .body_mut()
        .with_config()
        .limit(MAX_BODY)
        .read_to_string()
        .map_err(|e| not_a_status(e.to_string()))?;
    serde_json::from_str(&text).map_err(|e| not_a_status(e.to_string()))
}

/// The table: one line a fact, the sections of `/status` in turn.
pub fn render(api: &str, status: &Value) -> String {
    let mut out = String::new();
    let mut line = |label: &str, text: String| {
        let _ = writeln!(out, "{label:<12} {text}");
    };
    line(
        "peerix",
        format!(
            "{api}, mode {}, version {}",
            text(&status["mode"]),
            text(&status["version"])
        ),
    );
    let scan = &status["scan"];
    let state = if scan["paused"].as_bool() == Some(true) {
        "paused"
    } else if scan["running"].as_bool() == Some(true) {
        "running"
    } else {
        "idle"
    };
    let mut scan_text = format!(
        "{state}, {}/{} paths, {} failed, {} at {}/s",
        number(&scan["paths_done"]),
        number(&scan["paths_total"]),
        number(&scan["paths_failed"]),
        bytes(&scan["bytes"]),
        bytes(&scan["bytes_per_second"]),
    );
    if let Some(eta) = scan["eta_seconds"].as_f64() {
        let _ = write!(scan_text, ", {} left", duration(eta));
    }
    line("scan", scan_text);
    line(
        "published",
        format!("{} paths", number(&status["indexed_paths"])),
    );
    line(
        "peers hold",
        format!(
            "{} paths, from {} peers",
            number(&status["peers"]["paths"]),
            number(&status["peers"]["holders"])
        ),
    );
    let served = &status["served"];
    let by_source = ["local", "peer", "swarm", "nar_cache", "old_peer"]
        .iter()
        .map(|source| format!("{source} {}", bytes(&served["nar_bytes"][source])))
        .collect::<Vec<_>>()
        .join(", ");
    line(
        "served Nix",
        format!(
            "{} not from upstream ({by_source})",
            bytes(&served["bytes_not_from_upstream"]),
        ),
    );
    let requests = &status["nix_requests"];
    if requests.is_object() {
        line(
            "narinfos",
            format!(
                "{} hits, {} misses",
                number(&requests["narinfo_hits"]),
                number(&requests["narinfo_misses"])
            ),
        );
    }
    let refusals = &status["refusals"];
    if let Some(latest) = refusals["latest"].as_object() {
        line(
            "refused",
            format!(
                "{} kept; latest {} from {}: {}",
                number(&refusals["recent"]),
                text(&latest["hash"]),
                text(&latest["from"]),
                text(&latest["reason"])
            ),
        );
    }
    let node = &status["node"];
    if let Some(error) = node["error"].as_str() {
        line("node", format!("error: {error}"));
    } else if node.is_object() {
        line("node", text(&node["peer_id"]));
        line(
            "NAT",
            format!(
                "{} ({}); hole punching {}",
                text(&node["nat"]["reachability"]),
                text(&node["nat"]["mapping"]),
                text(&node["nat"]["hole_punching"])
            ),
        );
        for (label, key) in [
            ("listening", "listen_addrs"),
            ("reachable at", "external_addrs"),
            ("relayed at", "relayed_addrs"),
        ] {
            for addr in node[key].as_array().into_iter().flatten() {
                line(label, text(addr));
            }
        }
        let cap = match node["bandwidth_limit"].as_u64() {
            Some(limit) => format!("{}/s cap", bytes(&limit.into())),
            None => "no cap".to_owned(),
        };
        let stopped = match node["traffic_stopped"].as_bool() {
            Some(true) => "STOPPED (POST /p2p/start), ",
            _ => "",
        };
        line(
            "traffic",
            format!(
                "{stopped}{} in, {} out, {cap}",
                bytes(&node["bytes_in"]),
                bytes(&node["bytes_out"])
            ),
        );
        let announcements = &node["announcements"];
        line(
            "announcing",
            format!(
                "{}{} queued, {} under way, {} done",
                match announcements["paused"].as_bool() {
                    Some(true) => "paused, ",
                    _ => "",
                },
                number(&announcements["queued"]),
                number(&announcements["running"]),
                number(&announcements["done"])
            ),
        );
        let peers = node["peers"].as_array().map_or(&[][..], Vec::as_slice);
        line("connected", format!("{} peers", peers.len()));
        for peer in peers.iter().take(PEERS_LISTED) {
            let how = if peer["relayed"].as_bool() == Some(true) {
                "relayed"
            } else {
                "direct"
            };
            let rtt = peer["rtt_ms"]
                .as_f64()
                .map_or("-".to_owned(), |ms| format!("{ms:.1} ms"));
            line(
                "",
                format!(
                    "{} {how} {rtt}, {} in, {} out",
                    text(&peer["peer_id"]),
                    bytes(&peer["bytes_in"]),
                    bytes(&peer["bytes_out"])
                ),
            );
        }
        if peers.len() > PEERS_LISTED {
            line("", format!("and {} more", peers.len() - PEERS_LISTED));
        }
    }
    let tracker = &status["tracker"];
    if tracker.is_object() {
        let reach = match tracker["reachable"].as_bool() {
            Some(true) => "reachable".to_owned(),
            _ => format!("unreachable: {}", text(&tracker["last_error"])),
        };
        line(
            "tracker",
            format!(
                "{} {reach}, {} paths in the network",
                text(&tracker["url"]),
                number(&tracker["network_paths"])
            ),
        );
    }
    let pull_through = &status["pull_through"];
    if pull_through.is_object() {
        let answers = match pull_through["upstream_answers"].as_bool() {
            Some(true) => "answering",
            _ => "not answering: paths no peer has are 404",
        };
        line(
            "pull-through",
            format!(
                "{} {answers}; {} files kept ({})",
                text(&pull_through["upstream"]),
                number(&pull_through["files_kept"]),
                bytes(&pull_through["bytes_kept"])
            ),
        );
    }
    let lan = &status["lan"];
    if lan.is_object() {
        let heard: Vec<String> = lan["old_peers_heard"]
            .as_array()
            .into_iter()
            .flatten()
            .map(text)
            .collect();
        line(
            "LAN",
            format!(
                "UDP {}, /local/ on TCP {}, broadcast {}, timeout {} ms",
                number(&lan["udp_port"]),
                number(&lan["http_port"]),
                if lan["broadcast"].as_bool() == Some(true) {
                    "on"
                } else {
                    "off"
                },
                number(&lan["timeout_ms"])
            ),
        );
        line(
            "",
            format!(
                "old peers heard: {}; answered {}, rate-limited {}; asked {}, answered {}",
                if heard.is_empty() {
                    "none".to_owned()
                } else {
                    heard.join(", ")
                },
                number(&lan["requests_answered"]),
                number(&lan["requests_rate_limited"]),
                number(&lan["queries"]),
                number(&lan["queries_answered"])
            ),
        );
    }
    out
}

/// A value as text for a terminal. Strings may come from peers (signer names in a refusal):
/// control characters are shown escaped, so none can move the cursor or recolour the screen.
pub(crate) fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s
            .chars()
            .flat_map(|c| match c.is_control() {
                true => c.escape_default().collect::<Vec<_>>(),
                false => vec![c],
            })
            .collect(),
        Value::Null => "-".to_owned(),
        other => other.to_string(),
    }
}

fn number(value: &Value) -> String {
    match value.as_f64() {
        Some(n) => format!("{n:.0}"),
        None => "-".to_owned(),
    }
}

/// Bytes in the largest unit that keeps a number of at least 1 (powers of 1024).
pub(crate) fn bytes(value: &Value) -> String {
    let Some(mut n) = value.as_f64() else {
        return "-".to_owned();
    };
    for unit in ["B", "KiB", "MiB", "GiB"] {
        if n < 1024.0 {
            return match unit {
                "B" => format!("{n:.0} {unit}"),
                _ => format!("{n:.1} {unit}"),
            };
        }
        n /= 1024.0;
    }
    format!("{n:.1} TiB")
}

pub(crate) fn duration(seconds: f64) -> String {
    let seconds = seconds.max(0.0) as u64;
    match seconds {
        0..=59 => format!("{seconds} s"),
        60..=3599 => format!("{} min {} s", seconds / 60, seconds % 60),
        _ => format!("{} h {} min", seconds / 3600, seconds % 3600 / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn control_characters_from_peers_are_shown_escaped() {
        let hostile = json!("signed by \u{1b}[2Jevil\n");
        assert_eq!(text(&hostile), "signed by \\u{1b}[2Jevil\\n");
    }

    #[test]
    fn the_table_says_each_section_in_words() {
        let status = json!({
            "mode": "lan",
            "scan": {"running": true, "paths_done": 10, "paths_total": 40, "paths_failed": 1,
                     "bytes": 3_145_728, "bytes_per_second": 1024, "eta_seconds": 95.0},
            "indexed_paths": 9,
            "peers": {"holders": 2, "paths": 1234},
            "node": {"peer_id": "12D3KooWA", "nat": {"reachability": "private",
                     "mapping": "symmetric", "hole_punching": "fails"},
                     "listen_addrs": ["/ip4/0.0.0.0/tcp/13304"], "external_addrs": [],
                     "relayed_addrs": [], "bandwidth_limit": null, "bytes_in": 2048,
                     "bytes_out": 0, "peers": [{"peer_id": "12D3KooWB", "relayed": true,
                     "rtt_ms": 12.34, "bytes_in": 10, "bytes_out": 20}]},
            "tracker": {"url": "http://t:12305", "reachable": false, "last_error": "timed out",
                        "network_paths": 7},
            "lan": {"udp_port": 12304, "http_port": 12306, "broadcast": true, "timeout_ms": 150,
                    "old_peers_heard": ["10.0.0.9"], "requests_answered": 3,
                    "requests_rate_limited": 0, "queries": 4, "queries_answered": 1},
            "pull_through": {"upstream": "https://cache.nixos.org", "upstream_answers": true,
                             "files_kept": 3, "bytes_kept": 4096}
        });
        let table = render("http://127.0.0.1:12304", &status);
        for expected in [
            "peerix       http://127.0.0.1:12304, mode lan",
            "running, 10/40 paths, 1 failed, 3.0 MiB at 1.0 KiB/s, 1 min 35 s left",
            "published    9 paths",
            "peers hold   1234 paths, from 2 peers",
            "private (symmetric); hole punching fails",
            "listening    /ip4/0.0.0.0/tcp/13304",
            "2.0 KiB in, 0 B out, no cap",
            "connected    1 peers",
            "12D3KooWB relayed 12.3 ms, 10 B in, 20 B out",
            "http://t:12305 unreachable: timed out, 7 paths in the network",
            "UDP 12304, /local/ on TCP 12306, broadcast on, timeout 150 ms",
            "old peers heard: 10.0.0.9; answered 3, rate-limited 0; asked 4, answered 1",
            "pull-through https://cache.nixos.org answering; 3 files kept (4.0 KiB)",
        ] {
            assert!(
                table.contains(expected),
                "{expected:?} missing from:\n{table}"
            );
        }
        // A node without the optional sections still gets a table.
        let bare = render("x", &json!({"scan": {}, "node": {"error": "stopped"}}));
        assert!(bare.contains("node         error: stopped"), "{bare}");
        assert!(!bare.contains("tracker") && !bare.contains("LAN"), "{bare}");
    }
}
