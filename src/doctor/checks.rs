//! The checks of `peerix doctor`, pure functions over what was gathered: the `/status`
//! document, the answer to `/nix-cache-info`, and Nix's settings.

use std::fmt;

use serde_json::Value;

use super::nix_config::{lists, NixConfig, NixConfigError};
use super::CacheInfoError;
use crate::status_cli::{bytes, duration, text, StatusError};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Ok,
    Warn,
    Fail,
}

/// One line of the report: what was checked, the verdict, what was found and, unless all is
/// well, what to do.
#[derive(Debug, PartialEq, Eq)]
pub struct Check {
    pub label: &'static str,
    pub verdict: Verdict,
    pub what: String,
    pub hint: Option<String>,
}

impl Check {
    fn ok(label: &'static str, what: impl Into<String>) -> Self {
        Self {
            label,
            verdict: Verdict::Ok,
            what: what.into(),
            hint: None,
        }
    }

    fn warn(label: &'static str, what: impl Into<String>, hint: impl Into<String>) -> Self {
        Self {
            label,
            verdict: Verdict::Warn,
            what: what.into(),
            hint: Some(hint.into()),
        }
    }

    fn fail(label: &'static str, what: impl Into<String>, hint: impl Into<String>) -> Self {
        Self {
            label,
            verdict: Verdict::Fail,
            what: what.into(),
            hint: Some(hint.into()),
        }
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = match self.verdict {
            Verdict::Ok => "ok",
            Verdict::Warn => "warn",
            Verdict::Fail => "fail",
        };
        write!(f, "{verdict:<4}  {:<10}  {}", self.label, self.what)?;
        match &self.hint {
            Some(hint) => write!(f, "; hint: {hint}"),
            None => Ok(()),
        }
    }
}

/// A check of the `/status` document alone.
type StatusCheck = fn(&Value) -> Check;

/// The checks that need the daemon, in order, each with its label.
const DAEMON_CHECKS: [(&str, StatusCheck); 7] = [
    ("ports", ports),
    ("peers", peers),
    ("NAT", nat),
    ("bandwidth", bandwidth),
    ("last scan", last_scan),
    ("refusals", refusals),
    ("tracker", tracker),
];

/// Every check, in order. `cache_info` is `None` when `/status` did not answer.
pub fn all(
    api: &str,
    status: &Result<Value, StatusError>,
    cache_info: Option<&Result<(), CacheInfoError>>,
    nix: &Result<NixConfig, NixConfigError>,
) -> Vec<Check> {
    let mut checks = vec![reachable(api, status)];
    let skipped = |label| {
        Check::fail(
            label,
            "skipped: Peerix does not answer",
            "start `peerix serve` first",
        )
    };
    match (status, cache_info) {
        (Ok(status), Some(cache_info)) => checks.push(store(status, cache_info)),
        _ => checks.push(skipped("store")),
    }
    checks.push(nix_config(api, nix));
    for (label, check) in DAEMON_CHECKS {
        checks.push(match status {
            Ok(status) => check(status),
            Err(_) => skipped(label),
        });
    }
    checks
}

pub fn reachable(api: &str, status: &Result<Value, StatusError>) -> Check {
    const LABEL: &str = "reachable";
    match status {
        Ok(status) => Check::ok(
            LABEL,
            format!(
                "Peerix answers at {api}, peer id {}",
                text(&status["node"]["peer_id"])
            ),
        ),
        Err(e) => Check::fail(
            LABEL,
            e.to_string(),
            "start it (`peerix serve`, or `systemctl start peerix`), or name it with --api",
        ),
    }
}

pub fn store(status: &Value, cache_info: &Result<(), CacheInfoError>) -> Check {
    const LABEL: &str = "store";
    if let Err(e) = cache_info {
        return Check::fail(
            LABEL,
            format!("GET /nix-cache-info failed: {e}"),
            "Peerix must be able to read the Nix database under --store-root; its log says why not",
        );
    }
    let scan = &status["scan"];
    let total = scan["paths_total"].as_u64().unwrap_or(0);
    let failed = scan["paths_failed"].as_u64().unwrap_or(0);
    if scan["running"].as_bool() == Some(true) {
        return Check::ok(
            LABEL,
            format!(
                "/nix-cache-info answers; the scan is at {} of {total} paths",
                text(&scan["paths_done"])
            ),
        );
    }
    let finished = !scan["finished_seconds_ago"].is_null();
    let published = status["indexed_paths"].as_u64();
    if published == Some(0) || (finished && total == 0) {
        return Check::warn(
            LABEL,
            format!("/nix-cache-info answers, but no path is shared (the scan found {total})"),
            "check that --store-root is the root of a store with a Nix database \
             (nix/var/nix/db/db.sqlite) and that the filters (--filter-pattern) hide less",
        );
    }
    let published = published.map_or("-".to_owned(), |n| n.to_string());
    match finished {
        true => Check::ok(
            LABEL,
            format!("/nix-cache-info answers; the scan found {total} paths ({failed} failed), {published} shared"),
        ),
        false => Check::ok(
            LABEL,
            format!("/nix-cache-info answers; {published} paths shared, no scan finished yet"),
        ),
    }
}

