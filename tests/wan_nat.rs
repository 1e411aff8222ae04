//! `--mode wan` across NATs: a tracker on the lab's internet, A (holding the fixture) and B
//! (empty) in two homes, each behind its own port-restricted cone NAT, and two public nodes of the
//! same network (one of them a relay). Every node knows only the tracker's URL, and the homes the
//! relay (for NAT traversal, not discovery: no bootstrap peers, no mDNS, no DHT rendezvous). The
//! homes meet the public nodes through the tracker (which is how they learn the addresses their
//! NATs give them); B learns of A from the tracker, reaches it through the relayed address A
//! announced, hole punching makes the connection direct, and B substitutes. Nothing leaves the
//! lab's namespaces. Needs root.

mod common;
mod nat_lab;

use std::io::{BufRead, BufReader};
use std::net::Ipv4Addr;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{hash_part, ChrootStore, Fixture, NixKey};
use nat_lab::peerix::{
    connection_to, get, nix_copy_from_node, node_status, peer_id, public_addr, serve_in_mode,
    FRONT_PORT, PEERIX,
};
use nat_lab::{Host, NatKind, NatLab, PUBLIC2_ADDR, RELAY_ADDR, SERVER_ADDR};
use tempfile::TempDir;

const TRACKER_PORT: u16 = 12305;
/// How long B may take to learn A's paths: A's relay reservation, its heartbeat with the
/// relayed address, B's look at the tracker's peers, the dial and the hole punch.
const DISCOVERY_LIMIT: Duration = Duration::from_secs(90);

/// `peerix tracker` in the lab's server host; killed on drop (its database directory with it).
struct LabTracker {
    child: Child,
    _db: TempDir,
}

impl Drop for LabTracker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tracker(lab: &NatLab) -> LabTracker {
    let db = TempDir::new().unwrap();
    let mut child = lab
        .command(Host::Server, PEERIX)
        .args(["tracker", "--host", &SERVER_ADDR.to_string()])
        .args(["--port", &TRACKER_PORT.to_string(), "--db-path"])
        .arg(db.path().join("tracker.redb"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("peerix tracker starts");
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("[tracker] {line}");
        }
    });
    LabTracker { child, _db: db }
}

#[test]
fn homes_in_wan_mode_meet_through_the_tracker_and_substitute_directly() {
    let Some(lab) = NatLab::new(NatKind::PortRestrictedCone, NatKind::PortRestrictedCone) else {
        return;
    };
    let f = Fixture::get();
    let upstream = NixKey::generate("upstream-test-1");
    let a_store = ChrootStore::signed(&upstream, &f.all());
    let empty = ChrootStore::empty();
    let _tracker = tracker(&lab);
    let tracker_url = format!("http://{SERVER_ADDR}:{TRACKER_PORT}");
    let public = |(ip, front_port): (Ipv4Addr, u16), relay: bool| {
        let mut args = vec![
            "--tracker-url".to_owned(),
            tracker_url.clone(),
            "--announce-addr".to_owned(),
            ip.to_string(),
        ];
        if relay {
            args.push("--relay-server".to_owned());
        }
        let place = (Host::Internet, ip, front_port);
        serve_in_mode(&lab, "wan", place, empty.root(), &args)
    };
    let relay = public((RELAY_ADDR, FRONT_PORT), true);
    let _second_public = public((PUBLIC2_ADDR, FRONT_PORT + 1), false);
    let relay_addr = public_addr(&lab, &relay, RELAY_ADDR);
    let home_args = vec![
        "--tracker-url".to_owned(),
        tracker_url.clone(),
        "--relay-servers".to_owned(),
        relay_addr,
        "--trusted-public-key".to_owned(),
        upstream.public.clone(),
    ];
    let home = |host| (host, Ipv4Addr::UNSPECIFIED, FRONT_PORT);
    let a = serve_in_mode(&lab, "wan", home(Host::Home1), a_store.root(), &home_args);
    let b_store = ChrootStore::empty();
    let b_started = Instant::now();
    let b = serve_in_mode(&lab, "wan", home(Host::Home2), b_store.root(), &home_args);
    let a_id = peer_id(&lab, &a);

    let narinfo = format!("/{}.narinfo", hash_part(&f.big));
    while get(&lab, &b, &narinfo).is_none_or(|(status, _, _)| status != 200) {
        assert!(
            b_started.elapsed() < DISCOVERY_LIMIT,
            "B never learnt A's paths through the tracker"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    eprintln!(
        "B learnt A's paths {:.1} s after it started",
        b_started.elapsed().as_secs_f64()
    );
    let dest = ChrootStore::empty();
    let out = nix_copy_from_node(&lab, &b, &upstream.public, &dest, &[&f.top, &f.big]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    a_store.assert_same_nars(&dest, &[&f.top, &f.app, &f.lib, &f.big]);
    // Relays carry no NARs by default: the bytes came over a direct connection.
    let status = node_status(&lab, &b);
    let to_a = connection_to(&status, &a_id).expect("B is connected to A");
    assert_eq!(to_a["direct"], true, "{to_a}");
    assert!(to_a["bytes_in"].as_u64().unwrap() > 100 << 20, "{to_a}");
}
