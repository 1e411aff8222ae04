//! An emulated internet for tests, built from network namespaces: two home hosts, each behind
//! its own NAT router, and a public `internet` namespace between the routers.
//!
//! ```text
//!  home1 10.0.1.2 ── 10.0.1.1 router1 198.51.100.1 ── 198.51.100.254 ┐
//!                                                          internet 203.0.113.1, 203.0.113.2
//!  home2 10.0.2.2 ── 10.0.2.1 router2 192.0.2.1    ── 192.0.2.254    ┘
//! ```
//!
//! Every link is a veth pair created directly inside the lab's namespaces, so no packet and no
//! interface ever touches the host's own network. Everything is removed on drop. Needs root.

// Each test binary uses the part of the lab it needs; the rest would be flagged as unused.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::net::Ipv4Addr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::common::netns::{add_namespace, must, remove_namespace};

pub mod peerix;

/// The public address of `Host::Internet`, where a relay or bootstrap node runs.
pub const RELAY_ADDR: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
/// A second public address in `Host::Internet`, for a second public node.
pub const PUBLIC2_ADDR: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 2);
/// The address of `Host::Server`, a public host of its own: nodes there and on the internet host
/// reach each other over a real link, not a shared loopback (where the kernel picks source
/// addresses that no outside peer would see).
pub const SERVER_ADDR: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 3);

/// How a router translates outgoing traffic. Both kinds only let in replies to traffic the home
/// sent out first, and only from the exact address and port it was sent to (port-restricted).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NatKind {
    /// Keeps a socket's public port for every destination (endpoint-independent mapping), as
    /// Linux `masquerade` does whenever the port is free: hole punching works.
    PortRestrictedCone,
    /// A fresh random public port per destination (endpoint-dependent mapping): the port the
    /// internet host observed is useless to anyone else, so hole punching fails.
    Symmetric,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Host {
    Internet,
    Server,
    Router1,
    Router2,
    Home1,
    Home2,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Router {
    Router1,
    Router2,
}

const HOSTS: [Host; 6] = [
    Host::Internet,
    Host::Server,
    Host::Router1,
    Host::Router2,
    Host::Home1,
    Host::Home2,
];

impl Router {
    fn host(self) -> Host {
        match self {
            Router::Router1 => Host::Router1,
            Router::Router2 => Host::Router2,
        }
    }

    fn home(self) -> Host {
        match self {
            Router::Router1 => Host::Home1,
            Router::Router2 => Host::Home2,
        }
    }

    /// Name of the router's link inside the internet namespace.
    fn uplink(self) -> &'static str {
        match self {
            Router::Router1 => "r1",
            Router::Router2 => "r2",
        }
    }

    /// The /24 between router and internet; the router is .1, the internet side .254.
    fn wan(self, host: u8) -> Ipv4Addr {
        match self {
            Router::Router1 => Ipv4Addr::new(198, 51, 100, host),
            Router::Router2 => Ipv4Addr::new(192, 0, 2, host),
        }
    }

    /// The home /24 behind the router; the router is .1, the home host .2.
    fn lan(self, host: u8) -> Ipv4Addr {
        match self {
            Router::Router1 => Ipv4Addr::new(10, 0, 1, host),
            Router::Router2 => Ipv4Addr::new(10, 0, 2, host),
        }
    }
}

/// The lab; every namespace it created is deleted on drop, also after a failed construction.
pub struct NatLab {
    tag: String,
    namespaces: Vec<String>,
    latency: Duration,
    delayer: Option<Child>,
}