pub fn nix_config(api: &str, nix: &Result<NixConfig, NixConfigError>) -> Check {
    const LABEL: &str = "nix config";
    let config = match nix {
        Ok(config) => config,
        Err(e) => {
            return Check::warn(
                LABEL,
                format!("cannot read Nix's configuration: {e}"),
                "install Nix, or set PEERIX_NIX to the nix command",
            )
        }
    };
    let settings = &config.settings;
    let mut problems = Vec::new();
    let mut hints = Vec::new();
    let mut verdict = Verdict::Ok;
    if !lists(&settings.substituters, api) {
        let only_trusted = lists(&settings.trusted_substituters, api);
        verdict = Verdict::Fail;
        problems.push(match only_trusted {
            true => format!(
                "{api} is only in trusted-substituters, which Nix does not use unless asked"
            ),
            false => format!("substituters do not list {api}"),
        });
        hints.push(format!(
            "add `extra-substituters = {api}` to /etc/nix/nix.conf (substituters) and restart nix-daemon"
        ));
    }
    if settings.trusted_public_keys.is_empty() {
        verdict = Verdict::Fail;
        problems.push("trusted-public-keys is empty".to_owned());
        hints.push(
            "add the keys of the signers Peerix passes on (cache.nixos.org-1's, and the public \
             half of --private-key) to trusted-public-keys"
                .to_owned(),
        );
    }
    if verdict == Verdict::Ok {
        return Check::ok(
            LABEL,
            format!(
                "{} lists {api} as a substituter and trusts {} keys",
                config.source,
                settings.trusted_public_keys.len()
            ),
        );
    }
    Check::fail(
        LABEL,
        format!("{}: {}", config.source, problems.join("; ")),
        hints.join("; "),
    )
}

/// The embedded node's part of `/status`, or the failed check saying it has none.
fn node<'a>(label: &'static str, status: &'a Value) -> Result<&'a Value, Check> {
    let node = &status["node"];
    match node["error"].as_str() {
        Some(error) => Err(Check::fail(
            label,
            format!("the embedded node does not answer: {error}"),
            "restart `peerix serve` and read its log",
        )),
        None if node.is_object() => Ok(node),
        None => Err(Check::fail(
            label,
            "/status has no node",
            "this Peerix runs without an embedded node",
        )),
    }
}

fn strings(value: &Value) -> Vec<String> {
    value.as_array().into_iter().flatten().map(text).collect()
}

pub fn ports(status: &Value) -> Check {
    const LABEL: &str = "ports";
    let node = match node(LABEL, status) {
        Ok(node) => node,
        Err(check) => return check,
    };
    let addrs = strings(&node["listen_addrs"]);
    if addrs.is_empty() {
        return Check::fail(
            LABEL,
            "the HTTP front answers, but the node listens on no address",
            "another program may hold the node's port (--port + 1000, or --listen-addrs); \
             the log of `peerix serve` names the address it could not bind",
        );
    }
    let mut what = format!("HTTP front answers; node listens on {}", addrs.join(", "));
    let lan = &status["lan"];
    if lan.is_object() {
        what += &format!(
            "; LAN: UDP {}, /local/ on TCP {}",
            text(&lan["udp_port"]),
            text(&lan["http_port"])
        );
    }
    Check::ok(LABEL, what)
}

pub fn peers(status: &Value) -> Check {
    const LABEL: &str = "peers";
    let node = match node(LABEL, status) {
        Ok(node) => node,
        Err(check) => return check,
    };
    let peers = node["peers"].as_array().map_or(&[][..], Vec::as_slice);
    let relayed = peers
        .iter()
        .filter(|p| p["relayed"].as_bool() == Some(true))
        .count();
    let direct = peers.len() - relayed;
    match (direct, relayed) {
        (0, 0) => Check::warn(
            LABEL,
            "no peer connected",
            "peers are found by mDNS, the DHT or the tracker: give --bootstrap-peers or \
             --bootstrap-url, and let the node's port (--port + 1000, TCP and UDP) through the firewall",
        ),
        (0, relayed) => Check::warn(
            LABEL,
            format!("{relayed} peers connected, all through relays (slower, capped)"),
            "forward the node's port (--port + 1000) on the router, or give --external-addrs",
        ),
        (direct, relayed) => Check::ok(
            LABEL,
            format!("{} peers connected: {direct} direct, {relayed} relayed", peers.len()),
        ),
    }
}

