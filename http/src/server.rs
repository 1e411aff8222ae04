//! The HTTP/1.1 server under the routes: an accept loop over hyper with the bounds `axum::serve`
//! lacks. A connection must complete each request head within [`ServerLimits::header_timeout`]
//! (a slowloris client that never finishes its headers, or an idle keep-alive connection, is
//! closed then), and keep its body coming: no pause as long, and at least
//! [`crate::paced_body::MIN_RATE`] on average after that time (see [`PacedBody`]); and at most [`ServerLimits::max_connections`] are open at once: beyond that the
//! loop stops accepting, so new connections wait in the kernel's listen backlog (and are refused
//! by the kernel once it is full) until one closes.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::Service;

use crate::paced_body::PacedBody;

/// What one client may hold of the server.
#[derive(Clone, Copy, Debug)]
pub struct ServerLimits {
    /// Time a connection has to send a complete request head, counted from when the server
    /// starts waiting for it.
    pub header_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            max_connections: 1024,
        }
    }
}

/// Serves `app` on `listener` until `shutdown` completes, then stops accepting, lets every
/// connection finish its current request and returns once all are closed. Each request carries
/// [`ConnectInfo<SocketAddr>`] of its client.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = accept(&listener, &slots) => accepted,
        };
        let Some((stream, client, slot)) = accepted else {
            continue;
        };
        let app = app.clone();
        let body_patience = limits.header_timeout;
        let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            let mut request =
                request.map(|body| axum::body::Body::new(PacedBody::new(body, body_patience)));
            request.extensions_mut().insert(ConnectInfo(client));
            app.clone().call(request)
        });
        let connection = http.serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(%client, error = %e, "HTTP connection ended");
            }
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// The next connection, once a slot is free. `None` after a failed accept (a connection reset
/// before it was accepted, or out of file descriptors: then after a pause, not in a busy loop).
async fn accept(
    listener: &TcpListener,
    slots: &Arc<Semaphore>,
) -> Option<(
    tokio::net::TcpStream,
    SocketAddr,
    tokio::sync::OwnedSemaphorePermit,
)> {
    // The semaphore is never closed.
    let slot = slots.clone().acquire_owned().await.ok()?;
    match listener.accept().await {
        Ok((stream, client)) => Some((stream, client, slot)),
        Err(e) => {
            let transient = matches!(
                e.kind(),
                std::io::ErrorKind::ConnectionAborted | std::io::ErrorKind::ConnectionReset
            );
            if !transient {
                tracing::warn!(error = %e, "cannot accept connections");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            None
        }
    }
}
