//! Peers that hold Bitswap streams open: stalled in a message, idle, or opened by the hundred
//! and never written to, by one identity or by fifty from one address. The node closes them at
//! its deadlines, resets what is past its caps at once, still answers an honest peer, and gives
//! every slot back when a stream goes.

#[path = "common/stream_swarm.rs"]
mod stream_swarm;

use stream_swarm::stream_swarm;

use std::time::{Duration, Instant};

use futures_util::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, StreamProtocol};
use peerix_node::bitswap::PROTOCOL;
use peerix_node::{start, BitswapDeadlines, InboundStreamLimits, NodeConfig, NodeHandle, Protocol};
use tempfile::TempDir;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

/// How long a stream past a cap may take to be reset, asserted generously (it is one round trip).
const PROMPT: Duration = Duration::from_secs(2);
/// How long a stream that must stay open is watched.
const WATCH: Duration = Duration::from_millis(1500);

async fn node(dir: &TempDir, name: &str, configure: impl FnOnce(&mut NodeConfig)) -> NodeHandle {
    let listen = vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()];
    let mut config = NodeConfig::offline(dir.path().join(name), listen);
    configure(&mut config);
    start(config).await.unwrap()
}

async fn addr_of(node: &NodeHandle) -> Multiaddr {
    node.status().await.unwrap().listen_addrs[0]
        .clone()
        .with(Protocol::P2p(node.peer_id()))
}

/// A bare libp2p peer of its own identity, connected to `node`.
struct RawPeer {
    id: PeerId,
    control: libp2p_stream::Control,
    node: PeerId,
    addr: Multiaddr,
    dials: mpsc::UnboundedSender<Multiaddr>,
    connected: mpsc::UnboundedReceiver<()>,
}

impl RawPeer {
    async fn connect(node: PeerId, addr: Multiaddr) -> Self {
        let mut swarm = stream_swarm(Duration::from_secs(60));
        let (id, control) = (*swarm.local_peer_id(), swarm.behaviour().new_control());
        let (dials, mut to_dial) = mpsc::unbounded_channel::<Multiaddr>();
        let (connections, connected) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    event = swarm.select_next_some() => match event {
                        SwarmEvent::ConnectionEstablished { .. } => {
                            let _ = connections.send(());
                        }
                        SwarmEvent::OutgoingConnectionError { error, .. } => panic!("dial: {error}"),
                        _ => {}
                    },
                    Some(addr) = to_dial.recv() => swarm.dial(addr).unwrap(),
                }
            }
        });
        let mut peer = Self {
            id,
            control,
            node,
            addr,
            dials,
            connected,
        };
        peer.reconnect().await;
        peer
    }

    async fn reconnect(&mut self) {
        self.dials.send(self.addr.clone()).unwrap();
        tokio::time::timeout(Duration::from_secs(10), self.connected.recv())
            .await
            .expect("connected within 10 s");
    }

    async fn open(&mut self) -> Option<libp2p::Stream> {
        self.control
            .open_stream(self.node, StreamProtocol::new(PROTOCOL))
            .await
            .ok()
    }

    /// Opens `count` Bitswap streams one after another and writes nothing on them. Each is
    /// watched until the node closes it: `closed` receives how long it lived (a stream that
    /// could not even be opened counts as closed at once). Dropping the set drops the streams.
    async fn hold_streams(
        &mut self,
        count: usize,
        closed: &mpsc::UnboundedSender<Duration>,
    ) -> JoinSet<()> {
        let mut held = JoinSet::new();
        for _ in 0..count {
            let opened = Instant::now();
            let Some(mut stream) = self.open().await else {
                let _ = closed.send(opened.elapsed());
                continue;
            };
            let closed = closed.clone();
            held.spawn(async move {
                let _ = stream.read(&mut [0u8; 1]).await;
                let _ = closed.send(opened.elapsed());
            });
        }
        held
    }

    /// Holds `cap` streams, none of them reset, and sees one more reset.
    async fn fill_its_cap(
        &mut self,
        cap: usize,
        closed: &mut mpsc::UnboundedReceiver<Duration>,
        closed_sender: &mpsc::UnboundedSender<Duration>,
    ) -> JoinSet<()> {
        let held = self.hold_streams(cap, closed_sender).await;
        let reset = closed_streams(closed).await;
        assert!(reset.is_empty(), "{} slots not given back", reset.len());
        let one_more = self.hold_streams(1, closed_sender).await;
        assert_eq!(closed_streams(closed).await.len(), 1, "past the cap again");
        drop(one_more);
        held
    }
}

/// The lifetimes `closed` receives, each within 300 ms of the one before (the first within
/// `WATCH`).
async fn closed_streams(closed: &mut mpsc::UnboundedReceiver<Duration>) -> Vec<Duration> {
    let mut lifetimes = Vec::new();
    let mut wait = WATCH;
    while let Ok(Some(lifetime)) = tokio::time::timeout(wait, closed.recv()).await {
        lifetimes.push(lifetime);
        wait = Duration::from_millis(300);
    }
    lifetimes
}

/// How long a fresh node takes to fetch a small file from `node` over Bitswap.
async fn honest_fetch(dir: &TempDir, node: &NodeHandle) -> Duration {
    let file = dir.path().join("honest-content");
    let bytes: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&file, &bytes).unwrap();
    let cid = node.add_file(&file).await.unwrap();
    let reader = self::node(dir, "honest", |_| {}).await;
    reader.dial(addr_of(node).await).await.unwrap();
    let started = Instant::now();
    let mut chunks = reader.cat_from(cid, vec![node.peer_id()]);
    let mut fetched = Vec::new();
    while let Some(chunk) = tokio::time::timeout(Duration::from_secs(30), chunks.recv())
        .await
        .expect("the honest peer is answered")
    {
        fetched.extend_from_slice(&chunk.unwrap());
    }
    assert!(fetched == bytes, "the honest peer got other bytes");
    started.elapsed()
}

