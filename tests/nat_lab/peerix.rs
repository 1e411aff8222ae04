//! Peerix nodes in the lab: a relay and a second public node on the internet, A (holding the
//! fixture) in home 1 and B (empty) in home 2, each run as a user would run it (`--mode libp2p`,
//! no `--offline`), and the ways to look at them from inside their namespaces.

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Child, Output};
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

use super::{Host, NatKind, NatLab, RELAY_ADDR, SERVER_ADDR};
use crate::common::netns::spawn_logged;
use crate::common::{nix_copy_with, ChrootStore, Fixture, NixKey};

pub const PEERIX: &str = env!("CARGO_BIN_EXE_peerix");
/// A node's HTTP front port, inside its own namespace.
pub const FRONT_PORT: u16 = 12304;
pub const P2P_PORT: u16 = 4001;

/// A `peerix serve` in one of the lab's hosts; killed on drop (the lab kills leftovers too).
pub struct Node {
    child: Child,
    pub host: Host,
    pub front: String,
    _state: TempDir,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `peerix serve` in `host`, with libp2p on `ip` (TCP and QUIC) and its front on `front_port`.
pub fn serve(
    lab: &NatLab,
    (host, ip, front_port): (Host, Ipv4Addr, u16),
    store: &Path,
    extra: &[String],
) -> Node {
    serve_in_mode(lab, "libp2p", (host, ip, front_port), store, extra)
}

/// [`serve`] in the `--mode` given.
pub fn serve_in_mode(
    lab: &NatLab,
    mode: &str,
    (host, ip, front_port): (Host, Ipv4Addr, u16),
    store: &Path,
    extra: &[String],
) -> Node {
    let state = TempDir::new().unwrap();
    let listen = format!("/ip4/{ip}/tcp/{P2P_PORT},/ip4/{ip}/udp/{P2P_PORT}/quic-v1");
    let mut cmd = lab.command(host, PEERIX);
    cmd.args(["serve", "--mode", mode, "--port", &front_port.to_string()])
        .arg("--store-root")
        .arg(store)
        .arg("--state-dir")
        .arg(state.path())
        .args(["--listen-addrs", &listen])
        .args(extra)
        .env("RUST_LOG", "info,peerix_node=debug,libp2p_autonat=debug");
    let (child, _) = spawn_logged(&mut cmd, format!("{host:?}"));
    let node = Node {
        child,
        host,
        front: format!("http://127.0.0.1:{front_port}"),
        _state: state,
    };
    eventually(Duration::from_secs(20), "the node never served", || {
        get_json(lab, &node, "/bootstrap").is_some()
    });
    node
}

/// GET `path` from a node's front, from inside its namespace: (status, body, seconds).
pub fn get(lab: &NatLab, node: &Node, path: &str) -> Option<(u16, Vec<u8>, f64)> {
    let out = lab
        .command(node.host, "curl")
        .args([
            "-s",
            "--max-time",
            "10",
            "-o",
            "-",
            "-w",
            "\n%{http_code} %{time_total}",
        ])
        .arg(format!("{}{path}", node.front))
        .output()
        .ok()?;
    let text = out.stdout;
    let split = text.iter().rposition(|b| *b == b'\n')?;
    let tail = String::from_utf8_lossy(&text[split + 1..]).into_owned();
    let (code, time) = tail.split_once(' ')?;
    Some((
        code.parse().ok()?,
        text[..split].to_vec(),
        time.parse().ok()?,
    ))
}

pub fn get_json(lab: &NatLab, node: &Node, path: &str) -> Option<Value> {
    let (status, body, _) = get(lab, node, path)?;
    (status == 200).then(|| serde_json::from_slice(&body).ok())?
}

/// Polls `ready` every 250 ms until it holds; fails with `what` after `limit`.
pub fn eventually(limit: Duration, what: &str, mut ready: impl FnMut() -> bool) {
    let started = Instant::now();
    while !ready() {
        assert!(started.elapsed() < limit, "{what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// A public node's address with its peer id, as the homes are told it.
pub fn public_addr(lab: &NatLab, node: &Node, ip: Ipv4Addr) -> String {
    format!("/ip4/{ip}/tcp/{P2P_PORT}/p2p/{}", peer_id(lab, node))
}

pub fn peer_id(lab: &NatLab, node: &Node) -> String {
    let info = get_json(lab, node, "/bootstrap").unwrap();
    info["peer_id"].as_str().unwrap().to_owned()
}

/// The `node` section of a node's `GET /status`.
pub fn node_status(lab: &NatLab, node: &Node) -> Value {
    get_json(lab, node, "/status").map_or(Value::Null, |s| s["node"].clone())
}

pub fn connection_to(status: &Value, peer: &str) -> Option<Value> {
    status["peers"]
        .as_array()?
        .iter()
        .find(|p| p["peer_id"] == peer)
        .cloned()
}

pub struct World {
    pub lab: NatLab,
    pub upstream: NixKey,
    pub a_store: ChrootStore,
    pub relay: Node,
    _second_public: Node,
    pub a: Node,
    pub b: Node,
    /// When B was started.
    pub b_started: Instant,
}

/// The relay and a second public node on the internet (homes meet several public peers, which
/// is how they learn what kind of NAT they are behind), A (holding the fixture) in home 1 and B
/// (empty) in home 2; the homes know only the two public nodes.
pub fn world(
    kinds: (NatKind, NatKind),
    relay_extra: &[&str],
    home_extra: &[&str],
) -> Option<World> {
    world_with_rtt(kinds, Duration::ZERO, (relay_extra, home_extra))
}

/// [`world`] with `rtt` added between the homes (half of it between each home and the
/// internet) before any node starts.
pub fn world_with_rtt(
    kinds: (NatKind, NatKind),
    rtt: Duration,
    (relay_extra, home_extra): (&[&str], &[&str]),
) -> Option<World> {
    let mut lab = NatLab::new(kinds.0, kinds.1)?;
    if !rtt.is_zero() {
        lab.add_latency(rtt);
    }
    let f = Fixture::get();
    let upstream = NixKey::generate("upstream-test-1");
    let a_store = ChrootStore::signed(&upstream, &f.all());
    let empty = ChrootStore::empty();
    // A relay's operator knows its public address; AutoNAT confirms it too, later.
    let mut relay_args = vec![
        "--relay-server".to_owned(),
        "--announce-addr".to_owned(),
        RELAY_ADDR.to_string(),
    ];
    relay_args.extend(relay_extra.iter().map(|s| s.to_string()));
    let relay = serve(
        &lab,
        (Host::Internet, RELAY_ADDR, FRONT_PORT),
        empty.root(),
        &relay_args,
    );
    let second_args = ["--announce-addr".to_owned(), SERVER_ADDR.to_string()];
    let second_public = serve(
        &lab,
        (Host::Server, SERVER_ADDR, FRONT_PORT),
        empty.root(),
        &second_args,
    );
    let relay_addr = public_addr(&lab, &relay, RELAY_ADDR);
    let second_addr = public_addr(&lab, &second_public, SERVER_ADDR);
    let mut home_args = vec![
        "--bootstrap-peers".to_owned(),
        format!("{relay_addr},{second_addr}"),
        "--relay-servers".to_owned(),
        relay_addr,
        "--trusted-public-key".to_owned(),
        upstream.public.clone(),
        // Fronts on every address of the home: a port forward can then reach A's.
        "--listen".to_owned(),
        "0.0.0.0".to_owned(),
    ];
    home_args.extend(home_extra.iter().map(|s| s.to_string()));
    let home = |host| (host, Ipv4Addr::UNSPECIFIED, FRONT_PORT);
    let a = serve(&lab, home(Host::Home1), a_store.root(), &home_args);
    let b_store = ChrootStore::empty();
    let b_started = Instant::now();
    let b = serve(&lab, home(Host::Home2), b_store.root(), &home_args);
    Some(World {
        lab,
        upstream,
        a_store,
        relay,
        _second_public: second_public,
        a,
        b,
        b_started,
    })
}

/// `nix copy` run in home 2 from B's front, trusting only the fixture's upstream key.
pub fn nix_copy_in_home2(w: &World, dest: &ChrootStore, paths: &[&str]) -> Output {
    nix_copy_from_node(&w.lab, &w.b, &w.upstream.public, dest, paths)
}

/// `nix copy` run in `node`'s host from its front, trusting only `key`.
pub fn nix_copy_from_node(
    lab: &NatLab,
    node: &Node,
    key: &str,
    dest: &ChrootStore,
    paths: &[&str],
) -> Output {
    nix_copy_with(lab.command(node.host, "nix"), &node.front, dest, key, paths)
}
