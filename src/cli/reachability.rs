//! Flags for reaching peers behind NATs: relays to reserve a slot on, this node's own relay
//! service and its limits, addresses the node cannot discover itself.

use std::net::IpAddr;
use std::time::Duration;

use clap::builder::BoolishValueParser;
use clap::Args;
use peerix_node::{Multiaddr, NodeConfig, RelayLimits};

use super::{parse_amount, ConfigError};

#[derive(Args, Debug)]
pub struct ReachabilityArgs {
    /// Relay (v2) to hold a reservation on while this node is not publicly reachable, ending in
    /// /p2p/<peer id> (repeatable) [default: relays among the connected peers].
    #[arg(
        long = "relay-servers",
        visible_alias = "relay-server-addr",
        env = "PEERIX_RELAY_SERVERS",
        value_delimiter = ',',
        value_name = "MULTIADDR"
    )]
    pub relay_servers: Vec<Multiaddr>,

    /// Relay connections for peers that cannot reach each other directly (on or off; a public
    /// node is a good relay). Relays carry handshakes, within the limits below.
    #[arg(
        long = "relay-server",
        env = "PEERIX_RELAY_SERVER",
        num_args = 0..=1,
        default_missing_value = "on",
        default_value = "off",
        value_parser = BoolishValueParser::new(),
        value_name = "on|off"
    )]
    pub relay_server: bool,

    /// Circuits this relay carries at once.
    #[arg(
        long,
        env = "PEERIX_RELAY_MAX_CIRCUITS",
        default_value_t = 16,
        value_name = "N"
    )]
    pub relay_max_circuits: usize,

    /// Bytes one relayed circuit may carry, both directions together (suffixes k, M, KiB, MiB...).
    #[arg(
        long,
        env = "PEERIX_RELAY_MAX_CIRCUIT_BYTES",
        default_value = "128KiB",
        value_parser = parse_amount,
        value_name = "BYTES"
    )]
    pub relay_max_circuit_bytes: u64,

    /// How long one relayed circuit may last (e.g. 90s, 2m, 1h).
    #[arg(
        long,
        env = "PEERIX_RELAY_MAX_CIRCUIT_DURATION",
        default_value = "2m",
        value_parser = parse_duration,
        value_name = "DURATION"
    )]
    pub relay_max_circuit_duration: Duration,

    /// Let NARs and blocks travel over relayed connections when no direct one can be made.
    /// Off by default: a relay's bandwidth is someone else's, and relays cut long transfers.
    #[arg(long, env = "PEERIX_ALLOW_RELAYED_TRANSFERS", value_parser = BoolishValueParser::new())]
    pub allow_relayed_transfers: bool,

    /// An address peers can reach this node at that it cannot discover itself (a port forward,
    /// a VPN): a multiaddr, or an IP address or host name, which stands for TCP and QUIC on the
    /// node's listen port (repeatable).
    #[arg(
        long = "announce-addr",
        visible_alias = "announce-addrs",
        env = "PEERIX_ANNOUNCE_ADDR",
        value_delimiter = ',',
        value_name = "ADDR"
    )]
    pub announce_addrs: Vec<String>,
}

impl ReachabilityArgs {
    /// Sets the reachability part of `config`, whose listen addresses give the port that a bare
    /// `--announce-addr` host stands for.
    pub fn apply(&self, config: &mut NodeConfig) -> Result<(), ConfigError> {
        let ports = listen_ports(&config.listen_addrs);
        config.announce_addrs = self
            .announce_addrs
            .iter()
            .map(|addr| announce_addrs(addr, ports))
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .flatten()
            .collect();
        config.relay_servers = self.relay_servers.clone();
        config.relay_server = self.relay_server;
        config.relay_limits = RelayLimits {
            max_circuits: self.relay_max_circuits,
            max_circuit_bytes: self.relay_max_circuit_bytes,
            max_circuit_duration: self.relay_max_circuit_duration,
            ..RelayLimits::default()
        };
        config.allow_relayed_transfers = self.allow_relayed_transfers;
        Ok(())
    }
}

