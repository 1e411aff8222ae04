//! Counting and throttling, checked on a simulated clock, in memory and over real swarms.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use libp2p::futures::io::Cursor;
use libp2p::futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::multiaddr::Protocol;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, StreamProtocol, Swarm, SwarmBuilder};
use tokio::sync::mpsc;

use super::muxer::Counted;
use super::throttle::*;
use super::*;

const MIB: usize = 1024 * 1024;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn bucket_grants_the_burst_then_refills_at_the_rate() {
    let t0 = Instant::now();
    let mut bucket = Bucket::new(4 * MIB as u64, t0);
    // Burst is a quarter second of the cap; a larger request is split, not overdrawn.
    assert_eq!(bucket.take(2 * MIB, t0), Ok(MIB));
    assert_eq!(bucket.take(1, t0), Err(MIN_WAIT));
    // 100 ms later: a tenth of the rate is available.
    assert_eq!(bucket.take(2 * MIB, t0 + ms(100)), Ok(419_430));
    // Never more than the burst, however long idle.
    assert_eq!(bucket.take(8 * MIB, t0 + Duration::from_secs(60)), Ok(MIB));
}

#[test]
fn bucket_small_caps() {
    let t0 = Instant::now();
    // Burst is at least 64 KiB; the shortest wait still applies at tiny deficits.
    let mut bucket = Bucket::new(1000, t0);
    assert_eq!(bucket.take(MIB, t0), Ok(64 * 1024));
    assert_eq!(bucket.take(1, t0), Err(MIN_WAIT));
    // 1 B/s: waits are a token's worth, not a busy loop.
    let mut bucket = Bucket::new(1, t0);
    assert_eq!(bucket.take(MIB, t0), Ok(64 * 1024));
    assert_eq!(bucket.take(1, t0), Err(Duration::from_secs(1)));
    // Half a token still grants one byte; the next wait covers that debt too.
    let t1 = t0 + ms(500);
    assert_eq!(bucket.take(10, t1), Ok(1));
    assert_eq!(bucket.take(10, t1), Err(ms(1500)));
    assert_eq!(bucket.take(10, t1 + ms(1500)), Ok(1));
}

#[test]
fn bucket_refunds_up_to_the_burst() {
    let t0 = Instant::now();
    let mut bucket = Bucket::new(4 * MIB as u64, t0);
    assert_eq!(bucket.take(1000, t0), Ok(1000));
    bucket.refund(600);
    bucket.refund(5000);
    assert_eq!(bucket.take(2 * MIB, t0), Ok(MIB));
}

#[test]
fn zero_cap_means_unlimited() {
    assert_eq!(Traffic::new(Some(0)).cap(), None);
    assert!(Traffic::new(Some(0)).outbound.is_none());
    assert_eq!(Traffic::new(Some(7)).cap(), Some(7));
}

/// 8 MiB at 4 MiB/s on a simulated clock: 1 MiB burst + 7 MiB in 1.75 s, in ~10 ms steps.
#[test]
fn bucket_paces_a_long_transfer() {
    let t0 = Instant::now();
    let mut bucket = Bucket::new(4 * MIB as u64, t0);
    let (mut now, mut sent, mut waits) = (t0, 0, 0);
    while sent < 8 * MIB {
        match bucket.take((8 * MIB - sent).min(256 * 1024), now) {
            Ok(n) => sent += n,
            Err(delay) => {
                waits += 1;
                now += delay;
            }
        }
    }
    assert_eq!(sent, 8 * MIB);
    let elapsed = (now - t0).as_secs_f64();
    assert!((1.74..=1.77).contains(&elapsed), "{elapsed}");
    assert!((170..=180).contains(&waits), "{waits}");
}

/// Counts how often a future is polled, to catch busy loops.
struct PollCount<F> {
    inner: Pin<Box<F>>,
    polls: u32,
}

impl<F: Future> Future for PollCount<F> {
    type Output = (F::Output, u32);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.polls += 1;
        let output = ready!(self.inner.as_mut().poll(cx));
        Poll::Ready((output, self.polls))
    }
}

fn poll_count<F: Future>(inner: F) -> PollCount<F> {
    PollCount {
        inner: Box::pin(inner),
        polls: 0,
    }
}

