//! `peerix serve --check-config`: the settings a start would use, made by the same code up to
//! the point where it would bind or start anything, and printed for the operator.

use std::fmt::{self, Display};

use super::settings::{Purpose, Settings};
use super::StartError;
use crate::cli::ServeArgs;
use crate::fetch::Trust;

/// Checks every flag and file `args` name, writing nothing, and prints what would run.
pub fn check_config(args: ServeArgs) -> Result<(), StartError> {
    let (settings, trust) = Settings::from_args(args, Purpose::Check)?;
    if settings.node.is_none() && settings.tracker_url.is_none() {
        return Err(StartError::KuboAloneWithoutTracker);
    }
    print!("{}", Summary(&settings, &trust));
    Ok(())
}

struct Summary<'a>(&'a Settings, &'a Trust);

impl Display for Summary<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self(settings, trust) = self;
        writeln!(f, "peerix serve: configuration valid (nothing started)")?;
        writeln!(f, "mode: {}", settings.mode)?;
        writeln!(f, "http: http://{}", settings.http_addr)?;
        match &settings.node {
            Some(node) => writeln!(f, "libp2p listen: {}", list(&node.listen_addrs))?,
            None => writeln!(f, "libp2p listen: none (no embedded node)")?,
        }
        if let Some(lan) = &settings.lan {
            let (udp, local) = (lan.config.udp_port, lan.listen);
            writeln!(f, "lan: udp port {udp}, /local/ routes on {local}")?;
        }
        writeln!(f, "store root: {}", settings.store_root.display())?;
        writeln!(f, "state dir: {}", settings.state_dir.display())?;
        let keys: Vec<&str> = trust.keys.iter().map(|key| key.name()).collect();
        writeln!(f, "trusted keys: {}", or_none(&keys.join(", ")))?;
        let upstream = trust.upstream.as_ref().map_or("none", |u| u.url());
        writeln!(f, "upstream cache: {upstream}")?;
        let pull_through = if settings.pull_through { "on" } else { "off" };
        writeln!(f, "pull-through: {pull_through}")?;
        let signing = trust.own_key_name.as_deref().unwrap_or("none");
        writeln!(f, "signing key: {signing}")?;
        writeln!(f, "discovery: {}", or_none(&discovery(settings).join(", ")))?;
        writeln!(f, "limits: {}", limits(settings).join(", "))
    }
}

fn discovery(settings: &Settings) -> Vec<String> {
    let mut sources = Vec::new();
    if let Some(node) = &settings.node {
        if settings.rendezvous {
            sources.push(format!("rendezvous in network {:?}", settings.network_id));
        }
        if node.mdns {
            sources.push("mDNS".to_owned());
        }
        if node.public_dht {
            sources.push("public IPFS DHT".to_owned());
        }
        if !node.bootstrap_peers.is_empty() {
            sources.push(format!("{} bootstrap peers", node.bootstrap_peers.len()));
        }
    }
    if let Some(url) = &settings.tracker_url {
        sources.push(format!("tracker {url}"));
    }
    if let Some(url) = &settings.bootstrap_url {
        sources.push(format!("bootstrap URL {url}"));
    }
    if let Some(lan) = &settings.lan {
        let broadcast = if lan.config.broadcast {
            "broadcast"
        } else {
            "no broadcast"
        };
        let hosts = lan.config.extra_hosts.len();
        sources.push(format!("LAN protocol ({broadcast}, {hosts} extra hosts)"));
    }
    if let Some(url) = &settings.ipfs_api {
        sources.push(format!("kubo at {url}"));
    }
    sources
}

fn limits(settings: &Settings) -> Vec<String> {
    let server = settings.server_limits;
    let mut limits = vec![
        format!("{} HTTP connections", server.max_connections),
        format!("{}s request-head timeout", server.header_timeout.as_secs()),
        format!("uploads up to {} bytes", settings.max_add_size),
        format!("NAR cache {} bytes", settings.cache_size),
    ];
    if let Some(node) = &settings.node {
        limits.push(match node.bandwidth_limit {
            Some(rate) => format!("peer traffic {rate} bytes/s each way"),
            None => "no peer traffic cap".to_owned(),
        });
        limits.push(match node.announce_rate {
            Some(rate) => format!("{rate} announcements/s"),
            None => "unpaced announcements".to_owned(),
        });
    }
    limits.push(match settings.scan_interval {
        Some(interval) => format!("full scan every {}s", interval.as_secs()),
        None => "no periodic scan".to_owned(),
    });
    limits
}

fn list(items: &[impl Display]) -> String {
    let texts: Vec<String> = items.iter().map(ToString::to_string).collect();
    or_none(&texts.join(", ")).to_owned()
}

fn or_none(text: &str) -> &str {
    if text.is_empty() {
        "none"
    } else {
        text
    }
}
