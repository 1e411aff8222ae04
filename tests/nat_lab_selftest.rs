//! Shows that the emulated internet of `nat_lab` behaves like real home routers: traffic leaves
//! under the router's public address, cone and symmetric NATs map ports as their names say,
//! nothing unsolicited gets in, and UDP hole punching works through cones only. Needs root.

// The lab's Peerix part uses the shared harness.
mod common;
mod nat_lab;

use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;

use nat_lab::{Host, NatKind, NatLab, Router, PUBLIC2_ADDR, RELAY_ADDR};

const REFLECTOR_PORT: u16 = 3478;

/// Listens on both public addresses (UDP and TCP) and answers each datagram or connection with
/// the source address and port it saw, like a STUN server.
const REFLECTOR: &str = r#"
import select, socket, sys
port, socks = int(sys.argv[1]), []
for addr in sys.argv[2:]:
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind((addr, port))
    t = socket.socket()
    t.bind((addr, port))
    t.listen()
    socks += [u, t]
print('ready', flush=True)
while True:
    for s in select.select(socks, [], [])[0]:
        if s.type == socket.SOCK_STREAM:
            c, peer = s.accept()
            c.sendall(('%s:%d' % peer).encode())
            c.close()
        else:
            peer = s.recvfrom(64)[1]
            s.sendto(('%s:%d' % peer).encode(), peer)
"#;

/// From one UDP socket bound to port `argv[1]`, asks each reflector in `argv[2:]` how it sees
/// the socket and prints the answers in order.
const PROBE: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(('0.0.0.0', int(sys.argv[1])))
s.settimeout(0.3)
for target in sys.argv[2:]:
    host, port = target.split(':')
    for _ in range(10):
        s.sendto(b'?', (host, int(port)))
        try:
            reply, source = s.recvfrom(64)
        except socket.timeout:
            continue
        if source == (host, int(port)):
            print(reply.decode(), flush=True)
            break
    else:
        sys.exit('no answer from ' + target)
"#;

/// Binds UDP and TCP port 5000, learns its public mapping from the reflector `argv[1]` (which
/// opens the pinhole for exactly that address and port), asks it once more, then prints every
/// datagram or connection that arrives until stdin closes.
const LISTEN: &str = r#"
import select, socket, sys
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.bind(('0.0.0.0', 5000))
u.settimeout(2)
t = socket.socket()
t.bind(('0.0.0.0', 5000))
t.listen()
reflector = (sys.argv[1], 3478)
u.sendto(b'?', reflector)
print(u.recvfrom(64)[0].decode(), flush=True)
u.sendto(b'?', reflector)
while True:
    ready = select.select([u, t, sys.stdin], [], [])[0]
    if sys.stdin in ready:
        break
    if u in ready:
        print('got udp from %s:%d' % u.recvfrom(64)[1], flush=True)
    if t in ready:
        print('got tcp from %s:%d' % t.accept()[1], flush=True)
"#;

/// Sends UDP from two sources (another public address; the reflector's address but another
/// port) to home1's public mapping `argv[1]` and to home1 itself, then tries TCP to both.
const INTRUDE: &str = r#"
import socket, sys
host, port = sys.argv[1].split(':')
targets = [(host, int(port)), ('10.0.1.2', 5000)]
for source in [('203.0.113.2', 0), ('203.0.113.1', 0)]:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(source)
    for target in targets:
        s.sendto(b'!', target)
for target in [(host, 5000), ('10.0.1.2', 5000)]:
    try:
        socket.create_connection(target, timeout=0.5)
        print('connected to %s:%d' % target)
    except OSError:
        pass
"#;

/// UDP port 4000: learns its public mapping from the reflector `argv[1]` and prints it, reads
/// the peer's mapping from stdin, then for `argv[2]` seconds pings the peer and answers its
/// pings. Prints the best round trip, or `blocked` if no answer ever came back.
const PUNCH: &str = r#"
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(('0.0.0.0', 4000))
s.settimeout(0.05)
reflector = (sys.argv[1], 3478)
for _ in range(100):
    s.sendto(b'?', reflector)
    try:
        reply, source = s.recvfrom(64)
    except socket.timeout:
        continue
    if source == reflector:
        break
else:
    sys.exit('no answer from the reflector')