#[tokio::test]
async fn substreams_count_per_peer_and_in_total() {
    let traffic = Traffic::new(None);
    let (alice, bob) = (PeerId::random(), PeerId::random());
    let direct = |peer| {
        Counted::new(
            Cursor::new(Vec::new()),
            traffic.counters(peer),
            traffic.clone(),
            true,
        )
    };

    let mut to_alice = direct(alice);
    to_alice.write_all(&[1; 1000]).await.unwrap();
    let mut from_alice = Counted::new(
        Cursor::new(vec![2; 300]),
        traffic.counters(alice),
        traffic.clone(),
        true,
    );
    let mut read = Vec::new();
    from_alice.read_to_end(&mut read).await.unwrap();
    assert_eq!(read.len(), 300);
    let mut to_bob = direct(bob);
    to_bob.write_all(&[3; 50]).await.unwrap();
    // Relayed bytes count for the peer but not in the total.
    let mut relayed = Counted::new(
        Cursor::new(Vec::new()),
        traffic.counters(bob),
        traffic.clone(),
        false,
    );
    relayed.write_all(&[4; 7]).await.unwrap();

    assert_eq!(traffic.totals(&alice), Some((300, 1000)));
    assert_eq!(traffic.totals(&bob), Some((0, 57)));
    assert_eq!(traffic.totals(&PeerId::random()), None);
    assert_eq!(traffic.total(), (300, 1050));
    let all = traffic.peer_totals();
    assert_eq!(all.len(), 2);
    assert_eq!(all[&alice], (300, 1000));
}

/// 8 MiB out and 8 MiB in at once under a 4 MiB/s cap: each direction has its own bucket,
/// so both take ~1.75 s; throttled polls wait on a timer instead of spinning.
#[tokio::test]
async fn throttles_each_direction_without_busy_looping() {
    let traffic = Traffic::new(Some(4 * MIB as u64));
    let peer = PeerId::random();
    let mut writer = Counted::new(
        Cursor::new(Vec::new()),
        traffic.counters(peer),
        traffic.clone(),
        true,
    );
    let mut reader = Counted::new(
        Cursor::new(vec![0; 8 * MIB]),
        traffic.counters(peer),
        traffic.clone(),
        true,
    );
    let start = std::time::Instant::now();
    let write = poll_count(async {
        for _ in 0..8 * 16 {
            writer.write_all(&[0; 64 * 1024]).await.unwrap();
        }
    });
    let read = poll_count(async {
        let mut buf = vec![0; 64 * 1024];
        let mut total = 0;
        loop {
            match reader.read(&mut buf).await.unwrap() {
                0 => return total,
                n => total += n,
            }
        }
    });
    let (((), write_polls), (read_bytes, read_polls)) = libp2p::futures::join!(write, read);
    let elapsed = start.elapsed().as_secs_f64();

    assert_eq!(read_bytes, 8 * MIB);
    assert_eq!(
        traffic.totals(&peer),
        Some((8 * MIB as u64, 8 * MIB as u64))
    );
    // At least 7 MiB / 4 MiB/s after the burst; the upper bound only allows for a busy
    // machine (the pacing itself is checked exactly in `bucket_paces_a_long_transfer`).
    assert!((1.7..=6.0).contains(&elapsed), "{elapsed}");
    // ~175 timer waits per direction; a busy loop would be many thousands.
    assert!(
        write_polls < 400 && read_polls < 400,
        "{write_polls} {read_polls}"
    );
    // Each direction waited for its bucket, and the one that set the pace most of the transfer
    // (timers, however many, of one write or read count as one wait). Both have the same cap, so
    // which one that is depends on scheduling: data that arrives no faster than the reader's
    // bucket refills leaves the reader little to wait for.
    let waits = traffic.cap_waits();
    let longest = waits
        .inbound
        .waited
        .max(waits.outbound.waited)
        .as_secs_f64();
    assert!((0.5..=elapsed).contains(&longest), "{waits:?}");
    let directions = [
        ("in", waits.inbound, read_polls),
        ("out", waits.outbound, write_polls),
    ];
    for (direction, waits, polls) in directions {
        let waited = waits.waited.as_secs_f64();
        println!(
            "{direction}: {} waits, {waited:.3} s waited of {elapsed:.3} s",
            waits.waits
        );
        // A wait is at least one pending poll.
        assert!(
            (1..=polls as u64).contains(&waits.waits),
            "{direction}: {waits:?}"
        );
        assert!(waited <= elapsed, "{direction}: {waits:?}");
    }
    assert_eq!(Traffic::new(None).cap_waits(), BandwidthWaits::default());
}

#[derive(NetworkBehaviour)]
struct TestBehaviour {
    relay: relay::client::Behaviour,
    relay_server: Toggle<relay::Behaviour>,
    stream: libp2p_stream::Behaviour,
}

