//! `--mode ipfs`: two nodes in different homes, each behind its own NAT, that know no address of
//! each other and share no private DHT, find each other by looking their network's rendezvous
//! key up on the public IPFS DHT, and B substitutes A's paths. Three nodes on the lab's internet
//! stand in for the public DHT: they speak `/ipfs/kad/1.0.0` and are of another network id, so
//! the public lookup is the homes' only way to meet (one of them is also the relay that hole
//! punching starts from). Nothing leaves the lab's namespaces. Needs root.

mod common;
mod nat_lab;

use std::fs::OpenOptions;
use std::io::Write as _;
use std::net::Ipv4Addr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{hash_part, ChrootStore, Fixture, NixKey};
use nat_lab::peerix::{get, nix_copy_from_node, serve_in_mode, Node, FRONT_PORT, P2P_PORT};
use nat_lab::{Host, NatKind, NatLab, PUBLIC2_ADDR, RELAY_ADDR, SERVER_ADDR};
use tempfile::TempDir;

/// What the stand-ins' network id is: anything but the homes' (`default`).
const STAND_IN_NETWORK: &str = "public-dht-stand-in";
/// How long B may take to learn A's paths through the public DHT. The rendezvous rounds come
/// 5 s, 15 s and 35 s after start; a lookup in a round may miss an announcement made in the
/// same one.
const DISCOVERY_LIMIT: Duration = Duration::from_secs(90);
/// How long the control watches the homes not meet: past the third rendezvous round, where the
/// lookup in `--mode ipfs` finds the other home within the first.
const NEVER_MET_WATCH: Duration = Duration::from_secs(45);

/// The public DHT's stand-ins: where each runs, its identity (written before it starts, so
/// that each can be told the others' addresses) and its address with peer id.
struct StandIn {
    host: Host,
    ip: Ipv4Addr,
    front_port: u16,
    identity: std::path::PathBuf,
    addr: String,
}

fn stand_ins(keys: &Path) -> Vec<StandIn> {
    let places = [
        (Host::Internet, RELAY_ADDR, FRONT_PORT),
        (Host::Internet, PUBLIC2_ADDR, FRONT_PORT + 1),
        (Host::Server, SERVER_ADDR, FRONT_PORT),
    ];
    places
        .into_iter()
        .enumerate()
        .map(|(i, (host, ip, front_port))| {
            let key = libp2p::identity::Keypair::generate_ed25519();
            let identity = keys.join(format!("stand-in-{i}.key"));
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&identity)
                .unwrap();
            file.write_all(&key.to_protobuf_encoding().unwrap())
                .unwrap();
            let peer = key.public().to_peer_id();
            let addr = format!("/ip4/{ip}/tcp/{P2P_PORT}/p2p/{peer}");
            StandIn {
                host,
                ip,
                front_port,
                identity,
                addr,
            }
        })
        .collect()
}

struct Homes {
    lab: NatLab,
    upstream: NixKey,
    a_store: ChrootStore,
    _stand_ins: Vec<Node>,
    _keys: TempDir,
    _a: Node,
    b: Node,
    b_started: Instant,
}

/// The stand-ins, then A (holding the fixture) and B (empty) in `mode`, knowing only the
/// stand-ins; the first stand-in is their relay.
fn homes(mode: &str) -> Option<Homes> {
    let lab = NatLab::new(NatKind::PortRestrictedCone, NatKind::PortRestrictedCone)?;
    let f = Fixture::get();
    let upstream = NixKey::generate("upstream-test-1");
    let a_store = ChrootStore::signed(&upstream, &f.all());
    let empty = ChrootStore::empty();
    let keys = TempDir::new().unwrap();
    let planned = stand_ins(keys.path());
    let all_addrs: Vec<String> = planned.iter().map(|s| s.addr.clone()).collect();
    let mut stand_ins = Vec::new();
    for (i, s) in planned.iter().enumerate() {
        let others: Vec<&str> = all_addrs
            .iter()
            .filter(|a| **a != s.addr)
            .map(String::as_str)
            .collect();
        let mut args = vec![
            "--network-id".to_owned(),
            STAND_IN_NETWORK.to_owned(),
            "--identity-file".to_owned(),
            s.identity.display().to_string(),
            "--announce-addr".to_owned(),
            format!("/ip4/{}/tcp/{P2P_PORT}", s.ip),
            "--bootstrap-peers".to_owned(),
            others.join(","),
        ];
        if i == 0 {
            args.push("--relay-server".to_owned());
        }
        let node = serve_in_mode(
            &lab,
            "ipfs",
            (s.host, s.ip, s.front_port),
            empty.root(),
            &args,
        );
        stand_ins.push(node);
    }
    let home_args = vec![
        "--bootstrap-peers".to_owned(),
        all_addrs.join(","),
        "--relay-servers".to_owned(),
        all_addrs[0].clone(),
        "--trusted-public-key".to_owned(),
        upstream.public.clone(),
    ];
    let home = |host| (host, Ipv4Addr::UNSPECIFIED, FRONT_PORT);
    let a = serve_in_mode(&lab, mode, home(Host::Home1), a_store.root(), &home_args);
    let b_store = ChrootStore::empty();
    let b_started = Instant::now();
    let b = serve_in_mode(&lab, mode, home(Host::Home2), b_store.root(), &home_args);
    Some(Homes {
        lab,
        upstream,
        a_store,
        _stand_ins: stand_ins,
        _keys: keys,
        _a: a,
        b,
        b_started,
    })
}

fn b_has_narinfo(h: &Homes, path: &str) -> bool {
    let narinfo = format!("/{}.narinfo", hash_part(path));
    get(&h.lab, &h.b, &narinfo).is_some_and(|(status, _, _)| status == 200)
}

#[test]
fn homes_in_ipfs_mode_meet_through_the_public_dht_and_substitute() {
    let Some(h) = homes("ipfs") else {
        return;
    };
    let f = Fixture::get();
    let started = Instant::now();
    while !b_has_narinfo(&h, &f.top) {
        assert!(
            started.elapsed() < DISCOVERY_LIMIT,
            "B never learnt A's paths through the public DHT"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let found = h.b_started.elapsed();
    eprintln!(
        "B learnt A's paths {:.1} s after it started",
        found.as_secs_f64()
    );

    let dest = ChrootStore::empty();
    let out = nix_copy_from_node(&h.lab, &h.b, &h.upstream.public, &dest, &[&f.top]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    h.a_store.assert_same_nars(&dest, &[&f.top, &f.app, &f.lib]);
    eprintln!(
        "substituted {:.1} s after B started",
        h.b_started.elapsed().as_secs_f64()
    );
}

/// The control: the same lab with `--mode libp2p`, which keeps away from the public DHT. The
/// stand-ins are all the homes know, and none is of their network: they never meet.
#[test]
fn homes_in_libp2p_mode_never_meet_through_the_public_dht() {
    let Some(h) = homes("libp2p") else {
        return;
    };
    let f = Fixture::get();
    let started = Instant::now();
    while started.elapsed() < NEVER_MET_WATCH {
        assert!(
            !b_has_narinfo(&h, &f.top),
            "B learnt A's paths without the public DHT"
        );
        std::thread::sleep(Duration::from_secs(1));
    }
}
