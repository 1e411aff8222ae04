//! Per-peer traffic accounting and a node-wide bandwidth cap.
//!
//! Both work at the muxer level: [`Traffic::wrap`] wraps a connection's [`StreamMuxerBox`] so
//! that every substream (inbound or outbound, any protocol) counts the bytes it reads and
//! writes against the remote peer and, when a cap is set, draws them from one token bucket per
//! direction shared by all connections. Counted bytes are substream payload: the security and
//! muxer framing below (TLS or Noise, yamux, QUIC) is not included, multistream-select
//! negotiation is.
//!
//! A relayed connection's bytes already travel inside a substream of the connection to the
//! relay, which is counted and throttled; [`Traffic::wrap_relayed`] therefore only counts them
//! for the remote peer, so they are neither charged twice nor added twice to [`Traffic::total`].
//!
//! [`build_transport`] builds every transport of the node this way (see `start` in lib.rs).
//!
//! Substreams must be polled inside a Tokio runtime with timers enabled (throttling sleeps on
//! `tokio::time`); the swarm built `.with_tokio()` and this crate's tasks are.

mod muxer;
#[cfg(test)]
mod tests;
mod throttle;

use std::collections::HashMap;
use std::error::Error;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use libp2p::core::muxing::{StreamMuxer, StreamMuxerBox};
use libp2p::core::transport::{Boxed, OptionalTransport, Transport};
use libp2p::core::upgrade::Version;
use libp2p::identity::Keypair;
use libp2p::{dns, noise, quic, relay, tcp, PeerId};

use muxer::CountedMuxer;
use throttle::Meter;
use tokio::time::Instant;

use crate::multiplex::Yamux;
use crate::secure::{Handshakes, Security};
use crate::status::BandwidthWaits;
use crate::tcp_dials::{DialedFrom, OneDialPerAddress};

/// What [`build_transport`] returns, ready for `with_other_transport`.
pub type CountedTransport = Boxed<(PeerId, StreamMuxerBox)>;

type BoxError = Box<dyn Error + Send + Sync>;

/// Shared traffic counters and bandwidth cap; see the module docs.
#[derive(Debug)]
pub struct Traffic {
    cap: Option<u64>,
    inbound: Option<Meter>,
    outbound: Option<Meter>,
    /// Entries are never removed: totals survive disconnects (a few dozen bytes per peer).
    peers: Mutex<HashMap<PeerId, Arc<Counters>>>,
    total: Counters,
}

#[derive(Debug, Default)]
struct Counters {
    inbound: AtomicU64,
    outbound: AtomicU64,
}

impl Counters {
    fn get(&self) -> (u64, u64) {
        (
            self.inbound.load(Ordering::Relaxed),
            self.outbound.load(Ordering::Relaxed),
        )
    }
}

impl Traffic {
    /// `cap` is in bytes per second, applied to inbound and outbound separately, across all
    /// connections. `None` (or `Some(0)`, which would stall the node) means unlimited.
    pub fn new(cap: Option<u64>) -> Arc<Self> {
        let cap = cap.filter(|&c| c > 0);
        let meter = |c| Meter::new(c, Instant::now());
        Arc::new(Self {
            cap,
            inbound: cap.map(meter),
            outbound: cap.map(meter),
            peers: Mutex::default(),
            total: Counters::default(),
        })
    }

    /// The cap in bytes per second per direction, if any.
    pub fn cap(&self) -> Option<u64> {
        self.cap
    }

    /// The waits the cap made substreams do since start (none without a cap).
    pub fn cap_waits(&self) -> BandwidthWaits {
        let waits = |meter: &Option<Meter>| meter.as_ref().map(Meter::waits).unwrap_or_default();
        BandwidthWaits {
            inbound: waits(&self.inbound),
            outbound: waits(&self.outbound),
        }
    }

    /// Counts and throttles every substream of a direct connection to `peer`.
    pub fn wrap(self: &Arc<Self>, peer: PeerId, muxer: StreamMuxerBox) -> StreamMuxerBox {
        self.wrap_with(peer, muxer, true)
    }

    /// Counts the substreams of a relayed connection to `peer` for that peer only (see the
    /// module docs).
    pub fn wrap_relayed(self: &Arc<Self>, peer: PeerId, muxer: StreamMuxerBox) -> StreamMuxerBox {
        self.wrap_with(peer, muxer, false)
    }

