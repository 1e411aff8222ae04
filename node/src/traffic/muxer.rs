//! The muxer wrapper: every substream of a connection counts its bytes and draws them from the
//! node's buckets.

use std::io;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use libp2p::core::muxing::{StreamMuxer, StreamMuxerBox, StreamMuxerEvent, SubstreamBox};
use libp2p::futures::{AsyncRead, AsyncWrite};

use super::throttle::{poll_metered, Wait};
use super::{Counters, Traffic};

pub(super) struct CountedMuxer {
    pub(super) inner: StreamMuxerBox,
    pub(super) peer: Arc<Counters>,
    pub(super) traffic: Arc<Traffic>,
    pub(super) direct: bool,
}

impl CountedMuxer {
    fn substream(&self, inner: SubstreamBox) -> Counted<SubstreamBox> {
        Counted::new(inner, self.peer.clone(), self.traffic.clone(), self.direct)
    }
}

impl StreamMuxer for CountedMuxer {
    type Substream = Counted<SubstreamBox>;
    type Error = io::Error;

    fn poll_inbound(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Self::Substream, Self::Error>> {
        let substream = ready!(Pin::new(&mut self.inner).poll_inbound(cx))?;
        Poll::Ready(Ok(self.substream(substream)))
    }

    fn poll_outbound(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Self::Substream, Self::Error>> {
        let substream = ready!(Pin::new(&mut self.inner).poll_outbound(cx))?;
        Poll::Ready(Ok(self.substream(substream)))
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }

    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<StreamMuxerEvent, Self::Error>> {
        Pin::new(&mut self.inner).poll(cx)
    }
}

/// A substream that counts (and maybe throttles) its bytes.
pub(super) struct Counted<S> {
    inner: S,
    peer: Arc<Counters>,
    traffic: Arc<Traffic>,
    direct: bool,
    // Separate timers: a split stream's halves are polled from different tasks.
    read_wait: Wait,
    write_wait: Wait,
}

impl<S> Counted<S> {
    pub(super) fn new(inner: S, peer: Arc<Counters>, traffic: Arc<Traffic>, direct: bool) -> Self {
        Self {
            inner,
            peer,
            traffic,
            direct,
            read_wait: Wait::default(),
            write_wait: Wait::default(),
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let bucket = this.traffic.inbound.as_ref().filter(|_| this.direct);
        let inner = &mut this.inner;
        let n = ready!(poll_metered(
            bucket,
            &mut this.read_wait,
            cx,
            buf.len(),
            |cx, n| { Pin::new(&mut *inner).poll_read(cx, &mut buf[..n]) }
        ))?;
        this.peer.inbound.fetch_add(n as u64, Ordering::Relaxed);
        if this.direct {
            this.traffic
                .total
                .inbound
                .fetch_add(n as u64, Ordering::Relaxed);
        }
        Poll::Ready(Ok(n))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let bucket = this.traffic.outbound.as_ref().filter(|_| this.direct);
        let inner = &mut this.inner;
        let n = ready!(poll_metered(
            bucket,
            &mut this.write_wait,
            cx,
            buf.len(),
            |cx, n| { Pin::new(&mut *inner).poll_write(cx, &buf[..n]) }
        ))?;
        this.peer.outbound.fetch_add(n as u64, Ordering::Relaxed);
        if this.direct {
            this.traffic
                .total
                .outbound
                .fetch_add(n as u64, Ordering::Relaxed);
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }
}
