//! Address blocks (`10.0.0.0/8`, `fd00::/64`): which addresses a trusted proxy may have, which
//! hosts share a subnet with this machine.

use std::net::IpAddr;
use std::str::FromStr;

use peerix_node::{Multiaddr, Protocol};

use thiserror::Error;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

#[derive(Debug, Error, PartialEq, Eq)]
#[error("{0:?} is not an address block like 10.0.0.0/8, ::1/128 or 127.0.0.1")]
pub struct CidrError(String);

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(text: &str) -> Result<Self, CidrError> {
        let bad = || CidrError(text.chars().take(64).collect());
        let (ip, prefix) = match text.split_once('/') {
            Some((ip, prefix)) => (ip, Some(prefix)),
            None => (text, None),
        };
        let network: IpAddr = ip.trim().parse().map_err(|_| bad())?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.trim().parse::<u8>().map_err(|_| bad())?,
            None => max,
        };
        if prefix > max {
            return Err(bad());
        }
        Ok(Self { network, prefix })
    }
}

impl Cidr {
    /// The block of `prefix` bits around `addr` (an interface's address and its prefix length).
    pub fn new(addr: IpAddr, prefix: u8) -> Self {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        Self {
            network: unmapped(addr),
            prefix: prefix.min(max),
        }
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, unmapped(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                prefix_eq(u32::from(net).into(), u32::from(ip).into(), self.prefix, 32)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_eq(u128::from(net), u128::from(ip), self.prefix, 128)
            }
            _ => false,
        }
    }
}

fn prefix_eq(a: u128, b: u128, prefix: u8, width: u32) -> bool {
    let shift = width - u32::from(prefix);
    shift >= width || (a >> shift) == (b >> shift)
}

/// An IPv4 client on a dual-stack socket shows as `::ffff:a.b.c.d`: the IPv4 address it is.
pub fn unmapped(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Whether a peer's address is on a private network (a LAN, a VPN, this machine): a peer found
/// nearby rather than across the internet.
pub fn on_local_network(addr: &Multiaddr) -> bool {
    match addr.iter().next() {
        Some(Protocol::Ip4(ip)) => local_ipv4(ip),
        Some(Protocol::Ip6(ip)) => {
            let ip = unmapped(ip.into());
            match ip {
                IpAddr::V4(v4) => local_ipv4(v4),
                IpAddr::V6(v6) => {
                    // Unique local (fc00::/7) and link-local (fe80::/10) addresses.
                    v6.is_loopback()
                        || (v6.segments()[0] & 0xfe00) == 0xfc00
                        || (v6.segments()[0] & 0xffc0) == 0xfe80
                }
            }
        }
        _ => false,
    }
}

/// Private, loopback, link-local, and the shared range VPNs such as Tailscale use (100.64/10).
fn local_ipv4(ip: std::net::Ipv4Addr) -> bool {
    let shared = ip.octets()[0] == 100 && (ip.octets()[1] & 0xc0) == 64;
    ip.is_private() || ip.is_loopback() || ip.is_link_local() || shared
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_loopback_and_link_local_addresses_are_the_local_network() {
        for (addr, local) in [
            ("/ip4/192.168.1.7/tcp/13304", true),
            ("/ip4/10.2.0.1/udp/13304/quic-v1", true),
            ("/ip4/127.0.0.1/tcp/1", true),
            ("/ip4/203.0.113.9/tcp/13304", false),
            ("/ip4/100.101.7.3/tcp/13304", true),
            ("/ip4/100.128.0.1/tcp/13304", false),
            ("/ip6/fd12:3456::1/tcp/13304", true),
            ("/ip6/fe80::1/tcp/13304", true),
            ("/ip6/::ffff:192.168.0.2/tcp/1", true),
            ("/ip6/2001:db8::1/tcp/13304", false),
            ("/dns4/example.org/tcp/13304", false),
        ] {
            let addr: Multiaddr = addr.parse().unwrap();
            assert_eq!(on_local_network(&addr), local, "{addr}");
        }
    }

    #[test]
    fn blocks_contain_their_addresses_only() {
        let block: Cidr = "10.1.0.0/16".parse().unwrap();
        assert!(block.contains("10.1.200.3".parse().unwrap()));
        assert!(block.contains("::ffff:10.1.0.1".parse().unwrap()));
        assert!(!block.contains("10.2.0.1".parse().unwrap()));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("192.0.2.1".parse().unwrap()));
        let one: Cidr = "::1".parse().unwrap();
        assert!(one.contains("::1".parse().unwrap()));
        assert!(!one.contains("::2".parse().unwrap()));
        for bad in ["10.0.0.0/33", "nonsense", "::/129", "10.0.0.0/x"] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn an_interface_address_stands_for_its_subnet() {
        let subnet = Cidr::new("10.88.1.2".parse().unwrap(), 24);
        assert!(subnet.contains("10.88.1.200".parse().unwrap()));
        assert!(!subnet.contains("10.88.2.2".parse().unwrap()));
        let wide = Cidr::new("fd00::1".parse().unwrap(), 200);
        assert!(wide.contains("fd00::1".parse().unwrap()));
        assert!(!wide.contains("fd00::2".parse().unwrap()));
    }
}
