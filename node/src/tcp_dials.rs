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

use std::collections::HashMap;
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

/// Wraps a TCP transport (its dials resolve once connected).
pub struct OneDialPerAddress<T> {
    inner: T,
    connecting: Table,
    next_id: u64,
}

impl<T> OneDialPerAddress<T> {
    pub fn new(inner: T) -> Self {
        Self {
            inner,
            connecting: Table::default(),
            next_id: 0,
        }
    }
}

impl<T> Transport for OneDialPerAddress<T>
where
    T: Transport<Error = io::Error> + Unpin,
    T::Dial: Send + Unpin + 'static,
    T::Output: Send + 'static,
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
        Ok(async move {
            if let Some(gone) = previous {
                // Closed (never sent on) once the older socket is dropped.
                let _ = gone.await;
            }
            match tracked.await {
                Ok(result) => result,
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
