//! NAT traversal on loopback: relay reservations, relayed connections and their limits, hole
//! punching, and what the status says about reachability. Nodes that must stay relay-only
//! listen on no direct address, so that hole punching has nothing to dial.

use std::future::Future;
use std::time::Duration;

use libp2p::futures::{AsyncReadExt, AsyncWriteExt};
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId, StreamProtocol};
use peerix_node::{
    start, Incoming, NodeConfig, NodeError, NodeHandle, NodeStatus, PeerEvent, RelayLimits,
};
use tempfile::TempDir;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::timeout;

const PROTOCOL: StreamProtocol = StreamProtocol::new("/peerix/test-relay/1");
const KIB: usize = 1024;
const WAIT: Duration = Duration::from_secs(30);

async fn node(dir: &TempDir, name: &str, configure: impl FnOnce(&mut NodeConfig)) -> NodeHandle {
    let mut config = NodeConfig::offline(dir.path().join(name), vec![]);
    config.app_protocols = vec![PROTOCOL];
    configure(&mut config);
    start(config).await.expect("node starts")
}

fn loopback(port: u16) -> Multiaddr {
    format!("/ip4/127.0.0.1/tcp/{port}").parse().unwrap()
}

/// A relay on a fixed loopback port, which it announces: a relay hands its addresses out in
/// reservations and serves no one without one. Returns it with its address.
async fn relay(dir: &TempDir, name: &str, limits: RelayLimits) -> (NodeHandle, Multiaddr) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let relay = node(dir, name, |c| {
        c.listen_addrs = vec![loopback(port)];
        c.announce_addrs = vec![loopback(port)];
        c.relay_server = true;
        c.relay_limits = limits;
    })
    .await;
    let addr = loopback(port).with(Protocol::P2p(relay.peer_id()));
    (relay, addr)
}

