//! A local network for LAN tests, built from network namespaces: hosts on one Ethernet bridge
//! (one broadcast domain), and optionally a far host on another subnet behind a router, which
//! unicast reaches and broadcast does not.
//!
//! ```text
//!  host 0  10.88.S.1   ─┐
//!  host 1  10.88.S.2   ─┤ br0 (switch)
//!  ...                 ─┤
//!  router  10.88.S.254 ─┘ router 10.89.S.1 ── 10.89.S.2  far host
//! ```
//!
//! `S` differs between the labs of one test binary; labs of different binaries may share it,
//! which is harmless since every lab has network stacks of its own. Namespace names carry the
//! process id and a counter, so labs never collide; a lab made by [`LanLab::named`] has fixed
//! names under a prefix of its caller's instead, so that a run killed before its cleanup leaves
//! namespaces the next run can find and remove. Every link is a veth pair created directly
//! inside the lab's namespaces, so no packet and no interface ever touches the host's own
//! network. The namespaces and their `/etc/netns` directories are removed on drop; the lab
//! kills no process (whoever starts one stops it). Needs root.

// Each test binary uses the part of the lab it needs; the rest would be flagged as unused.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::common::netns::{add_namespace, must, remove_namespace};
use crate::common::running_as_root;

pub mod old_peer;
pub mod peerix;

/// A machine of the lab: one on the bridge (by index), or the far host behind the router.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Host {
    Lan(usize),
    Far,
}

impl From<usize> for Host {
    fn from(index: usize) -> Host {
        Host::Lan(index)
    }
}

/// The router's address on the bridge.
const ROUTER_LAN_HOST: u8 = 254;

/// The lab; every namespace it created is deleted on drop, also after a failed construction.
pub struct LanLab {
    /// What every namespace name of the lab starts with.
    prefix: String,
    subnet: u8,
    hosts: usize,
    routed: bool,
    namespaces: Vec<String>,
}

impl LanLab {
    /// `hosts` machines on one bridge, or `None` (after saying so) when not running as root.
    pub fn new(hosts: usize) -> Option<LanLab> {
        LanLab::build(None, hosts, false)
    }

    /// [`LanLab::new`] plus the far host on another subnet, behind a router on the bridge.
    pub fn with_routed_host(hosts: usize) -> Option<LanLab> {
        LanLab::build(None, hosts, true)
    }

    /// [`LanLab::new`] with namespaces named `<prefix><role>` (`<prefix>switch`, `<prefix>h0`,
    /// ...), after removing those a killed run left under `prefix`: one such lab per prefix at a
    /// time.
    pub fn named(prefix: &str, hosts: usize) -> Option<LanLab> {
        LanLab::build(Some(prefix), hosts, false)
    }

    fn build(prefix: Option<&str>, hosts: usize, routed: bool) -> Option<LanLab> {
        assert!(
            (1..usize::from(ROUTER_LAN_HOST)).contains(&hosts),
            "a /24 with the router at .{ROUTER_LAN_HOST} holds 1 to 253 hosts"
        );
        if !running_as_root() {
            eprintln!("skipped: the LAN lab needs root for network namespaces");
            return None;
        }
        // Tests in one binary run in parallel, each with its own lab.
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let serial = NEXT.fetch_add(1, Ordering::Relaxed);
        let prefix = match prefix {
            Some(prefix) => {
                remove_leftovers(prefix);
                prefix.to_owned()
            }
            None => format!("peerix-lan{}-{serial}-", std::process::id() % 100_000),
        };
        let mut lab = LanLab {
            prefix,
            subnet: (serial % 256) as u8,
            hosts,
            routed,
            namespaces: Vec::new(),
        };
        let switch = lab.add_namespace("switch");
        lab.ip(&switch, &["link", "add", "name", "br0", "type", "bridge"]);
        lab.ip(&switch, &["link", "set", "br0", "up"]);

        for i in 0..hosts {
            let ns = lab.add_namespace(&format!("h{i}"));
            let port = format!("h{i}");
            lab.bridge_port(&switch, &port, &ns, "eth0");
            let addr = lab.cidr(lab.host_addr(i));
            lab.ip(&ns, &["addr", "add", &addr, "brd", "+", "dev", "eth0"]);
            lab.ip(&ns, &["link", "set", "eth0", "up"]);
        }

        if routed {
            let router = lab.add_namespace("router");
            let far = lab.add_namespace("far");
            lab.bridge_port(&switch, "router", &router, "lan");
            lab.veth(&router, "far", &far, "eth0");
            for (ns, dev, addr) in [
                (&router, "lan", lab.lan_addr(ROUTER_LAN_HOST)),
                (&router, "far", lab.far_subnet_addr(1)),
                (&far, "eth0", lab.far_addr()),
            ] {
                lab.ip(
                    ns,
                    &["addr", "add", &lab.cidr(addr), "brd", "+", "dev", dev],
                );
                lab.ip(ns, &["link", "set", dev, "up"]);
            }
            must(
                Command::new("ip")
                    .args(["netns", "exec", &router, "sysctl", "-qw"])
                    .arg("net.ipv4.ip_forward=1"),
            );
            // Routes to the other subnet only: nothing in the lab has anywhere else to go.
            let far_net = format!("{}/24", lab.far_subnet_addr(0));
            let via_router = lab.lan_addr(ROUTER_LAN_HOST).to_string();
            for i in 0..hosts {
                let ns = lab.ns(Host::Lan(i));
                lab.ip(&ns, &["route", "add", &far_net, "via", &via_router]);
            }
            let lan_net = format!("{}/24", lab.lan_addr(0));
            let via_far_leg = lab.far_subnet_addr(1).to_string();
            lab.ip(&far, &["route", "add", &lan_net, "via", &via_far_leg]);
        }
        Some(lab)
    }