print(reply.decode(), flush=True)
host, port = sys.stdin.readline().split(':')
peer, best, next_ping = (host, int(port)), None, 0
end = time.monotonic() + float(sys.argv[2])
while time.monotonic() < end:
    if time.monotonic() >= next_ping:
        s.sendto(b'ping %f' % time.monotonic(), peer)
        next_ping = time.monotonic() + 0.1
    try:
        data, source = s.recvfrom(64)
    except socket.timeout:
        continue
    if source != peer:
        continue
    kind, sent = data.split()
    if kind == b'ping':
        s.sendto(b'pong ' + sent, peer)
    else:
        rtt = time.monotonic() - float(sent)
        best = rtt if best is None else min(best, rtt)
print('blocked' if best is None else 'rtt %f' % best, flush=True)
"#;

/// A child process killed when the test ends, however it ends.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn python(lab: &NatLab, host: Host, script: &str, args: &[&str]) -> Command {
    let mut cmd = lab.command(host, "python3");
    cmd.arg("-c").arg(script).args(args);
    cmd
}

/// Spawns with piped stdin and stdout, returning the child and its stdout lines.
fn spawn(mut cmd: Command) -> (Killed, BufReader<ChildStdout>) {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 starts");
    let out = BufReader::new(child.stdout.take().unwrap());
    (Killed(child), out)
}

fn line(out: &mut BufReader<ChildStdout>) -> String {
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    line.trim().to_owned()
}

fn start_reflector(lab: &NatLab) -> Killed {
    let port = REFLECTOR_PORT.to_string();
    let args = [
        port.as_str(),
        &RELAY_ADDR.to_string(),
        &PUBLIC2_ADDR.to_string(),
    ];
    let (child, mut out) = spawn(python(lab, Host::Internet, REFLECTOR, &args));
    assert_eq!(line(&mut out), "ready");
    child
}

fn stdout_ok(mut cmd: Command) -> String {
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{cmd:?} failed: {stderr}");
    String::from_utf8(out.stdout).unwrap()
}

fn parse(addr: &str) -> SocketAddrV4 {
    addr.parse()
        .unwrap_or_else(|_| panic!("an address: {addr:?}"))
}

/// How the reflector's two addresses see one home1 UDP socket bound to `port`.
fn mappings(lab: &NatLab, port: u16) -> [SocketAddrV4; 2] {
    let [a, b] = [RELAY_ADDR, PUBLIC2_ADDR].map(|ip| format!("{ip}:{REFLECTOR_PORT}"));
    let out = stdout_ok(python(
        lab,
        Host::Home1,
        PROBE,
        &[&port.to_string(), &a, &b],
    ));
    let seen: Vec<_> = out.lines().map(parse).collect();
    let router = lab.addr(Host::Router1);
    assert!(seen.iter().all(|m| *m.ip() == router), "{seen:?}");
    [seen[0], seen[1]]
}

/// Whether some of a few fresh sockets got a different public port per destination.
fn mapping_depends_on_destination(lab: &NatLab, first_port: u16) -> bool {
    // A random port may repeat by chance, so a symmetric NAT gets a few tries.
    (first_port..first_port + 3).any(|port| {
        let [a, b] = mappings(lab, port);
        a.port() != b.port()
    })
}

/// Both homes punch towards each other for `seconds`; returns each side's verdict line.
fn punch(lab: &NatLab, seconds: &str) -> [String; 2] {
    let relay = RELAY_ADDR.to_string();
    let mut sides =
        [Host::Home1, Host::Home2].map(|home| spawn(python(lab, home, PUNCH, &[&relay, seconds])));
    let public = sides.each_mut().map(|(_, out)| line(out));
    for (i, (home, router)) in [(Host::Home1, Host::Router1), (Host::Home2, Host::Router2)]
        .into_iter()
        .enumerate()
    {
        assert_eq!(*parse(&public[i]).ip(), lab.addr(router), "{home:?}");
    }
    for (i, (child, _)) in sides.iter_mut().enumerate() {
        let mut stdin = child.0.stdin.take().unwrap();
        writeln!(stdin, "{}", public[1 - i]).unwrap();
    }
    sides.map(|(_child, mut out)| line(&mut out))
}

fn rtt(verdict: &str) -> Duration {
    let secs = verdict
        .strip_prefix("rtt ")
        .unwrap_or_else(|| panic!("{verdict}"));
    Duration::from_secs_f64(secs.parse().unwrap())
}

