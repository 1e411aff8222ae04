//! The networks this machine is on, read from its interfaces: which addresses are its own, which
//! hosts share a subnet with it (the only ones the `/local/` routes and broadcast answers are
//! for), and where a broadcast goes. Only a subnet that can be a LAN counts ([`is_lan_subnet`]):
//! a cloud server's public /26 holds other customers, and a tunnel's /0 the whole internet. Read again every few seconds, so a new DHCP lease or a VPN
//! coming up is noticed without a restart.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::cidr::{unmapped, Cidr};

/// How long a reading of the interfaces is used.
const FRESH_FOR: Duration = Duration::from_secs(5);

/// A reading of the interfaces.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Networks {
    /// Each address of this machine, with its subnet if that is a LAN's.
    subnets: Vec<(IpAddr, Option<Cidr>)>,
    /// The broadcast address of each private IPv4 subnet (as the old program sends to).
    broadcasts: Vec<Ipv4Addr>,
}

impl Networks {
    pub fn read() -> Self {
        let interfaces = match if_addrs::get_if_addrs() {
            Ok(interfaces) => interfaces,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the network interfaces");
                return Self::default();
            }
        };
        let mut networks = Self::default();
        for interface in interfaces {
            let (addr, prefix, broadcast) = match &interface.addr {
                if_addrs::IfAddr::V4(v4) => (IpAddr::V4(v4.ip), v4.prefixlen, v4.broadcast),
                if_addrs::IfAddr::V6(v6) => (IpAddr::V6(v6.ip), v6.prefixlen, None),
            };
            let lan = is_lan_subnet(addr, prefix).then(|| Cidr::new(addr, prefix));
            networks.subnets.push((addr, lan));
            let private = matches!(addr, IpAddr::V4(ip) if ip.is_private());
            if let Some(broadcast) = broadcast.filter(|_| private) {
                if !networks.broadcasts.contains(&broadcast) {
                    networks.broadcasts.push(broadcast);
                }
            }
        }
        networks
    }

    /// Whether `ip` is one of this machine's addresses.
    pub fn is_own(&self, ip: IpAddr) -> bool {
        let ip = unmapped(ip);
        ip.is_loopback() || self.subnets.iter().any(|(addr, _)| *addr == ip)
    }

    /// Whether `ip` is this machine or on one of its subnets.
    pub fn is_local(&self, ip: IpAddr) -> bool {
        self.is_own(ip)
            || self
                .subnets
                .iter()
                .any(|(_, subnet)| subnet.is_some_and(|s| s.contains(ip)))
    }

    pub fn broadcasts(&self) -> &[Ipv4Addr] {
        &self.broadcasts
    }
}

/// Whether the subnet of `addr`/`prefix` can be a LAN, its hosts neighbours: IPv4 private,
/// shared (CGNAT, as Tailscale's) and link-local ranges, no wider than the range; IPv6 unique-local and
/// link-local ones from /48 on, and global ones of a link's size, /64 or longer (home LANs on
/// IPv6 are the ISP's /64). A public IPv4 subnet is a data centre's, shared with strangers;
/// hosts there are named with `--extra-hosts`.
fn is_lan_subnet(addr: IpAddr, prefix: u8) -> bool {
    match unmapped(addr) {
        IpAddr::V4(ip) => {
            // A subnet wider than its range would reach past it into public addresses.
            let ranges = [
                ([10, 0, 0, 0], 8),
                ([172, 16, 0, 0], 12),
                ([192, 168, 0, 0], 16),
                ([169, 254, 0, 0], 16),
                ([100, 64, 0, 0], 10),
            ];
            ranges.iter().any(|(net, len)| {
                prefix >= *len
                    && Cidr::new(IpAddr::V4(Ipv4Addr::from(*net)), *len).contains(ip.into())
            })
        }
        IpAddr::V6(ip) => {
            let unique_local = (ip.segments()[0] & 0xfe00) == 0xfc00;
            let link_local = (ip.segments()[0] & 0xffc0) == 0xfe80;
            if unique_local || link_local {
                prefix >= 48
            } else {
                prefix >= 64 && !ip.is_loopback() && !ip.is_unspecified()
            }
        }
    }
}

/// The latest reading, taken again once it is [`FRESH_FOR`] old.
#[derive(Default)]
pub struct LocalNetworks {
    reading: RwLock<Option<(Instant, Arc<Networks>)>>,
}

impl LocalNetworks {
    pub fn now(&self) -> Arc<Networks> {
        if let Ok(reading) = self.reading.read() {
            if let Some((at, networks)) = reading.as_ref() {
                if at.elapsed() < FRESH_FOR {
                    return networks.clone();
                }
            }
        }
        let networks = Arc::new(Networks::read());
        if let Ok(mut reading) = self.reading.write() {
            *reading = Some((Instant::now(), networks.clone()));
        }
        networks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subnet(addr: &str, prefix: u8) -> (IpAddr, Option<Cidr>) {
        let addr = addr.parse().unwrap();
        (
            addr,
            is_lan_subnet(addr, prefix).then(|| Cidr::new(addr, prefix)),
        )
    }

    fn networks() -> Networks {
        Networks {
            subnets: vec![subnet("10.88.1.2", 24), subnet("fd00:1::2", 64)],
            broadcasts: vec!["10.88.1.255".parse().unwrap()],
        }
    }

    #[test]
    fn subnets_decide_who_is_local() {
        let n = networks();
        for local in [
            "10.88.1.2",
            "10.88.1.77",
            "::ffff:10.88.1.9",
            "fd00:1::99",
            "127.0.0.1",
            "::1",
        ] {
            assert!(n.is_local(local.parse().unwrap()), "{local}");
        }
        for far in [
            "10.88.2.1",
            "10.89.1.2",
            "192.168.1.1",
            "fd00:2::1",
            "8.8.8.8",
        ] {
            assert!(!n.is_local(far.parse().unwrap()), "{far}");
        }
        assert!(n.is_own("10.88.1.2".parse().unwrap()));
        assert!(!n.is_own("10.88.1.3".parse().unwrap()));
    }

    #[test]
    fn public_and_huge_subnets_hold_no_neighbours() {
        let n = Networks {
            subnets: vec![
                subnet("203.0.113.10", 26),
                subnet("10.9.0.2", 0),
                subnet("172.16.5.5", 4),
                subnet("2001:db8:1:2::5", 48),
                subnet("fd00:7::1", 0),
                subnet("100.100.1.1", 10),
                subnet("192.168.1.5", 8),
                subnet("172.20.0.1", 8),
                subnet("2001:db8:9:9::5", 64),
            ],
            broadcasts: Vec::new(),
        };
        for far in [
            "203.0.113.11",
            "8.8.8.8",
            "10.200.0.1",
            "2001:db8:1:3::1",
            "fd00:8::1",
            "192.30.255.112",
            "172.217.1.1",
        ] {
            assert!(!n.is_local(far.parse().unwrap()), "{far}");
        }
        for near in ["203.0.113.10", "100.100.7.7", "2001:db8:9:9::77"] {
            assert!(n.is_local(near.parse().unwrap()), "{near}");
        }
    }

    #[test]
    fn this_machine_has_a_loopback_reading() {
        let n = Networks::read();
        assert!(n.is_local("127.0.0.1".parse().unwrap()));
    }
}
