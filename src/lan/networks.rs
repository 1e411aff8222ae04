//! The networks this machine is on, read from its interfaces: which addresses are its own, which
//! hosts share a subnet with it (the only ones the `/local/` routes and broadcast answers are
//! for), and where a broadcast goes. Read again every few seconds, so a new DHCP lease or a VPN
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
    /// Each address of this machine, with its prefix length.
    subnets: Vec<(IpAddr, Cidr)>,
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
            networks.subnets.push((addr, Cidr::new(addr, prefix)));
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
        self.is_own(ip) || self.subnets.iter().any(|(_, subnet)| subnet.contains(ip))
    }

    pub fn broadcasts(&self) -> &[Ipv4Addr] {
        &self.broadcasts
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

    fn subnet(addr: &str, prefix: u8) -> (IpAddr, Cidr) {
        let addr = addr.parse().unwrap();
        (addr, Cidr::new(addr, prefix))
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
    fn this_machine_has_a_loopback_reading() {
        let n = Networks::read();
        assert!(n.is_local("127.0.0.1".parse().unwrap()));
    }
}
