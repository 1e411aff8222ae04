//! Shows that the LAN lab behaves like a real local network with a routed far host, using the
//! old Peerix LAN peer as the traffic: a broadcast request reaches every host on the bridge and
//! not the far host, unicast UDP and TCP cross the router both ways, an unshared path gets no
//! answer, a 404 after an answer is reported as such, and the lab leaves nothing behind.
//! Needs root.

// The lab uses the shared harness's root check.
mod common;
mod lan_lab;

use std::net::SocketAddrV4;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use base64::Engine;
use common::eventually;
use lan_lab::old_peer::{old_peer_ask, old_peer_fetch, OldPeer, ReceivedRequest, OLD_UDP_PORT};
use lan_lab::{Host, LanLab};
use tempfile::TempDir;

/// Every character of Nix's base-32 alphabet once, and backwards: two store hashes.
const HASH_A: &str = "0123456789abcdfghijklmnpqrsvwxyz";
const HASH_B: &str = "zyxwvsrqpnmlkjihgfdcba9876543210";
const HTTP_PORT: u16 = 8080;
/// How long a requester waits for an answer when one is expected.
const ANSWER_WAIT_MS: u64 = 2_000;
/// How long it waits when none should come.
const SILENCE_WAIT_MS: u64 = 300;
/// How long a received datagram may take to appear in an old peer's log.
const LOG_LIMIT: Duration = Duration::from_secs(5);

/// A stand-in for one store path: a hand-written narinfo and some bytes as its "NAR".
struct SharedPath {
    _dir: TempDir,
    store_path: String,
    narinfo: PathBuf,
    nar: PathBuf,
    bytes: Vec<u8>,
}

impl SharedPath {
    /// A path named `old-peer-?1`, whose base64 has both a `/` and padding, so the NAR URL
    /// shows the old program's `/` → `_` rule. The bytes span several 64 KiB reads.
    fn new(hash: &str) -> SharedPath {
        let dir = TempDir::new().unwrap();
        let store_path = format!("/nix/store/{hash}-old-peer-?1");
        let mut state = u32::from_str_radix(&hash[..6], 36).unwrap();
        let bytes: Vec<u8> = (0..200_000)
            .map(|_| {
                state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (state >> 24) as u8
            })
            .collect();
        let narinfo = dir.path().join("narinfo");
        let nar = dir.path().join("nar");
        std::fs::write(&nar, &bytes).unwrap();
        std::fs::write(
            &narinfo,
            format!(
                "StorePath: {store_path}\nURL: nar/unused.nar\nCompression: none\n\
                 NarSize: {}\nReferences: \n",
                bytes.len()
            ),
        )
        .unwrap();
        SharedPath {
            _dir: dir,
            store_path,
            narinfo,
            nar,
            bytes,
        }
    }

    fn files(&self) -> (&Path, &Path) {
        (&self.narinfo, &self.nar)
    }

    /// The narinfo's URL field as an old peer serves it.
    fn old_url(&self) -> String {
        let b64 = base64::engine::general_purpose::STANDARD.encode(&self.store_path);
        format!("local/nar/{}.nar", b64.replace('/', "_"))
    }
}

fn udp(lab: &LanLab, host: impl Into<Host>) -> SocketAddrV4 {
    SocketAddrV4::new(lab.addr(host), OLD_UDP_PORT)
}

/// The requests `peer` logged with `id`, once there is at least one.
fn requests_with_id(peer: &OldPeer, id: u32) -> Vec<ReceivedRequest> {
    let mut found = Vec::new();
    eventually(LOG_LIMIT, &format!("request {id} never logged"), || {
        found = peer.requests().into_iter().filter(|r| r.id == id).collect();
        !found.is_empty()
    });
    found
}

