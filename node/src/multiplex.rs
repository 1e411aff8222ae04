//! yamux (`/yamux/1.0.0`) for TCP and relayed connections, with data frames of up to
//! [`FRAME_BYTES`]. libp2p-yamux fixes yamux's default of 16 KiB, and each frame is an
//! allocation, a copy and a message to the connection's task. A frame never exceeds the window
//! the receiver granted, so other implementations accept it.

use std::collections::VecDeque;
use std::iter;
use std::pin::Pin;
use std::task::{ready, Context, Poll, Waker};

use libp2p::core::muxing::{StreamMuxer, StreamMuxerEvent};
use libp2p::core::upgrade::{InboundConnectionUpgrade, OutboundConnectionUpgrade, UpgradeInfo};
use libp2p::futures::future::{self, Ready};
use libp2p::futures::{AsyncRead, AsyncWrite};
use yamux::{Connection, ConnectionError, Mode, Stream};

/// The largest data frame sent: eight times yamux's default, which on loopback cut the
/// receiving node's CPU per NAR by some 15% (`benches/p2p_front`, bulk section). A frame holds up
/// the connection's other streams while it is sent: at a 10 MB/s upload 128 KiB is some 13 ms,
/// short against a narinfo's deadline of seconds.
const FRAME_BYTES: usize = 128 * 1024;

/// Inbound streams opened while the swarm is not asking for one wait here; past this many the
/// newest are refused (dropped, which resets them).
const WAITING_INBOUND: usize = 256;

/// The upgrade; see the module docs.
#[derive(Clone)]
pub(crate) struct Yamux(yamux::Config);

impl Yamux {
    /// rust-yamux grows a stream's receive window past 1 MiB but refuses frames over 1 MiB, and
    /// js-yamux (Helia) sends frames as large as the window: the connection then breaks. A
    /// stream's window may grow by what the connection limit (1 GiB) leaves above 256 KiB for
    /// every allowed stream: with 4093 streams that is 768 KiB, so no window exceeds 1 MiB.
    pub(crate) fn new() -> Self {
        let mut config = yamux::Config::default();
        config.set_max_num_streams(4093);
        config.set_split_send_size(FRAME_BYTES);
        Self(config)
    }
}

impl UpgradeInfo for Yamux {
    type Info = &'static str;
    type InfoIter = iter::Once<Self::Info>;

    fn protocol_info(&self) -> Self::InfoIter {
        iter::once("/yamux/1.0.0")
    }
}

impl<C> InboundConnectionUpgrade<C> for Yamux
where
    C: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    type Output = Muxer<C>;
    type Error = std::io::Error;
    type Future = Ready<Result<Muxer<C>, std::io::Error>>;

    fn upgrade_inbound(self, io: C, _: Self::Info) -> Self::Future {
        future::ready(Ok(Muxer::new(Connection::new(io, self.0, Mode::Server))))
    }
}

impl<C> OutboundConnectionUpgrade<C> for Yamux
where
    C: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    type Output = Muxer<C>;
    type Error = std::io::Error;
    type Future = Ready<Result<Muxer<C>, std::io::Error>>;

    fn upgrade_outbound(self, io: C, _: Self::Info) -> Self::Future {
        future::ready(Ok(Muxer::new(Connection::new(io, self.0, Mode::Client))))
    }
}

/// One yamux connection as libp2p's [`StreamMuxer`].
pub(crate) struct Muxer<C> {
    connection: Connection<C>,
    /// yamux makes progress only through `poll_next_inbound`, which [`StreamMuxer::poll`]
    /// also calls; the streams it yields there wait for [`StreamMuxer::poll_inbound`].
    waiting: VecDeque<Stream>,
    inbound_waker: Option<Waker>,
}

impl<C> Muxer<C> {
    fn new(connection: Connection<C>) -> Self {
        Self {
            connection,
            waiting: VecDeque::new(),
            inbound_waker: None,
        }
    }
}

impl<C> Muxer<C>
where
    C: AsyncRead + AsyncWrite + Unpin,
{
    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Result<Stream, ConnectionError>> {
        match ready!(self.connection.poll_next_inbound(cx)) {
            Some(stream) => Poll::Ready(stream),
            None => Poll::Ready(Err(ConnectionError::Closed)),
        }
    }
}

impl<C> StreamMuxer for Muxer<C>
where
    C: AsyncRead + AsyncWrite + Unpin,
{
    type Substream = Stream;
    type Error = ConnectionError;

    fn poll_inbound(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Stream, ConnectionError>> {
        if let Some(stream) = self.waiting.pop_front() {
            return Poll::Ready(Ok(stream));
        }
        if let Poll::Ready(stream) = self.poll_next(cx) {
            return Poll::Ready(stream);
        }
        self.inbound_waker = Some(cx.waker().clone());
        Poll::Pending
    }

    fn poll_outbound(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Stream, ConnectionError>> {
        self.connection.poll_new_outbound(cx)
    }

    fn poll_close(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), ConnectionError>> {
        self.connection.poll_close(cx)
    }

    fn poll(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<StreamMuxerEvent, ConnectionError>> {
        let this = self.get_mut();
        let stream = ready!(this.poll_next(cx))?;
        if this.waiting.len() < WAITING_INBOUND {
            this.waiting.push_back(stream);
            if let Some(waker) = this.inbound_waker.take() {
                waker.wake();
            }
        } else {
            tracing::debug!("refusing an inbound stream: {WAITING_INBOUND} are waiting already");
        }
        // Come back at once: the connection may have more to do.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}