const PROTOCOL: StreamProtocol = StreamProtocol::new("/peerix/test-traffic/1");

/// The wiring from the module docs.
fn swarm(traffic: &Arc<Traffic>, relay_server: bool) -> Swarm<TestBehaviour> {
    let mut relay_client = None;
    SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_other_transport(|key| {
            let tcp_config = tcp::Config::default().nodelay(true);
            let (transport, relay) = build_transport(
                key,
                tcp_config,
                true,
                traffic,
                DialedFrom::default(),
                Default::default(),
            )?;
            relay_client = Some(relay);
            Ok::<_, BoxError>(transport)
        })
        .unwrap()
        .with_behaviour(|key| TestBehaviour {
            relay: relay_client.take().unwrap(),
            relay_server: relay_server
                .then(|| relay::Behaviour::new(key.public().to_peer_id(), Default::default()))
                .into(),
            stream: libp2p_stream::Behaviour::new(),
        })
        .unwrap()
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(30)))
        .build()
}

struct Node {
    id: PeerId,
    control: libp2p_stream::Control,
}

impl Node {
    fn of(swarm: &Swarm<TestBehaviour>) -> Self {
        Self {
            id: *swarm.local_peer_id(),
            control: swarm.behaviour().stream.new_control(),
        }
    }
}

type Events = mpsc::UnboundedReceiver<SwarmEvent<TestBehaviourEvent>>;

/// Drives `swarm` in a task, forwarding its events while anyone listens.
fn run(mut swarm: Swarm<TestBehaviour>) -> Events {
    let (sender, events) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let _ = sender.send(swarm.select_next_some().await);
        }
    });
    events
}

async fn wait_for<T>(
    events: &mut Events,
    mut wanted: impl FnMut(SwarmEvent<TestBehaviourEvent>) -> Option<T>,
) -> T {
    loop {
        if let Some(found) = wanted(events.recv().await.unwrap()) {
            return found;
        }
    }
}

fn new_listen_addr(event: SwarmEvent<TestBehaviourEvent>) -> Option<Multiaddr> {
    match event {
        SwarmEvent::NewListenAddr { address, .. } => Some(address),
        _ => None,
    }
}

fn connected_to(peer: PeerId) -> impl FnMut(SwarmEvent<TestBehaviourEvent>) -> Option<()> {
    move |event| match event {
        SwarmEvent::ConnectionEstablished { peer_id, .. } if peer_id == peer => Some(()),
        _ => None,
    }
}

/// Two swarms, the second connected to the first over `addr`, left running in tasks.
async fn connected_pair(addr: &str, traffic: [&Arc<Traffic>; 2]) -> [Node; 2] {
    let (mut listener, mut dialer) = (swarm(traffic[0], false), swarm(traffic[1], false));
    let nodes = [Node::of(&listener), Node::of(&dialer)];
    listener.listen_on(addr.parse().unwrap()).unwrap();
    let mut listener_events = run(listener);
    let addr = wait_for(&mut listener_events, new_listen_addr).await;
    dialer.dial(addr).unwrap();
    let mut dialer_events = run(dialer);
    wait_for(&mut dialer_events, connected_to(nodes[0].id)).await;
    wait_for(&mut listener_events, connected_to(nodes[1].id)).await;
    nodes
}

/// Sends `len` bytes from `from` to `to` on a new stream; returns the time it took.
async fn send(from: &mut Node, to: &mut Node, len: usize) -> Duration {
    let mut incoming = to.control.accept(PROTOCOL).unwrap();
    let read = tokio::spawn(async move {
        let (peer, mut stream) = incoming.next().await.unwrap();
        let mut data = Vec::new();
        stream.read_to_end(&mut data).await.unwrap();
        (peer, data.len())
    });
    let start = std::time::Instant::now();
    let mut stream = from.control.open_stream(to.id, PROTOCOL).await.unwrap();
    stream.write_all(&vec![7; len]).await.unwrap();
    stream.close().await.unwrap();
    assert_eq!(read.await.unwrap(), (from.id, len));
    start.elapsed()
}