#[test]
fn broadcast_reaches_every_host_on_the_bridge_and_not_the_far_host() {
    let Some(lab) = LanLab::with_routed_host(3) else {
        return;
    };
    let path = SharedPath::new(HASH_A);
    let serve = |host: Host| OldPeer::serve(&lab, host, OLD_UDP_PORT, HTTP_PORT, &[path.files()]);
    let (peer1, peer2, far) = (serve(Host::Lan(1)), serve(Host::Lan(2)), serve(Host::Far));

    let out = TempDir::new().unwrap();
    let report = old_peer_fetch(
        &lab,
        0,
        OLD_UDP_PORT,
        HASH_A,
        out.path(),
        None,
        ANSWER_WAIT_MS,
    );
    assert!(report.found, "{report:?}");
    assert_eq!(report.exit_code, Some(0));
    let from = report.from.unwrap();
    assert!([udp(&lab, 1), udp(&lab, 2)].contains(&from), "{report:?}");
    assert_eq!(report.port, Some(u32::from(HTTP_PORT)));
    assert_eq!(report.path, Some(format!("local/{HASH_A}.narinfo")));
    assert_eq!(report.url, Some(path.old_url()));
    let narinfo_type = report.narinfo_content_type.as_deref();
    assert_eq!(narinfo_type, Some("text/x-nix-narinfo"));
    assert_eq!(report.nar_content_type.as_deref(), Some("text/plain"));
    let nar = std::fs::read(out.path().join(format!("{HASH_A}.nar"))).unwrap();
    assert!(nar == path.bytes, "the NAR arrived altered");
    let narinfo = std::fs::read_to_string(out.path().join(format!("{HASH_A}.narinfo"))).unwrap();
    assert!(narinfo.contains(&format!("StorePath: {}\n", path.store_path)));
    assert!(narinfo.contains(&format!("\nURL: {}\n", path.old_url())));

    // Both bridge hosts heard the one broadcast, sent from the old protocol's port.
    let expected = ReceivedRequest {
        from: udp(&lab, 0),
        id: report.id,
        hash: HASH_A.to_owned(),
        answered: true,
    };
    for peer in [&peer1, &peer2] {
        assert_eq!(
            requests_with_id(peer, report.id),
            std::slice::from_ref(&expected)
        );
    }
    let answerer = if from == udp(&lab, 1) { &peer1 } else { &peer2 };
    let downloads: Vec<_> = answerer
        .http_log()
        .into_iter()
        .filter(|served| served.path.starts_with("/local/"))
        .map(|served| (*served.from.ip(), served.path, served.status))
        .collect();
    let client = lab.host_addr(0);
    assert_eq!(
        downloads,
        [
            (client, format!("/local/{HASH_A}.narinfo"), 200),
            (client, format!("/{}", path.old_url()), 200),
        ]
    );

    // Unicast reaches the far host; the broadcast sent before it never did.
    let asked = old_peer_ask(
        &lab,
        0,
        OLD_UDP_PORT,
        HASH_A,
        Some(lab.far_addr()),
        ANSWER_WAIT_MS,
    );
    assert!(asked.answered, "{asked:?}");
    assert_eq!(asked.from, Some(udp(&lab, Host::Far)));
    assert_eq!(asked.port, Some(u32::from(HTTP_PORT)));
    assert_eq!(asked.path, Some(format!("local/{HASH_A}.narinfo")));
    requests_with_id(&far, asked.id);
    assert_eq!(
        far.requests(),
        [ReceivedRequest {
            id: asked.id,
            ..expected
        }]
    );
}

#[test]
fn unicast_udp_and_tcp_cross_the_router_both_ways() {
    let Some(lab) = LanLab::with_routed_host(2) else {
        return;
    };
    let (path_a, path_b) = (SharedPath::new(HASH_A), SharedPath::new(HASH_B));
    let far = OldPeer::serve(&lab, Host::Far, OLD_UDP_PORT, HTTP_PORT, &[path_a.files()]);
    let near = OldPeer::serve(&lab, 1, OLD_UDP_PORT, HTTP_PORT, &[path_b.files()]);

    let out = TempDir::new().unwrap();
    let fetch = |host: Host, hash: &str, unicast, wait| {
        old_peer_fetch(&lab, host, OLD_UDP_PORT, hash, out.path(), unicast, wait)
    };
    let report = fetch(Host::Lan(0), HASH_A, Some(lab.far_addr()), ANSWER_WAIT_MS);
    assert!(report.found, "{report:?}");
    assert_eq!(report.from, Some(udp(&lab, Host::Far)));
    let nar = std::fs::read(out.path().join(format!("{HASH_A}.nar"))).unwrap();
    assert!(nar == path_a.bytes, "the NAR arrived altered");
    // The far host now asks, from the port its server had.
    drop(far);

    let report = fetch(Host::Far, HASH_B, Some(lab.host_addr(1)), ANSWER_WAIT_MS);
    assert!(report.found, "{report:?}");
    assert_eq!(report.from, Some(udp(&lab, 1)));
    let nar = std::fs::read(out.path().join(format!("{HASH_B}.nar"))).unwrap();
    assert!(nar == path_b.bytes, "the NAR arrived altered");

    // The far host's broadcast stays on its own subnet, where nobody holds anything.
    let report = fetch(Host::Far, HASH_B, None, SILENCE_WAIT_MS);
    assert!(!report.found, "{report:?}");
    assert_eq!(report.exit_code, Some(0));
    assert!(near.requests().iter().all(|r| r.id != report.id));
}