#[test]
fn home_reaches_the_internet_under_the_router_address() {
    let Some(lab) = NatLab::new(NatKind::PortRestrictedCone, NatKind::PortRestrictedCone) else {
        return;
    };
    let _reflector = start_reflector(&lab);
    let tcp = "import socket, sys\n\
               print(socket.create_connection((sys.argv[1], 3478), timeout=3).recv(64).decode())";
    let seen = stdout_ok(python(&lab, Host::Home1, tcp, &[&RELAY_ADDR.to_string()]));
    assert_eq!(*parse(seen.trim()).ip(), Ipv4Addr::new(198, 51, 100, 1));
    assert_eq!(lab.addr(Host::Router1), Ipv4Addr::new(198, 51, 100, 1));
    // UDP too, which `mappings` checks against the router address.
    mappings(&lab, 4000);
}

#[test]
fn cone_keeps_one_public_port_for_all_destinations() {
    let Some(lab) = NatLab::new(NatKind::PortRestrictedCone, NatKind::PortRestrictedCone) else {
        return;
    };
    let _reflector = start_reflector(&lab);
    let [a, b] = mappings(&lab, 4000);
    assert_eq!(a, b);
    assert!(!mapping_depends_on_destination(&lab, 4001));
}

#[test]
fn symmetric_takes_a_new_public_port_per_destination() {
    let Some(lab) = NatLab::new(NatKind::Symmetric, NatKind::Symmetric) else {
        return;
    };
    let _reflector = start_reflector(&lab);
    assert!(mapping_depends_on_destination(&lab, 4000));
}

#[test]
fn set_nat_switches_the_mapping_at_runtime() {
    let Some(lab) = NatLab::new(NatKind::PortRestrictedCone, NatKind::PortRestrictedCone) else {
        return;
    };
    let _reflector = start_reflector(&lab);
    let [a, b] = mappings(&lab, 4000);
    assert_eq!(a.port(), b.port());
    lab.set_nat(Router::Router1, NatKind::Symmetric);
    assert!(mapping_depends_on_destination(&lab, 4000));
    // The same sockets again: random mappings left in conntrack would outlive the switch.
    lab.set_nat(Router::Router1, NatKind::PortRestrictedCone);
    assert!(!mapping_depends_on_destination(&lab, 4000));
}

#[test]
fn nothing_unsolicited_reaches_home() {
    let Some(lab) = NatLab::new(NatKind::PortRestrictedCone, NatKind::PortRestrictedCone) else {
        return;
    };
    let _reflector = start_reflector(&lab);
    // An intruder next to router1 that also routes straight to the home network.
    let mut route = lab.command(Host::Internet, "ip");
    route.args(["route", "add", "10.0.1.0/24", "via", "198.51.100.1"]);
    stdout_ok(route);

    let (mut home, mut out) = spawn(python(
        &lab,
        Host::Home1,
        LISTEN,
        &[&RELAY_ADDR.to_string()],
    ));
    let public = line(&mut out);
    assert_eq!(*parse(&public).ip(), lab.addr(Host::Router1));
    let intruder = stdout_ok(python(&lab, Host::Internet, INTRUDE, &[&public]));
    assert_eq!(intruder, "", "TCP got in");
    std::thread::sleep(Duration::from_millis(200));
    drop(home.0.stdin.take());
    let got: Vec<String> = out.lines().map(Result::unwrap).collect();
    // Only the second answer of the reflector, which is what the pinhole is for.
    assert_eq!(got, [format!("got udp from {RELAY_ADDR}:{REFLECTOR_PORT}")]);
}

#[test]
fn hole_punching_works_between_cones() {
    let Some(lab) = NatLab::new(NatKind::PortRestrictedCone, NatKind::PortRestrictedCone) else {
        return;
    };
    let _reflector = start_reflector(&lab);
    for verdict in punch(&lab, "1.5") {
        assert!(rtt(&verdict) < Duration::from_millis(100), "{verdict}");
    }
}

#[test]
fn hole_punching_fails_between_symmetric_nats() {
    let Some(lab) = NatLab::new(NatKind::Symmetric, NatKind::Symmetric) else {
        return;
    };
    let _reflector = start_reflector(&lab);
    assert_eq!(punch(&lab, "1.5"), ["blocked", "blocked"]);
}

#[test]
fn latency_lengthens_the_round_trip_between_homes() {
    let Some(mut lab) = NatLab::new(NatKind::PortRestrictedCone, NatKind::PortRestrictedCone)
    else {
        return;
    };
    let _reflector = start_reflector(&lab);
    lab.add_latency(Duration::from_millis(100));
    lab.add_latency(Duration::from_millis(200));
    for verdict in punch(&lab, "2.5") {
        let rtt = rtt(&verdict);
        let expected = Duration::from_millis(300);
        assert!(
            rtt >= expected && rtt < expected + Duration::from_millis(100),
            "{verdict}"
        );
    }
}
