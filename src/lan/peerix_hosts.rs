//! Which hosts on the LAN are Peerix nodes, by the node's connections: their requests do not
//! make them old peers, and as extra hosts they are dialled over libp2p rather than asked by
//! UDP. Kept up by one task, which also resolves the extra hosts: at once, off the start-up
//! path (a dead resolver must not hold up the daemon), and again now and then.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use peerix_node::{Multiaddr, NodeHandle, Protocol};

use super::Lan;

/// How often the node's connections are read.
const REFRESH: Duration = Duration::from_secs(5);
/// How often extra hosts that are not connected are dialled, and names resolved again.
const REDIAL: Duration = Duration::from_secs(30);
/// Peerix's libp2p port is its HTTP port plus this, unless told otherwise.
const LIBP2P_PORT_OFFSET: u16 = 1000;

#[derive(Default)]
pub struct PeerixHosts {
    ips: RwLock<HashSet<IpAddr>>,
}

impl PeerixHosts {
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.ips.read().is_ok_and(|ips| ips.contains(&ip))
    }

    fn replace(&self, ips: HashSet<IpAddr>) {
        if let Ok(mut known) = self.ips.write() {
            *known = ips;
        }
    }
}

pub async fn keep_up(lan: Arc<Lan>, node: Option<NodeHandle>) {
    let mut since_redial = REDIAL;
    loop {
        if let Some(node) = &node {
            if let Ok(status) = node.status().await {
                let ips = status
                    .peers
                    .iter()
                    .filter_map(|p| p.addr.as_ref().and_then(ip_of))
                    .collect();
                lan.peerix_hosts.replace(ips);
            }
        }
        if since_redial >= REDIAL {
            since_redial = Duration::ZERO;
            lan.extra_hosts.resolve().await;
            if let Some(node) = &node {
                dial_extra_hosts(&lan, node).await;
            }
        }
        tokio::time::sleep(REFRESH).await;
        since_redial += REFRESH;
    }
}

/// Dials each extra host not yet connected at its libp2p port; an old peer there just refuses.
async fn dial_extra_hosts(lan: &Lan, node: &NodeHandle) {
    for addr in lan.extra_hosts.addrs() {
        if lan.peerix_hosts.contains(addr.ip()) {
            continue;
        }
        let Some(port) = addr.port().checked_add(LIBP2P_PORT_OFFSET) else {
            continue;
        };
        let multiaddr = Multiaddr::empty()
            .with(match addr.ip() {
                IpAddr::V4(ip) => Protocol::Ip4(ip),
                IpAddr::V6(ip) => Protocol::Ip6(ip),
            })
            .with(Protocol::Tcp(port));
        let node = node.clone();
        // Not awaited in turn: a silent host must not hold up the others.
        tokio::spawn(async move {
            match node.dial(multiaddr.clone()).await {
                Ok(peer) => tracing::info!(%peer, %multiaddr, "extra host is a Peerix node"),
                Err(e) => tracing::debug!(%multiaddr, error = %e, "extra host not dialled"),
            }
        });
    }
}

fn ip_of(addr: &Multiaddr) -> Option<IpAddr> {
    addr.iter().find_map(|part| match part {
        Protocol::Ip4(ip) => Some(IpAddr::V4(ip)),
        Protocol::Ip6(ip) => Some(IpAddr::V6(ip)),
        _ => None,
    })
}