pub fn nat(status: &Value) -> Check {
    const LABEL: &str = "NAT";
    let node = match node(LABEL, status) {
        Ok(node) => node,
        Err(check) => return check,
    };
    let nat = &node["nat"];
    let (reachability, mapping) = (text(&nat["reachability"]), text(&nat["mapping"]));
    let hole_punching = text(&nat["hole_punching"]);
    match (reachability.as_str(), mapping.as_str()) {
        ("public", _) => Check::ok(LABEL, "publicly reachable: peers dial this node directly"),
        ("private", "symmetric") => Check::warn(
            LABEL,
            format!("behind a symmetric NAT: hole punching {hole_punching}; such peers reach this node through relays only"),
            "forward the node's port (--port + 1000) on the router, or enable UPnP/NAT-PMP there",
        ),
        ("private", _) => Check::ok(
            LABEL,
            format!("behind a NAT ({mapping} mapping): peers reach this node by hole punching, {hole_punching}"),
        ),
        _ => Check::ok(
            LABEL,
            format!("reachability {reachability} (mapping {mapping}): not known until peers have dialled back"),
        ),
    }
}

pub fn bandwidth(status: &Value) -> Check {
    const LABEL: &str = "bandwidth";
    let node = match node(LABEL, status) {
        Ok(node) => node,
        Err(check) => return check,
    };
    match node["bandwidth_limit"].as_u64() {
        Some(limit) => Check::ok(
            LABEL,
            format!(
                "peer-to-peer traffic capped at {}/s each way (--bandwidth-limit)",
                bytes(&limit.into())
            ),
        ),
        None => Check::ok(LABEL, "no cap (--bandwidth-limit sets one)"),
    }
}

pub fn last_scan(status: &Value) -> Check {
    const LABEL: &str = "last scan";
    let scan = &status["scan"];
    let failed = scan["paths_failed"].as_u64().unwrap_or(0);
    let when = match scan["finished_seconds_ago"].as_f64() {
        Some(seconds) => format!("finished {} ago", duration(seconds)),
        None => "none finished yet".to_owned(),
    };
    let running = match scan["running"].as_bool() {
        Some(true) => "; one is running",
        _ => "",
    };
    if failed > 0 {
        return Check::warn(
            LABEL,
            format!("{when}{running}; {failed} paths could not be published"),
            "run `peerix serve -v` and read the errors of the scan: an unreadable path or \
             a full state dir",
        );
    }
    Check::ok(LABEL, format!("{when}{running}"))
}

pub fn refusals(status: &Value) -> Check {
    const LABEL: &str = "refusals";
    let refusals = &status["refusals"];
    let Some(count) = refusals["recent"].as_u64() else {
        return Check::ok(LABEL, "this Peerix's /status has no refusal log");
    };
    if count == 0 {
        return Check::ok(LABEL, "nothing from peers was refused");
    }
    let latest = &refusals["latest"];
    Check::warn(
        LABEL,
        format!(
            "{count} answers from others refused; the latest, {} s ago: {} from {}: {}",
            text(&latest["seconds_ago"]),
            text(&latest["hash"]),
            text(&latest["from"]),
            text(&latest["reason"])
        ),
        "`peerix why HASH` explains a path; a signer Peerix should accept goes in \
         --trusted-public-key, or let --upstream-cache vouch",
    )
}

pub fn tracker(status: &Value) -> Check {
    const LABEL: &str = "tracker";
    let tracker = &status["tracker"];
    if !tracker.is_object() {
        return Check::ok(
            LABEL,
            "none configured (only wan, hybrid and both need one)",
        );
    }
    let url = text(&tracker["url"]);
    match (
        tracker["reachable"].as_bool(),
        tracker["last_error"].as_str(),
    ) {
        (Some(true), _) => Check::ok(
            LABEL,
            format!(
                "{url} reachable, {} paths in the network",
                text(&tracker["network_paths"])
            ),
        ),
        (_, Some(error)) => Check::fail(
            LABEL,
            format!("{url} unreachable: {error}"),
            "check --tracker-url and that `peerix tracker` runs there and lets this host in",
        ),
        (_, None) => Check::warn(
            LABEL,
            format!("{url} not reached yet"),
            "ask again in a few seconds; the node contacts it at start",
        ),
    }
}

#[cfg(test)]
#[path = "checks_tests.rs"]
mod tests;
