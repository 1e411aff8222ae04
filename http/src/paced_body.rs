//! A request body that must keep arriving. hyper bounds the time to a request's head only: a
//! client could then send its body a byte at a time, or stop half way, and hold its connection
//! (one of [`crate::ServerLimits::max_connections`]) and the bytes buffered so far for as long
//! as it likes. [`PacedBody`] fails the body when the reader waited `patience` for one frame, or
//! longer in all than `patience` plus a second per [`MIN_RATE`] bytes received. Only time spent
//! waiting for the client counts: a handler that reads slowly is not the client's fault.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};

/// The slowest average a body may arrive at: a 4 MiB tracker batch may take some four minutes,
/// and a dripping client must send this much to keep its connection.
pub const MIN_RATE: u64 = 16 * 1024;

pin_project! {
    pub struct PacedBody<B> {
        #[pin]
        inner: B,
        #[pin]
        deadline: Sleep,
        patience: Duration,
        // Since when the reader waits for the next frame, if it does.
        waiting_since: Option<Instant>,
        waited: Duration,
        received: u64,
    }
}

impl<B> PacedBody<B> {
    pub fn new(inner: B, patience: Duration) -> Self {
        // Any longer is no bound at all, and keeps instants far from overflowing.
        let patience = patience.min(Duration::from_secs(86_400));
        Self {
            inner,
            deadline: tokio::time::sleep(patience),
            patience,
            waiting_since: None,
            waited: Duration::ZERO,
            received: 0,
        }
    }
}

/// Why a body was given up, as the error its reader sees.
#[derive(Debug, thiserror::Error)]
#[error("the request body came too slowly: {received} bytes, then nothing in time (at least {MIN_RATE} bytes/s, no pause of {patience:?})")]
pub struct TooSlow {
    received: u64,
    patience: Duration,
}

impl<B> Body for PacedBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<axum::BoxError>,
{
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let mut this = self.project();
        let now = Instant::now();
        match this.inner.poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(since) = this.waiting_since.take() {
                    *this.waited += now - since;
                }
                if let Some(data) = frame.data_ref() {
                    *this.received += data.len() as u64;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                if this.waiting_since.is_none() {
                    *this.waiting_since = Some(now);
                    let earned = Duration::from_secs_f64(*this.received as f64 / MIN_RATE as f64);
                    let allowance = this
                        .patience
                        .saturating_add(earned)
                        .saturating_sub(*this.waited);
                    this.deadline
                        .as_mut()
                        .reset(now + allowance.min(*this.patience));
                }
                match this.deadline.poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(TooSlow {
                        received: *this.received,
                        patience: *this.patience,
                    }
                    .into()))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::stream;
    use http_body_util::{BodyExt, StreamBody};

    fn chunks(
        parts: Vec<(u64, usize)>,
    ) -> StreamBody<impl futures_util::Stream<Item = Result<Frame<Bytes>, std::io::Error>>> {
        StreamBody::new(stream::unfold(parts.into_iter(), |mut parts| async move {
            let (wait_ms, len) = parts.next()?;
            tokio::time::sleep(Duration::from_millis(wait_ms)).await;
            Some((Ok(Frame::data(Bytes::from(vec![0; len]))), parts))
        }))
    }

    async fn read(parts: Vec<(u64, usize)>) -> Result<usize, String> {
        let body = PacedBody::new(chunks(parts), Duration::from_secs(2));
        match body.collect().await {
            Ok(all) => Ok(all.to_bytes().len()),
            Err(e) => Err(e.to_string()),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_steady_body_is_read_whole() {
        // 64 KiB/s for 10 s, pauses of one second.
        let parts = vec![(1000, 64 << 10); 10];
        assert_eq!(read(parts).await, Ok(640 << 10));
    }

    #[tokio::test(start_paused = true)]
    async fn a_pause_longer_than_patience_fails() {
        let error = read(vec![(0, 1 << 20), (2500, 10)]).await.unwrap_err();
        assert!(error.contains("1048576 bytes"), "{error}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_trickle_below_the_rate_fails() {
        // A byte each second never pauses for long, but averages far below MIN_RATE.
        let error = read(vec![(1000, 1); 60]).await.unwrap_err();
        assert!(error.contains("too slowly"), "{error}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_reader_that_is_slow_itself_is_not_cut_off() {
        let mut body = std::pin::pin!(PacedBody::new(
            chunks(vec![(100, 10); 5]),
            Duration::from_secs(2)
        ));
        let mut received = 0;
        while let Some(frame) = body.frame().await {
            received += frame.unwrap().into_data().unwrap().len();
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
        assert_eq!(received, 50);
    }
}
