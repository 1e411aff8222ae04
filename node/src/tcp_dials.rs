//! One TCP dial per remote address from the listening port at a time: a newer dial to an
//! address ends the older one still connecting before it starts.
//!
//! Dials reuse the listening port so that peers observe the port a hole-punching peer must
//! dial. A socket pair can exist once, so while a dial from that port is still connecting (a
//! NAT that drops unsolicited packets keeps it waiting for seconds), libp2p makes a second dial
//! to the same address from a fresh port without saying so. The NAT gives that one another
//! public port: the peer observes us there, and a hole punch sent from it opens nothing on the
//! port the other side punches towards. The newer dial is the one wanted (a hole punch is
//! always the newest), and the older one would only reach the same listener.
//!
//! Even so, libp2p-tcp dials from a fresh port, still calling it a reuse, when the socket pair
//! from the listening port exists already (a second connection to the same address). So the
//! port each dial really left from is recorded ([`DialedFrom`]): a NAT observation grouped
//! under the listening port when it was another would make one mapping look like two.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use futures_util::future::{AbortHandle, Abortable, BoxFuture};
use futures_util::FutureExt;
use libp2p::core::transport::{DialOpts, ListenerId, PortUse, TransportError, TransportEvent};
use libp2p::core::Transport;
use libp2p::Multiaddr;
use tokio::sync::oneshot;

use crate::nat::{self, Transport as Kind};

/// A dial still connecting, as the next dial to its address sees it.
struct Connecting {
    id: u64,
    abort: AbortHandle,
    /// Closes once the dial's socket is gone.
    gone: oneshot::Receiver<()>,
}

type Table = Arc<Mutex<HashMap<SocketAddr, Connecting>>>;

/// Remote addresses remembered at most with the local port their dial left from: entries
/// leave when the connection is established; a dial whose upgrade fails leaves one behind.
const DIALED_FROM: usize = 1024;

/// Dials to one remote address remembered at once: more are being upgraded only in a flood.
const DIALS_PER_REMOTE: usize = 8;

/// The local port each TCP dial connected from, by remote address, in the order the dials
/// connected, until the connections made from them are established and take them
/// ([`DialedFrom::take`]): two dials to one address (the second from a fresh port) are told
/// apart in the order they finish, as their upgrades, alike, finish.
#[derive(Clone, Default)]
pub struct DialedFrom(Arc<Mutex<HashMap<SocketAddr, VecDeque<u16>>>>);

impl DialedFrom {
    fn record(&self, remote: SocketAddr, local_port: u16) {
        let mut ports = lock(&self.0);
        if ports.len() >= DIALED_FROM {
            ports.clear();
        }
        let pending = ports.entry(remote).or_default();
        if pending.len() >= DIALS_PER_REMOTE {
            pending.pop_front();
        }
        pending.push_back(local_port);
    }

    /// The local port of the oldest dial to `remote` not taken yet.
    pub fn take(&self, remote: &SocketAddr) -> Option<u16> {
        let mut ports = lock(&self.0);
        let pending = ports.get_mut(remote)?;
        let port = pending.pop_front();
        if pending.is_empty() {
            ports.remove(remote);
        }
        port
    }
}

/// A connected socket that can tell its two ends.
pub trait SocketEnds {
    fn local_addr(&self) -> Option<SocketAddr>;
    fn peer_addr(&self) -> Option<SocketAddr>;
}

impl SocketEnds for libp2p::tcp::tokio::TcpStream {
    fn local_addr(&self) -> Option<SocketAddr> {
        self.0.local_addr().ok()
    }

    fn peer_addr(&self) -> Option<SocketAddr> {
        self.0.peer_addr().ok()
    }
}

/// Wraps a TCP transport (its dials resolve once connected).
pub struct OneDialPerAddress<T> {
    inner: T,
    connecting: Table,
    next_id: u64,
    dialed_from: DialedFrom,
}

impl<T> OneDialPerAddress<T> {
    /// Wraps `inner`, telling `dialed_from` where each dial connected from.
    pub fn new(inner: T, dialed_from: DialedFrom) -> Self {
        Self {
            inner,
            connecting: Table::default(),
            next_id: 0,
            dialed_from,
        }
    }
}