/// Opens one stream, writes `write` on it, and returns how long the node kept it open.
async fn stream_lifetime(deadlines: BitswapDeadlines, write: &[u8]) -> Duration {
    let dir = TempDir::new().unwrap();
    let node = node(&dir, "node", |c| c.bitswap_deadlines = deadlines).await;
    let mut peer = RawPeer::connect(node.peer_id(), addr_of(&node).await).await;
    // Started before the node can start its own clock: on negotiation, or on the first byte.
    let started = Instant::now();
    let mut stream = peer.open().await.expect("a stream");
    if !write.is_empty() {
        stream.write_all(write).await.unwrap();
        stream.flush().await.unwrap();
    }
    let read = tokio::time::timeout(Duration::from_secs(20), stream.read(&mut [0u8; 1])).await;
    let lifetime = started.elapsed();
    assert!(
        matches!(read, Ok(Ok(0) | Err(_))),
        "the stream was not closed by the node: {read:?}"
    );
    lifetime
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_message_is_cut_off_at_the_message_deadline() {
    let deadlines = BitswapDeadlines {
        idle: Duration::from_secs(60),
        message: Duration::from_secs(1),
    };
    // A message announced as 100 bytes, of which 10 come.
    let lifetime = stream_lifetime(deadlines, &[&[100u8][..], &[0u8; 10]].concat()).await;
    println!("stalled message closed after {lifetime:?}");
    assert!(lifetime >= deadlines.message, "closed before the deadline");
    assert!(
        lifetime < deadlines.message + Duration::from_secs(5),
        "closed only after {lifetime:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_stream_is_closed_at_the_idle_deadline() {
    let deadlines = BitswapDeadlines {
        idle: Duration::from_secs(1),
        message: Duration::from_secs(60),
    };
    let lifetime = stream_lifetime(deadlines, &[]).await;
    println!("idle stream closed after {lifetime:?}");
    assert!(lifetime >= deadlines.idle, "closed before the deadline");
    assert!(
        lifetime < deadlines.idle + Duration::from_secs(5),
        "closed only after {lifetime:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_past_its_stream_cap_is_reset_and_gets_its_slots_back() {
    let dir = TempDir::new().unwrap();
    let node = node(&dir, "node", |_| {}).await;
    let cap = InboundStreamLimits::default().per_peer;
    let excess = 44;
    let mut flooder = RawPeer::connect(node.peer_id(), addr_of(&node).await).await;
    let (closed_sender, mut closed) = mpsc::unbounded_channel();

    let opening = Instant::now();
    let held = flooder.hold_streams(cap + excess, &closed_sender).await;
    let opened_in = opening.elapsed();
    let reset = closed_streams(&mut closed).await;
    let slowest = reset.iter().max().copied().unwrap_or_default();
    println!(
        "{} streams opened in {opened_in:?}: {} reset, the slowest after {slowest:?}",
        cap + excess,
        reset.len()
    );
    assert_eq!(
        reset.len(),
        excess,
        "only the streams past the cap are reset"
    );
    assert!(slowest < PROMPT, "a reset took {slowest:?}");

    let latency = honest_fetch(&dir, &node).await;
    println!("an honest peer's file arrived in {latency:?} meanwhile");
    assert!(latency < Duration::from_secs(5), "the honest peer waited");

    // Its streams gone, the flooder may hold as many again, and not one more.
    drop(held);
    tokio::time::sleep(Duration::from_secs(1)).await;
    while closed.try_recv().is_ok() {}
    let held_again = flooder.fill_its_cap(cap, &mut closed, &closed_sender).await;

    // The connection dies with the streams on it: the slots come back all the same.
    node.disconnect(flooder.id).await.unwrap();
    let ended = closed_streams(&mut closed).await;
    assert_eq!(ended.len(), cap, "streams that outlived their connection");
    flooder.reconnect().await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let held_at_last = flooder.fill_its_cap(cap, &mut closed, &closed_sender).await;
    drop((held_again, held_at_last));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_identities_from_one_address_stay_within_the_global_cap() {
    let dir = TempDir::new().unwrap();
    let limits = InboundStreamLimits {
        per_peer: 8,
        total: 100,
    };
    let node = node(&dir, "node", |c| c.inbound_streams = limits).await;
    let addr = addr_of(&node).await;
    let (closed_sender, mut closed) = mpsc::unbounded_channel();
    let mut held = Vec::new();
    let opening = Instant::now();
    for _ in 0..50 {
        let mut flooder = RawPeer::connect(node.peer_id(), addr.clone()).await;
        // Its swarm runs on by itself, so the connection stays when the peer goes.
        held.push(flooder.hold_streams(limits.per_peer, &closed_sender).await);
    }
    let opened = 50 * limits.per_peer;
    let reset = closed_streams(&mut closed).await;
    println!(
        "{opened} streams from 50 identities opened in {:?}: {} reset, {} live",
        opening.elapsed(),
        reset.len(),
        opened - reset.len()
    );
    assert_eq!(
        opened - reset.len(),
        limits.total,
        "live streams past the global cap"
    );
}