#[test]
fn unshared_paths_get_no_answer_and_a_404_after_an_answer_is_an_error() {
    let Some(lab) = LanLab::new(2) else {
        return;
    };
    let path = SharedPath::new(HASH_A);
    let peer = OldPeer::serve(&lab, 1, OLD_UDP_PORT, HTTP_PORT, &[path.files()]);

    let asked = old_peer_ask(&lab, 0, OLD_UDP_PORT, HASH_B, None, SILENCE_WAIT_MS);
    assert!(!asked.answered, "{asked:?}");
    let heard = requests_with_id(&peer, asked.id);
    assert_eq!(heard.len(), 1);
    assert!(!heard[0].answered && heard[0].hash == HASH_B, "{heard:?}");

    // The path is still announced, but its NAR is gone.
    std::fs::remove_file(&path.nar).unwrap();
    let out = TempDir::new().unwrap();
    let report = old_peer_fetch(
        &lab,
        0,
        OLD_UDP_PORT,
        HASH_A,
        out.path(),
        None,
        ANSWER_WAIT_MS,
    );
    assert!(!report.found, "{report:?}");
    assert_eq!(report.status, Some(404));
    assert_eq!(report.from, Some(udp(&lab, 1)));
    assert!(report.exit_code.is_some_and(|code| code != 0), "{report:?}");
    let nar_route = format!("/{}", path.old_url());
    assert!(
        peer.http_log()
            .iter()
            .any(|served| served.path == nar_route && served.status == 404),
        "{:?}",
        peer.http_log()
    );
}

#[test]
fn the_lab_isolates_its_hosts_and_removes_what_it_made() {
    let Some(lab) = LanLab::with_routed_host(2) else {
        return;
    };
    let names = lab.namespaces().to_vec();
    assert_eq!(
        names.len(),
        5,
        "switch, two hosts, router, far host: {names:?}"
    );
    for host in [Host::Lan(0), Host::Lan(1), Host::Far] {
        let resolv = lab.command(host, "cat").arg("/etc/resolv.conf").output();
        let resolv = String::from_utf8(resolv.unwrap().stdout).unwrap();
        assert_eq!(resolv, "nameserver 127.0.0.1\n", "{host:?}");
        let links = lab.command(host, "ip").args(["-o", "addr"]).output();
        let links = String::from_utf8(links.unwrap().stdout).unwrap();
        assert!(links.contains("inet 127.0.0.1/8"), "{host:?}: {links}");
        let own = format!("inet {}/24 brd ", lab.addr(host));
        assert!(links.contains(&own), "{host:?}: {links}");
        // Loopback and the one lab link, nothing else.
        let count = links.lines().filter(|l| l.contains(" inet ")).count();
        assert_eq!(count, 2, "{host:?}: {links}");
    }
    assert_eq!(lab.broadcast_addr().octets()[3], 255);
    assert_eq!(
        lab.broadcast_addr().octets()[..3],
        lab.host_addr(0).octets()[..3]
    );

    drop(lab);
    let listed = Command::new("ip").args(["netns", "list"]).output().unwrap();
    let listed = String::from_utf8(listed.stdout).unwrap();
    for name in &names {
        assert!(
            !listed
                .lines()
                .any(|l| l.split_whitespace().next() == Some(name)),
            "{name} is left: {listed}"
        );
        assert!(!Path::new("/etc/netns").join(name).exists(), "{name}");
    }
}