/// The first fixed TCP port and the first fixed QUIC (UDP) port among the listen addresses.
fn listen_ports(listen: &[Multiaddr]) -> (Option<u16>, Option<u16>) {
    use peerix_node::Protocol;
    let tcp = listen.iter().find_map(|addr| {
        addr.iter().find_map(|part| match part {
            Protocol::Tcp(port) if port != 0 => Some(port),
            _ => None,
        })
    });
    let quic = listen.iter().find_map(|addr| {
        let parts: Vec<Protocol> = addr.iter().collect();
        parts.windows(2).find_map(|pair| match pair {
            [Protocol::Udp(port), Protocol::QuicV1] if *port != 0 => Some(*port),
            _ => None,
        })
    });
    (tcp, quic)
}

/// `text` as multiaddrs: itself if it is one, else that host at the TCP and QUIC listen ports.
fn announce_addrs(
    text: &str,
    (tcp, quic): (Option<u16>, Option<u16>),
) -> Result<Vec<Multiaddr>, ConfigError> {
    let parse = |addr: &str| {
        addr.parse()
            .map_err(|source| ConfigError::AnnounceMultiaddr {
                text: text.to_owned(),
                source,
            })
    };
    if text.starts_with('/') {
        return Ok(vec![parse(text)?]);
    }
    if tcp.is_none() && quic.is_none() {
        return Err(ConfigError::AnnounceWithoutPort(text.to_owned()));
    }
    let host = match text
        .trim_matches(|c| c == '[' || c == ']')
        .parse::<IpAddr>()
    {
        Ok(IpAddr::V4(ip)) => format!("/ip4/{ip}"),
        Ok(IpAddr::V6(ip)) => format!("/ip6/{ip}"),
        Err(_) if is_host_name(text) => format!("/dns/{text}"),
        Err(_) => return Err(ConfigError::AnnounceNotAnAddress(text.to_owned())),
    };
    let tcp = tcp.map(|port| format!("{host}/tcp/{port}"));
    let quic = quic.map(|port| format!("{host}/udp/{port}/quic-v1"));
    tcp.iter().chain(quic.iter()).map(|a| parse(a)).collect()
}

fn is_host_name(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 253
        && text.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

/// `90`, `90s`, `2m`, `1h`: a duration of at least a second.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let scale = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        _ => return Err(format!("{text:?}: use seconds, or a suffix s, m or h")),
    };
    let value: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 90s or 2m"))?;
    match value.checked_mul(scale) {
        Some(0) => Err("a duration of 0 would allow nothing".to_owned()),
        Some(seconds) => Ok(Duration::from_secs(seconds)),
        None => Err(format!("{text:?} is too long")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_seconds_minutes_and_hours() {
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        for bad in ["", "0", "m", "5d", "-1", "99999999999999999999h"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn announce_addrs_take_multiaddrs_ips_and_host_names() {
        let one = |text, ports| {
            announce_addrs(text, ports)
                .map(|v| v.iter().map(ToString::to_string).collect::<Vec<_>>())
        };
        let both = (Some(4001), Some(4001));
        assert_eq!(
            one("/ip4/1.2.3.4/tcp/9", (None, None)).unwrap(),
            ["/ip4/1.2.3.4/tcp/9"]
        );
        assert_eq!(
            one("203.0.113.7", both).unwrap(),
            [
                "/ip4/203.0.113.7/tcp/4001",
                "/ip4/203.0.113.7/udp/4001/quic-v1"
            ]
        );
        assert_eq!(
            one("[2001:db8::1]", (Some(7), Some(5))).unwrap(),
            ["/ip6/2001:db8::1/tcp/7", "/ip6/2001:db8::1/udp/5/quic-v1"]
        );
        assert_eq!(
            one("home.example.org", (Some(13304), None)).unwrap(),
            ["/dns/home.example.org/tcp/13304"]
        );
        assert!(one("203.0.113.7", (None, None)).is_err());
        assert!(one("not a host!", both).is_err());
        assert!(one("/ip4/nonsense", (None, None)).is_err());
    }

    #[test]
    fn the_listen_ports_are_the_first_fixed_tcp_and_quic_ones() {
        let addrs =
            |list: &[&str]| -> Vec<Multiaddr> { list.iter().map(|a| a.parse().unwrap()).collect() };
        assert_eq!(
            listen_ports(&addrs(&[
                "/ip4/0.0.0.0/udp/5/quic-v1",
                "/ip4/0.0.0.0/tcp/7"
            ])),
            (Some(7), Some(5))
        );
        assert_eq!(listen_ports(&addrs(&["/ip4/0.0.0.0/tcp/0"])), (None, None));
    }
}
