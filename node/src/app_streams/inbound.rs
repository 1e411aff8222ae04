//! Inbound streams as services receive them: each holds its slot in the caps, and learns of its
//! connection's end. Yamux leaves the readers of a connection this node closes itself (a
//! disconnected peer) waiting forever; such a stream would keep its slot until its service's
//! deadline, so the peer could not come back meanwhile. Here it fails at once instead, its
//! service drops it, and the slot comes back.

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};

use futures_util::task::AtomicWaker;
use futures_util::{AsyncRead, AsyncWrite};
use libp2p::swarm::ConnectionId;
use libp2p::Stream;

use super::slots::Slot;

/// Whether a stream's connection has ended, and who waits on the stream meanwhile.
#[derive(Default)]
struct ConnectionEnd {
    ended: AtomicBool,
    waiting: AtomicWaker,
}

/// An inbound stream of one of the node's protocols, holding its slot while it lives.
pub struct InboundStream {
    stream: Stream,
    end: Arc<ConnectionEnd>,
    _slot: Slot,
}

impl InboundStream {
    /// `poll` as the stream answered it, or an error once its connection ended.
    fn unless_ended<T>(
        &self,
        cx: &mut Context<'_>,
        poll: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if poll.is_ready() {
            return poll;
        }
        // Registered before the check, so an end told in between still wakes this task.
        self.end.waiting.register(cx.waker());
        if self.end.ended.load(Ordering::Acquire) {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "the connection closed",
            )));
        }
        Poll::Pending
    }
}

impl AsyncRead for InboundStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.stream).poll_read(cx, buf);
        self.unless_ended(cx, poll)
    }
}

impl AsyncWrite for InboundStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.stream).poll_write(cx, buf);
        self.unless_ended(cx, poll)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.stream).poll_flush(cx);
        self.unless_ended(cx, poll)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.stream).poll_close(cx);
        self.unless_ended(cx, poll)
    }
}

/// The inbound streams handed out on each open connection, to be told when it closes.
#[derive(Default)]
pub struct LiveConnections(HashMap<ConnectionId, Vec<Weak<ConnectionEnd>>>);

impl LiveConnections {
    /// `stream`, negotiated on `connection`, with `slot`, ready for its service.
    pub fn hand_out(
        &mut self,
        connection: ConnectionId,
        stream: Stream,
        slot: Slot,
    ) -> InboundStream {
        let end = Arc::new(ConnectionEnd::default());
        let ends = self.0.entry(connection).or_default();
        // Streams already dropped are forgotten whenever the list would grow, so it holds at
        // most twice the connection's live streams.
        if ends.len() == ends.capacity() {
            ends.retain(|end| end.strong_count() > 0);
        }
        ends.push(Arc::downgrade(&end));
        InboundStream {
            stream,
            end,
            _slot: slot,
        }
    }

    /// Fails every stream still held of `connection`, which has closed.
    pub fn closed(&mut self, connection: ConnectionId) {
        for end in self.0.remove(&connection).into_iter().flatten() {
            if let Some(end) = end.upgrade() {
                end.ended.store(true, Ordering::Release);
                end.waiting.wake();
            }
        }
    }
}