impl NatLab {
    /// Builds the lab, or returns `None` (after saying so) when not running as root.
    pub fn new(kind1: NatKind, kind2: NatKind) -> Option<NatLab> {
        if !running_as_root() {
            eprintln!("skipped: the NAT lab needs root for network namespaces");
            return None;
        }
        // Tests in one binary run in parallel, each with its own lab.
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let tag = format!(
            "{}-{}",
            std::process::id() % 100_000,
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let mut lab = NatLab {
            tag,
            namespaces: Vec::new(),
            latency: Duration::ZERO,
            delayer: None,
        };
        for host in HOSTS {
            let ns = lab.ns(host);
            add_namespace(&ns);
            lab.namespaces.push(ns);
        }

        let inet = Host::Internet;
        lab.sysctl(inet, "net.ipv4.ip_forward=1");
        // On loopback: this kernel has no dummy interfaces, and local delivery is all they need.
        for addr in [RELAY_ADDR, PUBLIC2_ADDR] {
            lab.ip(inet, &["addr", "add", &format!("{addr}/32"), "dev", "lo"]);
        }
        let server = Host::Server;
        lab.veth((inet, "srv"), (server, "eth0"));
        lab.ip(inet, &["link", "set", "srv", "up"]);
        lab.ip(
            server,
            &["addr", "add", &format!("{SERVER_ADDR}/32"), "dev", "eth0"],
        );
        lab.ip(server, &["link", "set", "eth0", "up"]);
        lab.ip(
            server,
            &["route", "add", &format!("{RELAY_ADDR}/32"), "dev", "eth0"],
        );
        lab.ip(
            server,
            &["route", "add", "default", "via", &RELAY_ADDR.to_string()],
        );
        lab.ip(
            inet,
            &["route", "add", &format!("{SERVER_ADDR}/32"), "dev", "srv"],
        );

        for (router, kind) in [(Router::Router1, kind1), (Router::Router2, kind2)] {
            let (r, home) = (router.host(), router.home());
            lab.veth((r, "wan"), (inet, router.uplink()));
            lab.veth((r, "lan"), (home, "eth0"));
            for (host, dev, addr) in [
                (r, "wan", router.wan(1)),
                (inet, router.uplink(), router.wan(254)),
                (r, "lan", router.lan(1)),
                (home, "eth0", router.lan(2)),
            ] {
                lab.ip(host, &["addr", "add", &format!("{addr}/24"), "dev", dev]);
                lab.ip(host, &["link", "set", dev, "up"]);
            }
            lab.ip(
                r,
                &[
                    "route",
                    "add",
                    "default",
                    "via",
                    &router.wan(254).to_string(),
                ],
            );
            lab.ip(
                home,
                &["route", "add", "default", "via", &router.lan(1).to_string()],
            );
            lab.sysctl(r, "net.ipv4.ip_forward=1");
            lab.set_nat(router, kind);
        }
        Some(lab)
    }

    /// `program` run inside `host`'s namespace; call it as often as needed, e.g. to start
    /// several nodes on the internet host.
    pub fn command(&self, host: Host, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns(host)]).arg(program);
        cmd
    }

    /// The host's own address: public for the internet host and the routers (their WAN side),
    /// private for the homes.
    pub fn addr(&self, host: Host) -> Ipv4Addr {
        match host {
            Host::Internet => RELAY_ADDR,
            Host::Server => SERVER_ADDR,
            Host::Router1 => Router::Router1.wan(1),
            Host::Router2 => Router::Router2.wan(1),
            Host::Home1 => Router::Router1.lan(2),
            Host::Home2 => Router::Router2.lan(2),
        }
    }

    /// Replaces the router's ruleset and forgets its connection tracking, so existing
    /// mappings (and the flows using them) do not survive the switch.
    pub fn set_nat(&self, router: Router, kind: NatKind) {
        let random = match kind {
            NatKind::PortRestrictedCone => "",
            NatKind::Symmetric => " fully-random",
        };
        // The input chain drops unsolicited WAN packets so they never leave a conntrack entry
        // behind: one for a peer's early punch packet would clash with the mapping of our own
        // punch packet to that peer and force a different public port.
        let ruleset = format!(
            "flush ruleset
            table ip nat {{
                chain postrouting {{
                    type nat hook postrouting priority srcnat; policy accept;
                    oifname \"wan\" masquerade{random}
                }}
            }}
            table ip filter {{
                chain forward {{
                    type filter hook forward priority filter; policy drop;
                    ct state established,related accept
                    iifname \"lan\" oifname \"wan\" accept
                }}
                chain input {{
                    type filter hook input priority filter; policy drop;
                    ct state established,related accept
                    iifname != \"wan\" accept
                }}
            }}"
        );
        let host = router.host();
        must(
            self.command(host, "nft")
                .args(["-f", "-"])
                .stdin(piped_text(&ruleset)),
        );
        // `conntrack -F` without the conntrack tool: an empty IPCTNL_MSG_CT_DELETE for AF_INET
        // over NETLINK_NETFILTER, acknowledged with error code 0.
        must(self.command(host, "python3").args([
            "-c",
            "import socket,struct\n\
             s=socket.socket(socket.AF_NETLINK,socket.SOCK_RAW,12)\n\
             s.send(struct.pack('=IHHIIBBH',20,0x102,5,1,0,socket.AF_INET,0,0))\n\
             err=struct.unpack_from('=i',s.recv(256),16)[0]\n\
             assert err==0,err",
        ]));
    }

    /// Forwards TCP `port` on the router's WAN address to the same port of its home, as a user
    /// sets up a port forward; it lasts until the next [`NatLab::set_nat`].
    pub fn forward_port(&self, router: Router, port: u16) {
        let home = router.lan(2);
        let rules = format!(
            "table ip nat {{
                chain prerouting {{
                    type nat hook prerouting priority dstnat; policy accept;
                    iifname \"wan\" tcp dport {port} dnat to {home}:{port}
                }}
            }}
            add rule ip filter forward iifname \"wan\" oifname \"lan\" ip daddr {home} tcp dport {port} accept"
        );
        must(
            self.command(router.host(), "nft")
                .args(["-f", "-"])
                .stdin(piped_text(&rules)),
        );
    }

    /// Delays packets by half of `rtt` as they enter the internet from each router, so the
    /// home1-home2 round trip grows by `rtt` and each home-internet round trip by `rtt / 2`.
    /// Adds to earlier calls. The kernel has no netem, so a small NFQUEUE program in the
    /// internet namespace holds each packet back; restarting it drops packets in flight.
    pub fn add_latency(&mut self, rtt: Duration) {
        self.latency += rtt;
        match self.delayer.take() {
            Some(mut old) => {
                let _ = old.kill();
                let _ = old.wait();
            }
            None => {
                for router in [Router::Router1, Router::Router2] {
                    // --queue-bypass: packets pass undelayed while no delayer listens.
                    must(self.command(Host::Internet, "iptables-nft").args([
                        "-t",
                        "mangle",
                        "-A",
                        "PREROUTING",
                        "-i",
                        router.uplink(),
                        "-j",
                        "NFQUEUE",
                        "--queue-bypass",
                    ]));
                }
            }
        }
        let delay = (self.latency / 2).as_secs_f64().to_string();
        let mut child = self
            .command(Host::Internet, "python3")
            .args(["-c", DELAYER, &delay])
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 starts");
        let mut ready = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut ready)
            .unwrap();
        assert_eq!(ready.trim(), "ready", "the delayer started");
        self.delayer = Some(child);
    }

    fn ns(&self, host: Host) -> String {
        let name = match host {
            Host::Internet => "internet",
            Host::Server => "server",
            Host::Router1 => "router1",
            Host::Router2 => "router2",
            Host::Home1 => "home1",
            Host::Home2 => "home2",
        };
        format!("peerix-nat{}-{name}", self.tag)
    }

    fn ip(&self, host: Host, args: &[&str]) {
        must(Command::new("ip").args(["-n", &self.ns(host)]).args(args));
    }

    /// A veth pair created in place, so it never appears among the host's interfaces.
    fn veth(&self, (host, name): (Host, &str), (peer, peer_name): (Host, &str)) {
        let peer_ns = self.ns(peer);
        let args = [
            "link", "add", name, "type", "veth", "peer", "name", peer_name,
        ];
        self.ip(host, &[&args[..], &["netns", &peer_ns]].concat());
    }

    fn sysctl(&self, host: Host, setting: &str) {
        must(self.command(host, "sysctl").args(["-qw", setting]));
    }
}