    /// `program` run inside `host`'s namespace; call it as often as needed.
    pub fn command(&self, host: impl Into<Host>, program: impl AsRef<OsStr>) -> Command {
        let ns = self.ns(self.checked(host.into()));
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &ns]).arg(program);
        cmd
    }

    /// The address of bridge host `i`: 10.88.S.(i+1).
    pub fn host_addr(&self, i: usize) -> Ipv4Addr {
        assert!(
            i < self.hosts,
            "the lab has {} hosts, not {}",
            self.hosts,
            i + 1
        );
        self.lan_addr((i + 1) as u8)
    }

    /// The far host's address (10.89.S.2); the lab must have been made with a routed host.
    pub fn far_addr(&self) -> Ipv4Addr {
        assert!(self.routed, "this lab has no far host");
        self.far_subnet_addr(2)
    }

    /// The address of any host of the lab.
    pub fn addr(&self, host: impl Into<Host>) -> Ipv4Addr {
        match host.into() {
            Host::Lan(i) => self.host_addr(i),
            Host::Far => self.far_addr(),
        }
    }

    /// The bridge's broadcast address, 10.88.S.255.
    pub fn broadcast_addr(&self) -> Ipv4Addr {
        self.lan_addr(255)
    }

    /// The names of the lab's namespaces, all deleted on drop.
    pub fn namespaces(&self) -> &[String] {
        &self.namespaces
    }

    fn checked(&self, host: Host) -> Host {
        // The address accessors know which hosts exist.
        self.addr(host);
        host
    }

    fn lan_addr(&self, host: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 88, self.subnet, host)
    }

    fn far_subnet_addr(&self, host: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 89, self.subnet, host)
    }

    fn cidr(&self, addr: Ipv4Addr) -> String {
        format!("{addr}/24")
    }

    fn ns(&self, host: Host) -> String {
        match host {
            Host::Lan(i) => self.ns_named(&format!("h{i}")),
            Host::Far => self.ns_named("far"),
        }
    }

    fn ns_named(&self, role: &str) -> String {
        format!("{}{role}", self.prefix)
    }

    /// Creates the namespace `role` (see [`add_namespace`]).
    fn add_namespace(&mut self, role: &str) -> String {
        let ns = self.ns_named(role);
        add_namespace(&ns);
        self.namespaces.push(ns.clone());
        ns
    }

    /// A veth from the switch's bridge port `port` to `dev` in `ns`.
    fn bridge_port(&self, switch: &str, port: &str, ns: &str, dev: &str) {
        self.veth(switch, port, ns, dev);
        self.ip(switch, &["link", "set", port, "master", "br0"]);
        self.ip(switch, &["link", "set", port, "up"]);
    }

    /// A veth pair created in place, so it never appears among the host's interfaces.
    fn veth(&self, ns: &str, name: &str, peer_ns: &str, peer_name: &str) {
        let args = [
            "link", "add", "name", name, "type", "veth", "peer", "name", peer_name, "netns",
            peer_ns,
        ];
        self.ip(ns, &args);
    }

    fn ip(&self, ns: &str, args: &[&str]) {
        must(Command::new("ip").args(["-n", ns]).args(args));
    }
}

/// Removes the namespaces named `prefix...` and ends the processes still in them: what a run
/// killed before its cleanup left.
fn remove_leftovers(prefix: &str) {
    let Ok(list) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    let text = String::from_utf8_lossy(&list.stdout);
    // Lines are `NAME` or `NAME (id: N)`.
    let leftovers = text
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| name.starts_with(prefix));
    for ns in leftovers {
        if let Ok(pids) = Command::new("ip").args(["netns", "pids", ns]).output() {
            let pids = String::from_utf8_lossy(&pids.stdout);
            for pid in pids.split_whitespace() {
                let _ = Command::new("kill").arg(pid).status();
            }
        }
        remove_namespace(ns);
    }
}

impl Drop for LanLab {
    fn drop(&mut self) {
        for ns in &self.namespaces {
            remove_namespace(ns);
        }
    }
}