async fn check_counts(addr: &str) {
    const LEN: u64 = 256 * 1024;
    let traffic = [Traffic::new(None), Traffic::new(None)];
    let [mut listener, mut dialer] = connected_pair(addr, [&traffic[0], &traffic[1]]).await;
    send(&mut dialer, &mut listener, LEN as usize).await;

    let (dialer_in, dialer_out) = traffic[1].totals(&listener.id).unwrap();
    let (listener_in, listener_out) = traffic[0].totals(&dialer.id).unwrap();
    // The payload plus multistream-select negotiation; below it noise/yamux/QUIC framing
    // is not counted.
    assert!((LEN..LEN + 256).contains(&dialer_out), "{dialer_out}");
    assert_eq!(listener_in, dialer_out);
    assert!(
        listener_out < 256 && dialer_in <= listener_out,
        "{listener_out} {dialer_in}"
    );
    assert_eq!(traffic[0].total(), (listener_in, listener_out));
    assert_eq!(traffic[1].total(), (dialer_in, dialer_out));
}

#[tokio::test]
async fn counts_a_real_tcp_connection() {
    let test = check_counts("/ip4/127.0.0.1/tcp/0");
    tokio::time::timeout(Duration::from_secs(30), test)
        .await
        .unwrap();
}

#[tokio::test]
async fn counts_a_real_quic_connection() {
    let test = check_counts("/ip4/127.0.0.1/udp/0/quic-v1");
    tokio::time::timeout(Duration::from_secs(30), test)
        .await
        .unwrap();
}

/// 3 MiB at 2 MiB/s on both ends: the 512 KiB burst, then at least 1.25 s.
#[tokio::test]
async fn throttles_a_real_transfer() {
    let test = async {
        let cap = Some(2 * MIB as u64);
        let traffic = [Traffic::new(cap), Traffic::new(cap)];
        let [mut listener, mut dialer] =
            connected_pair("/ip4/127.0.0.1/tcp/0", [&traffic[0], &traffic[1]]).await;
        send(&mut dialer, &mut listener, 3 * MIB).await
    };
    let elapsed = tokio::time::timeout(Duration::from_secs(30), test)
        .await
        .unwrap();
    assert!((1.2..=8.0).contains(&elapsed.as_secs_f64()), "{elapsed:?}");
}

/// A relayed connection counts for the remote peer; the total has its bytes once, inside
/// the (larger: noise and yamux framing) traffic of the connection to the relay.
#[tokio::test]
async fn relayed_connections_count_for_the_peer_and_once_in_the_total() {
    // Below the relay's default 128 KiB limit per circuit.
    const LEN: u64 = 64 * 1024;
    let test = async {
        let traffic = [Traffic::new(None), Traffic::new(None), Traffic::new(None)];
        let mut relay = swarm(&traffic[0], true);
        let relay_id = *relay.local_peer_id();
        relay
            .listen_on("/ip4/127.0.0.1/tcp/0".parse().unwrap())
            .unwrap();
        let relay_addr = loop {
            if let SwarmEvent::NewListenAddr { address, .. } = relay.select_next_some().await {
                break address;
            }
        };
        // Reservations carry the relay's external addresses and fail without one.
        relay.add_external_address(relay_addr.clone());
        let _relay_events = run(relay);
        let circuit = relay_addr
            .with(Protocol::P2p(relay_id))
            .with(Protocol::P2pCircuit);

        let mut listener = swarm(&traffic[1], false);
        let mut listener_node = Node::of(&listener);
        listener.listen_on(circuit.clone()).unwrap();
        let mut listener_events = run(listener);
        wait_for(&mut listener_events, new_listen_addr).await;
        let mut dialer = swarm(&traffic[2], false);
        let mut dialer_node = Node::of(&dialer);
        dialer
            .dial(circuit.with(Protocol::P2p(listener_node.id)))
            .unwrap();
        let mut dialer_events = run(dialer);
        wait_for(&mut dialer_events, connected_to(listener_node.id)).await;
        send(&mut dialer_node, &mut listener_node, LEN as usize).await;

        let (_, relayed_out) = traffic[2].totals(&listener_node.id).unwrap();
        assert!((LEN..LEN + 256).contains(&relayed_out), "{relayed_out}");
        let (relayed_in, _) = traffic[1].totals(&dialer_node.id).unwrap();
        assert_eq!(relayed_in, relayed_out);
        for (traffic, bytes) in [(&traffic[2], relayed_out), (&traffic[1], relayed_in)] {
            let via_relay = traffic.totals(&relay_id).unwrap();
            assert!(via_relay.0.max(via_relay.1) > bytes, "{via_relay:?}");
            assert_eq!(traffic.total(), via_relay);
        }
        let (relay_in, relay_out) = traffic[0].total();
        assert!(relay_in > LEN && relay_out > LEN, "{relay_in} {relay_out}");
    };
    tokio::time::timeout(Duration::from_secs(30), test)
        .await
        .unwrap();
}