impl Drop for NatLab {
    fn drop(&mut self) {
        if let Some(mut delayer) = self.delayer.take() {
            let _ = delayer.kill();
            let _ = delayer.wait();
        }
        for ns in &self.namespaces {
            // A namespace lives on while a process is in it.
            if let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() {
                let pids = String::from_utf8_lossy(&out.stdout).into_owned();
                if !pids.trim().is_empty() {
                    let _ = Command::new("kill")
                        .arg("-9")
                        .args(pids.split_whitespace())
                        .status();
                }
            }
            remove_namespace(ns);
        }
    }
}

/// Binds NFQUEUE 0 (metadata only, room for many packets in flight) and accepts each packet
/// `argv[1]` seconds after it arrived. The delay is constant, so packets leave in arrival
/// order and one batch verdict releases everything that is due.
const DELAYER: &str = r#"
import collections, socket, struct, sys, time
delay = float(sys.argv[1])
s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 12)
s.setsockopt(socket.SOL_SOCKET, 33, 1 << 24)  # SO_RCVBUFFORCE
def send(kind, attrs):
    body = b''.join(struct.pack('=HH', 4 + len(v), k) + v + bytes(-len(v) % 4) for k, v in attrs)
    s.send(struct.pack('=IHHIIBBH', 20 + len(body), kind, 1, 0, 0, 0, 0, 0) + body)
send(0x302, [(1, struct.pack('!BBH', 1, 0, 0))])
send(0x302, [(2, struct.pack('!IB', 0, 1)), (3, struct.pack('!I', 1 << 16))])
print('ready', flush=True)
due = collections.deque()
while True:
    s.settimeout(max(due[0][0] - time.monotonic(), 1e-4) if due else None)
    try:
        msg = s.recv(1 << 16)
    except socket.timeout:
        msg = b''
    except OSError:  # receive buffer overrun: those packets are dropped, as on a real link
        msg = b''
    now, off = time.monotonic(), 0
    while off + 20 <= len(msg):
        length, kind = struct.unpack_from('=IH', msg, off)
        at = off + 20 if kind == 0x300 else off + length  # only packet messages matter
        while at + 4 <= off + length:
            alen, atype = struct.unpack_from('=HH', msg, at)
            if atype & 0x7fff == 1:
                due.append((now + delay, struct.unpack_from('!I', msg, at + 4)[0]))
            at += (alen + 3) & ~3
        off += (length + 3) & ~3
    last = None
    while due and due[0][0] <= time.monotonic():
        last = due.popleft()[1]
    if last is not None:
        send(0x303, [(2, struct.pack('!II', 1, last))])
"#;

fn piped_text(text: &str) -> Stdio {
    let mut file = tempfile::tempfile().unwrap();
    std::io::Write::write_all(&mut file, text.as_bytes()).unwrap();
    std::io::Seek::rewind(&mut file).unwrap();
    file.into()
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}