    fn wrap_with(
        self: &Arc<Self>,
        peer: PeerId,
        inner: StreamMuxerBox,
        direct: bool,
    ) -> StreamMuxerBox {
        StreamMuxerBox::new(CountedMuxer {
            inner,
            peer: self.counters(peer),
            traffic: self.clone(),
            direct,
        })
    }

    fn counters(&self, peer: PeerId) -> Arc<Counters> {
        lock(&self.peers).entry(peer).or_default().clone()
    }

    /// Bytes `(in, out)` per peer since start, including peers no longer connected.
    pub fn peer_totals(&self) -> HashMap<PeerId, (u64, u64)> {
        lock(&self.peers)
            .iter()
            .map(|(peer, c)| (*peer, c.get()))
            .collect()
    }

    /// Bytes `(in, out)` exchanged with `peer` since start, if it ever connected.
    pub fn totals(&self, peer: &PeerId) -> Option<(u64, u64)> {
        lock(&self.peers).get(peer).map(|c| c.get())
    }

    /// Bytes `(in, out)` over all direct connections since start; relayed bytes are part of
    /// the relay's connection and counted there once.
    pub fn total(&self) -> (u64, u64) {
        self.total.get()
    }
}

/// Boxes `transport` with every connection wrapped by [`Traffic::wrap`], or by
/// [`Traffic::wrap_relayed`] for the relay client transport (`direct` false).
fn counted<T, M>(transport: T, traffic: Arc<Traffic>, direct: bool) -> CountedTransport
where
    T: Transport<Output = (PeerId, M)> + Send + Unpin + 'static,
    T::Error: Send + Sync + 'static,
    T::Dial: Send + 'static,
    T::ListenerUpgrade: Send + 'static,
    M: StreamMuxer + Send + 'static,
    M::Substream: Send + 'static,
    M::Error: Send + Sync + 'static,
{
    transport
        .map(move |(peer, muxer), _| {
            (
                peer,
                traffic.wrap_with(peer, StreamMuxerBox::new(muxer), direct),
            )
        })
        .boxed()
}

/// The transport `SwarmBuilder`'s `.with_tcp(tcp_config, (tls, noise), yamux).with_quic()
/// .with_dns().with_relay_client(noise, yamux)` would build, with TCP's TLS preferring AES-GCM
/// (see `secure`) and every connection counted: for `.with_other_transport`. The relay client
/// behaviour goes to the swarm's behaviour.
pub(crate) fn build_transport(
    key: &Keypair,
    tcp_config: tcp::Config,
    quic: bool,
    traffic: &Arc<Traffic>,
    dialed_from: DialedFrom,
    handshakes: Arc<Handshakes>,
) -> Result<(CountedTransport, relay::client::Behaviour), BoxError> {
    let tcp = OneDialPerAddress::new(tcp::tokio::Transport::new(tcp_config), dialed_from)
        .upgrade(Version::V1Lazy)
        .authenticate(Security::new(key, handshakes)?)
        .multiplex(Yamux::new());
    // Without QUIC, QUIC addresses are neither listened on nor dialled: the transport does not
    // support them, so the swarm tries a peer's other addresses.
    let quic = match quic {
        true => OptionalTransport::some(quic::tokio::Transport::new(quic::Config::new(key))),
        false => OptionalTransport::none(),
    };
    let direct = counted(tcp, traffic.clone(), true)
        .or_transport(counted(quic, traffic.clone(), true))
        .map(|either, _| either.into_inner());
    let direct = dns::tokio::Transport::system(direct)?;

    let (relay_transport, relay_behaviour) = relay::client::new(key.public().to_peer_id());
    let relayed = relay_transport
        .upgrade(Version::V1Lazy)
        .authenticate(noise::Config::new(key)?)
        .multiplex(Yamux::new());
    // Relay first, like SwarmBuilder: only it accepts `/p2p-circuit` addresses.
    let transport = counted(relayed, traffic.clone(), false)
        .or_transport(direct)
        .map(|either, _| either.into_inner())
        .boxed();
    Ok((transport, relay_behaviour))
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded data is plain numbers, valid even if a holder panicked.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