/// Polls `node`'s status until `ready` holds (bounded); returns that status.
async fn status_when(
    node: &NodeHandle,
    what: &str,
    ready: impl Fn(&NodeStatus) -> bool,
) -> NodeStatus {
    let polled = async {
        loop {
            let status = node.status().await.unwrap();
            if ready(&status) {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    match timeout(WAIT, polled).await {
        Ok(status) => status,
        Err(_) => panic!("no {what} within {WAIT:?}: {:?}", node.status().await),
    }
}

/// `node` with a live reservation at the relay; returns its relayed address.
async fn reserved(node: &NodeHandle) -> Multiaddr {
    // The reservation, its external address and its listen address are reported by separate
    // swarm events: wait until all three are there.
    let circuit_listener = |s: &NodeStatus| {
        s.listen_addrs
            .iter()
            .any(|a| a.iter().any(|p| p == Protocol::P2pCircuit))
    };
    let status = status_when(node, "relay reservation", |s| {
        s.relayed_addrs
            .first()
            .is_some_and(|addr| s.external_addrs.contains(addr))
            && circuit_listener(s)
    })
    .await;
    let addr = status.relayed_addrs[0].clone();
    assert!(addr.iter().any(|p| p == Protocol::P2pCircuit), "{addr}");
    addr
}

/// `<relay>/p2p-circuit/p2p/<peer>`: all a dialer needs to know.
fn circuit(relay: &Multiaddr, peer: PeerId) -> Multiaddr {
    relay
        .clone()
        .with(Protocol::P2pCircuit)
        .with(Protocol::P2p(peer))
}

async fn connection_to(node: &NodeHandle, peer: PeerId) -> (bool, bool) {
    let status = node.status().await.unwrap();
    let info = status
        .peers
        .iter()
        .find(|p| p.peer_id == peer)
        .expect("connected");
    (info.direct, info.relayed)
}

async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    timeout(WAIT, future)
        .await
        .unwrap_or_else(|_| panic!("{what} took over {WAIT:?}"))
}

/// Writes `len` bytes on a new stream from `from` to `to`, which accepts it from `incoming`;
/// returns what `to` read before the stream ended or broke, and whether the writer saw it all
/// go out.
async fn send(from: &NodeHandle, to: PeerId, incoming: &mut Incoming, len: usize) -> (usize, bool) {
    let read = async {
        let (peer, mut stream) = incoming.next().await.expect("a stream");
        assert_eq!(peer, from.peer_id());
        let (mut total, mut buf) = (0, vec![0; 64 * KIB]);
        while let Ok(n @ 1..) = stream.read(&mut buf).await {
            total += n;
        }
        total
    };
    let write = async {
        let mut stream = from.open_stream(to, PROTOCOL).await.expect("a stream");
        stream.write_all(&vec![7; len]).await?;
        stream.close().await
    };
    let (read, written) = within("sending", async { tokio::join!(read, write) }).await;
    (read, written.is_ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relayed_peers_connect_but_transfer_only_directly() {
    let dir = TempDir::new().unwrap();
    let (_relay, relay_addr) = relay(&dir, "relay", RelayLimits::default()).await;
    let a = node(&dir, "a", |c| c.relay_servers = vec![relay_addr.clone()]).await;
    reserved(&a).await;
    let mut incoming = a.accept(PROTOCOL).unwrap();
    let mut a_events = a.peer_events();

    // B knows only the relay and A's peer id, and keeps transfers off relays.
    let b = node(&dir, "b", |_| {}).await;
    let found = within("dial", b.dial(circuit(&relay_addr, a.peer_id()))).await;
    assert_eq!(found.unwrap(), a.peer_id());
    assert_eq!(connection_to(&b, a.peer_id()).await, (false, true));
    match b.open_stream(a.peer_id(), PROTOCOL).await {
        Err(NodeError::OnlyRelayed(peer)) => assert_eq!(peer, a.peer_id()),
        other => panic!("a stream over the relay: {:?}", other.map(|_| ())),
    }

    // C would transfer over relays, but A does not accept it.
    let c = node(&dir, "c", |c| c.allow_relayed_transfers = true).await;
    within("dial", c.dial(circuit(&relay_addr, a.peer_id())))
        .await
        .unwrap();
    let refused = c.open_stream(a.peer_id(), PROTOCOL).await;
    assert!(
        matches!(&refused, Err(NodeError::Stream(e)) if e.contains("does not support")),
        "{:?}",
        refused.map(|_| ())
    );
    let nothing = timeout(Duration::from_secs(1), incoming.next()).await;
    assert!(nothing.is_err(), "A accepted a stream over the relay");

    // Neither side has a direct address to punch a hole to.
    let failed = async {
        loop {
            match a_events.recv().await {
                Ok(PeerEvent::HolePunchFailed { peer_id, error }) => {
                    assert!(!error.is_empty());
                    return peer_id;
                }
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => panic!("A stopped"),
            }
        }
    };
    let peer = within("hole punching to fail", failed).await;
    assert!(peer == b.peer_id() || peer == c.peer_id(), "{peer}");
    assert_eq!(connection_to(&b, a.peer_id()).await, (false, true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_limits_cut_long_transfers() {
    let dir = TempDir::new().unwrap();
    let limits = RelayLimits {
        max_circuit_bytes: 64 * KIB as u64,
        ..RelayLimits::default()
    };
    let (_relay, relay_addr) = relay(&dir, "relay", limits).await;
    let relayed = |c: &mut NodeConfig| c.allow_relayed_transfers = true;
    let a = node(&dir, "a", |c| {
        relayed(c);
        c.relay_servers = vec![relay_addr.clone()];
    })
    .await;
    reserved(&a).await;
    let b = node(&dir, "b", relayed).await;
    within("dial", b.dial(circuit(&relay_addr, a.peer_id())))
        .await
        .unwrap();
    assert_eq!(connection_to(&b, a.peer_id()).await, (false, true));

    let mut incoming = a.accept(PROTOCOL).unwrap();
    let to = a.peer_id();
    assert_eq!(
        send(&b, to, &mut incoming, 16 * KIB).await,
        (16 * KIB, true)
    );
    let (read, _) = send(&b, to, &mut incoming, 1024 * KIB).await;
    assert!(
        read < 64 * KIB,
        "{read} bytes went through a 64 KiB circuit"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hole_punching_gives_a_direct_connection_for_transfers() {
    let dir = TempDir::new().unwrap();
    let (relay, relay_addr) = relay(&dir, "relay", RelayLimits::default()).await;
    let direct = vec![loopback(0)];
    let a = node(&dir, "a", |c| {
        c.listen_addrs = direct.clone();
        c.relay_servers = vec![relay_addr.clone()];
    })
    .await;
    reserved(&a).await;
    let b = node(&dir, "b", |c| c.listen_addrs = direct.clone()).await;
    let mut b_events = b.peer_events();
    within("dial", b.dial(circuit(&relay_addr, a.peer_id())))
        .await
        .unwrap();

    status_when(&b, "direct connection", |s| {
        s.peers.iter().any(|p| p.peer_id == a.peer_id() && p.direct)
    })
    .await;
    // Only a direct connection offers the application protocol (transfers stay off relays).
    let identified = async {
        loop {
            match b_events.recv().await {
                Ok(PeerEvent::Identified { peer_id, protocols })
                    if peer_id == a.peer_id() && protocols.contains(&PROTOCOL) =>
                {
                    return;
                }
                Ok(_) => {}
                Err(e) => panic!("{e}"),
            }
        }
    };
    within("identify on the direct connection", identified).await;

    let via_relay = |s: &NodeStatus| {
        let relay = s.peers.iter().find(|p| p.peer_id == relay.peer_id());
        relay.map_or(0, |p| p.bytes_out)
    };
    let before = via_relay(&b.status().await.unwrap());
    let mut incoming = a.accept(PROTOCOL).unwrap();
    let sent = send(&b, a.peer_id(), &mut incoming, 256 * KIB).await;
    assert_eq!(sent, (256 * KIB, true));
    let after = via_relay(&b.status().await.unwrap());
    assert!(
        after - before < 16 * KIB as u64,
        "{} bytes went to the relay",
        after - before
    );

    // The relay confirms A's direct address (AutoNAT v2): A gives its reservation up.
    status_when(&a, "reservation dropped", |s| {
        s.nat_status == "public" && s.relayed_addrs.is_empty()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_reports_reachability_and_mapping() {
    let dir = TempDir::new().unwrap();
    let both = || vec![loopback(0), "/ip4/127.0.0.1/udp/0/quic-v1".parse().unwrap()];
    let a = node(&dir, "a", |c| c.listen_addrs = both()).await;
    let fresh = a.status().await.unwrap();
    assert_eq!(fresh.nat_status, "unknown");
    assert_eq!(fresh.nat_mapping, "unknown");
    assert!(fresh.relayed_addrs.is_empty());
    assert_eq!(fresh.listen_addrs.len(), 2, "{:?}", fresh.listen_addrs);

    let mut peers = Vec::new();
    for name in ["b", "c"] {
        let peer = node(&dir, name, |c| c.listen_addrs = both()).await;
        let tcp = peer.status().await.unwrap().listen_addrs;
        let tcp = tcp
            .iter()
            .find(|a| a.to_string().contains("/tcp/"))
            .unwrap();
        within(
            "dial",
            a.dial(tcp.clone().with(Protocol::P2p(peer.peer_id()))),
        )
        .await
        .unwrap();
        peers.push(peer);
    }
    // Dials leave from the listening port, so peers see A where it listens.
    for peer in &peers {
        let seen = status_when(peer, "A connected", |s| {
            s.peers.iter().any(|p| p.peer_id == a.peer_id())
        })
        .await;
        let seen = seen
            .peers
            .iter()
            .find(|p| p.peer_id == a.peer_id())
            .unwrap();
        assert!(
            fresh.listen_addrs.contains(seen.addr.as_ref().unwrap()),
            "{seen:?}"
        );
    }
    // Two peers saw the same port: loopback maps like an endpoint-independent NAT.
    status_when(&a, "mapping", |s| s.nat_mapping == "endpoint-independent").await;
    // AutoNAT v2: a peer dials A back from a fresh port.
    let public = status_when(&a, "reachability", |s| s.nat_status == "public").await;
    assert!(
        public.external_addrs.iter().any(|e| {
            // AutoNAT v1 confirms an address with our peer id appended; v2 without.
            let mut e = e.clone();
            if matches!(e.iter().last(), Some(Protocol::P2p(_))) {
                e.pop();
            }
            fresh.listen_addrs.contains(&e)
        }),
        "{public:?}"
    );

    // QUIC dials leave from the listening socket too.
    let quic = peers[0].status().await.unwrap().listen_addrs;
    let quic = quic
        .iter()
        .find(|a| a.to_string().contains("quic"))
        .unwrap();
    let d = node(&dir, "d", |c| c.listen_addrs = both()).await;
    let d_listens = d.status().await.unwrap().listen_addrs;
    within(
        "dial",
        d.dial(quic.clone().with(Protocol::P2p(peers[0].peer_id()))),
    )
    .await
    .unwrap();
    let seen = status_when(&peers[0], "D connected", |s| {
        s.peers.iter().any(|p| p.peer_id == d.peer_id())
    })
    .await;
    let seen = seen
        .peers
        .iter()
        .find(|p| p.peer_id == d.peer_id())
        .unwrap();
    assert!(d_listens.contains(seen.addr.as_ref().unwrap()), "{seen:?}");
    assert_eq!((seen.direct, seen.relayed), (true, false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_most_two_reservations_from_configured_or_met_relays() {
    let dir = TempDir::new().unwrap();
    let mut relays = Vec::new();
    for name in ["r1", "r2", "r3"] {
        relays.push(relay(&dir, name, RelayLimits::default()).await);
    }
    let addrs: Vec<Multiaddr> = relays.iter().map(|(_, addr)| addr.clone()).collect();
    let a = node(&dir, "a", |c| c.relay_servers = addrs.clone()).await;
    status_when(&a, "two reservations", |s| s.relayed_addrs.len() == 2).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(a.status().await.unwrap().relayed_addrs.len(), 2);

    // With none configured, a peer met that offers to relay is used.
    let b = node(&dir, "b", |c| c.bootstrap_peers = vec![addrs[2].clone()]).await;
    let relayed = reserved(&b).await;
    assert!(
        relayed
            .to_string()
            .contains(&relays[2].0.peer_id().to_string()),
        "{relayed}"
    );
}