impl<T> Transport for OneDialPerAddress<T>
where
    T: Transport<Error = io::Error> + Unpin,
    T::Dial: Send + Unpin + 'static,
    T::Output: SocketEnds + Send + 'static,
{
    type Output = T::Output;
    type Error = io::Error;
    type ListenerUpgrade = T::ListenerUpgrade;
    type Dial = BoxFuture<'static, io::Result<T::Output>>;

    fn listen_on(
        &mut self,
        id: ListenerId,
        addr: Multiaddr,
    ) -> Result<(), TransportError<io::Error>> {
        self.inner.listen_on(id, addr)
    }

    fn remove_listener(&mut self, id: ListenerId) -> bool {
        self.inner.remove_listener(id)
    }

    fn dial(
        &mut self,
        addr: Multiaddr,
        opts: DialOpts,
    ) -> Result<Self::Dial, TransportError<io::Error>> {
        let remote = match nat::split(&addr) {
            Some((Kind::Tcp, ip, port)) if opts.port_use == PortUse::Reuse => {
                SocketAddr::new(ip, port)
            }
            _ => return Ok(self.inner.dial(addr, opts)?.boxed()),
        };
        let dial = self.inner.dial(addr, opts)?;
        let id = self.next_id;
        self.next_id += 1;
        let (abort, registration) = AbortHandle::new_pair();
        let (gone_tx, gone) = oneshot::channel();
        let previous = lock(&self.connecting).insert(remote, Connecting { id, abort, gone });
        let previous = previous.map(|older| {
            tracing::debug!(%remote, "a newer dial ends the one still connecting");
            older.abort.abort();
            older.gone
        });
        let tracked = Tracked {
            dial: Abortable::new(dial, registration),
            _entry: Entry {
                table: self.connecting.clone(),
                remote,
                id,
                _gone: gone_tx,
            },
        };
        let dialed_from = self.dialed_from.clone();
        Ok(async move {
            if let Some(gone) = previous {
                // Closed (never sent on) once the older socket is dropped.
                let _ = gone.await;
            }
            match tracked.await {
                Ok(Ok(stream)) => {
                    let local = stream.local_addr();
                    // Dialling our own listening address from it makes a socket connected to
                    // itself (TCP's simultaneous open), where each handshake message comes back
                    // to its sender: a peer's loopback address can be ours.
                    if local.is_some() && local == stream.peer_addr() {
                        return Err(io::Error::new(
                            io::ErrorKind::ConnectionRefused,
                            "the address is this node's own listening address",
                        ));
                    }
                    if let Some(local) = local {
                        dialed_from.record(remote, local.port());
                    }
                    Ok(stream)
                }
                Ok(Err(e)) => Err(e),
                Err(_) => Err(io::Error::other(
                    "ended by a newer dial to the same address",
                )),
            }
        }
        .boxed())
    }

    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<TransportEvent<Self::ListenerUpgrade, io::Error>> {
        Pin::new(&mut self.inner).poll(cx)
    }
}

/// A dial and its table entry; fields drop in order, so the socket is gone before the entry.
struct Tracked<F> {
    dial: Abortable<F>,
    _entry: Entry,
}

impl<F: Future + Unpin> Future for Tracked<F> {
    type Output = Result<F::Output, futures_util::future::Aborted>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.dial).poll(cx)
    }
}

/// Leaves the table when the dial ends, unless a newer dial took the address over.
struct Entry {
    table: Table,
    remote: SocketAddr,
    id: u64,
    _gone: oneshot::Sender<()>,
}

impl Drop for Entry {
    fn drop(&mut self) {
        let mut table = lock(&self.table);
        if table.get(&self.remote).is_some_and(|c| c.id == self.id) {
            table.remove(&self.remote);
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The table stays consistent whatever a holder was doing.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use futures_util::future::poll_fn;
    use libp2p::core::transport::{DialOpts, ListenerId, PortUse, TransportEvent};
    use libp2p::core::Endpoint;
    use libp2p::tcp;

    use super::*;

    /// A dial to the node's own listening address, from that address, is refused rather than
    /// handed on as a socket connected to itself.
    #[tokio::test]
    async fn a_dial_to_its_own_listening_address_is_refused() {
        let mut transport = OneDialPerAddress::new(
            tcp::tokio::Transport::new(tcp::Config::default()),
            DialedFrom::default(),
        );
        let listen: Multiaddr = "/ip4/127.0.0.1/tcp/0".parse().unwrap();
        transport.listen_on(ListenerId::next(), listen).unwrap();
        let own = match poll_fn(|cx| Pin::new(&mut transport).poll(cx)).await {
            TransportEvent::NewAddress { listen_addr, .. } => listen_addr,
            _ => panic!("no listen address"),
        };
        let opts = DialOpts {
            role: Endpoint::Dialer,
            port_use: PortUse::Reuse,
        };
        let error = transport.dial(own, opts).unwrap().await.err();
        let error = error.expect("a socket connected to itself was handed on");
        assert_eq!(error.kind(), io::ErrorKind::ConnectionRefused, "{error}");
    }

    /// A second dial to an address already connected from the listening port leaves from a
    /// fresh port, though asked to reuse it; the recorded port is the one really used.
    #[tokio::test]
    async fn records_the_port_a_dial_really_left_from() {
        let dialed_from = DialedFrom::default();
        let mut transport = OneDialPerAddress::new(
            tcp::tokio::Transport::new(tcp::Config::default()),
            dialed_from.clone(),
        );
        let listen: Multiaddr = "/ip4/127.0.0.1/tcp/0".parse().unwrap();
        transport.listen_on(ListenerId::next(), listen).unwrap();
        let listen_port = match poll_fn(|cx| Pin::new(&mut transport).poll(cx)).await {
            TransportEvent::NewAddress { listen_addr, .. } => nat::split(&listen_addr).unwrap().2,
            _ => panic!("no listen address"),
        };
        let remote = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let remote_addr = remote.local_addr().unwrap();
        let accepting = tokio::spawn(async move {
            let mut sockets = Vec::new();
            for _ in 0..2 {
                sockets.push(remote.accept().await.unwrap());
            }
            sockets
        });
        let target: Multiaddr = format!("/ip4/127.0.0.1/tcp/{}", remote_addr.port())
            .parse()
            .unwrap();
        let opts = DialOpts {
            role: Endpoint::Dialer,
            port_use: PortUse::Reuse,
        };
        let first = transport.dial(target.clone(), opts).unwrap().await.unwrap();
        assert_eq!(dialed_from.take(&remote_addr), Some(listen_port));
        let second = transport.dial(target, opts).unwrap().await.unwrap();
        let second_port = dialed_from.take(&remote_addr).unwrap();
        assert_ne!(
            second_port, listen_port,
            "the socket pair existed: a fresh port"
        );
        assert_eq!(second.local_addr().map(|a| a.port()), Some(second_port));
        assert_eq!(dialed_from.take(&remote_addr), None, "taken once");
        drop((first, second, accepting.await.unwrap()));
    }
}
