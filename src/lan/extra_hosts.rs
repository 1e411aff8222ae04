//! `--extra-hosts HOST[:PORT]`: machines asked by unicast, for networks without broadcast
//! (Tailscale, WireGuard, other VPNs). Names are resolved again now and then, since VPN names
//! and DHCP addresses change. The protocol is IPv4's: a name's IPv6 addresses are left out.

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::RwLock;

use thiserror::Error;

/// One `--extra-hosts` value: a name or address, and the UDP port if given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtraHost {
    pub host: String,
    pub port: Option<u16>,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ExtraHostError {
    #[error("{0:?} names no host: use HOST, HOST:PORT, an IP address or [IPv6]:PORT")]
    NoHost(String),
    #[error("{0:?} has no valid port after the host")]
    BadPort(String),
}

impl FromStr for ExtraHost {
    type Err = ExtraHostError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let bad_port = || ExtraHostError::BadPort(text.to_owned());
        let port = |p: &str| {
            p.parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(bad_port)
        };
        let (host, port) = if let Some(rest) = text.strip_prefix('[') {
            let (host, after) = rest
                .split_once(']')
                .ok_or_else(|| ExtraHostError::NoHost(text.to_owned()))?;
            match after {
                "" => (host, None),
                _ => (
                    host,
                    Some(port(after.strip_prefix(':').ok_or_else(bad_port)?)?),
                ),
            }
        } else if text.parse::<std::net::Ipv6Addr>().is_ok() {
            (text, None)
        } else {
            match text.rsplit_once(':') {
                Some((host, p)) => (host, Some(port(p)?)),
                None => (text, None),
            }
        };
        let valid = !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'));
        if !valid {
            return Err(ExtraHostError::NoHost(text.to_owned()));
        }
        Ok(Self {
            host: host.to_owned(),
            port,
        })
    }
}

/// The extra hosts and the addresses they last resolved to.
pub struct ExtraHosts {
    given: Vec<ExtraHost>,
    default_port: u16,
    resolved: RwLock<Vec<SocketAddr>>,
}

impl ExtraHosts {
    pub fn new(given: Vec<ExtraHost>, default_port: u16) -> Self {
        Self {
            given,
            default_port,
            resolved: RwLock::new(Vec::new()),
        }
    }

    /// Resolves every host again; a host that does not resolve now keeps no address.
    pub async fn resolve(&self) {
        let mut addrs = Vec::new();
        for host in &self.given {
            let port = host.port.unwrap_or(self.default_port);
            match tokio::net::lookup_host((host.host.as_str(), port)).await {
                Ok(found) => {
                    let before = addrs.len();
                    // The protocol is IPv4's, as the old program's socket is.
                    for addr in found.filter(SocketAddr::is_ipv4) {
                        if !addrs.contains(&addr) {
                            addrs.push(addr);
                        }
                    }
                    if addrs.len() == before {
                        tracing::warn!(host = %host.host, "extra host has no IPv4 address");
                    }
                }
                Err(e) => {
                    tracing::warn!(host = %host.host, error = %e, "extra host does not resolve")
                }
            }
        }
        if let Ok(mut resolved) = self.resolved.write() {
            *resolved = addrs;
        }
    }

    /// Whether `ip` is one of the extra hosts' addresses (without copying them: it is asked
    /// for every datagram).
    pub fn contains_ip(&self, ip: std::net::IpAddr) -> bool {
        self.resolved
            .read()
            .is_ok_and(|addrs| addrs.iter().any(|a| a.ip() == ip))
    }

    pub fn addrs(&self) -> Vec<SocketAddr> {
        self.resolved.read().map(|r| r.clone()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_and_port_forms_parse() {
        let parse = |t: &str| t.parse::<ExtraHost>();
        let host = |h: &str, p: Option<u16>| ExtraHost {
            host: h.to_owned(),
            port: p,
        };
        assert_eq!(
            parse("nas.tail1234.ts.net"),
            Ok(host("nas.tail1234.ts.net", None))
        );
        assert_eq!(parse("10.1.2.3:12304"), Ok(host("10.1.2.3", Some(12304))));
        assert_eq!(parse("[fd7a::1]:9000"), Ok(host("fd7a::1", Some(9000))));
        assert_eq!(parse("[fd7a::1]"), Ok(host("fd7a::1", None)));
        assert_eq!(parse("fd7a::1"), Ok(host("fd7a::1", None)));
        for bad in [
            "",
            ":80",
            "host:",
            "host:0",
            "host:70000",
            "[::1",
            "[::1]x",
            "a b",
            "h/x",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn addresses_resolve_with_the_default_port() {
        let hosts = ExtraHosts::new(
            vec![
                "127.0.0.1".parse().unwrap(),
                "127.0.0.2:7".parse().unwrap(),
                "[::1]:7".parse().unwrap(),
            ],
            12304,
        );
        hosts.resolve().await;
        // IPv6 addresses are left out: the protocol is IPv4's.
        assert_eq!(
            hosts.addrs(),
            vec![
                "127.0.0.1:12304".parse().unwrap(),
                "127.0.0.2:7".parse().unwrap()
            ]
        );
    }
}
