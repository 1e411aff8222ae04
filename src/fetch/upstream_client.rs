//! GETs to the upstream cache on the runtime that asks, over kept-alive connections (TLS for
//! `https://`): a narinfo answer then costs upstream's round trip and little more. No thread
//! is taken per request, as a blocking client's would be, and no connection set up per request
//! while one is idle. Deadlines are the caller's: a connection whose exchange is given up is
//! closed at once (its driving task is aborted), so a silent upstream holds nothing.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, LengthLimitError, Limited};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::{StatusCode, Uri};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_util::compat::{FuturesAsyncReadCompatExt, TokioAsyncReadCompatExt};

/// An idle connection older than this is closed rather than used: a server or a NAT on the way
/// may have forgotten it without a word (the blocking client before kept them as long).
const IDLE_FOR: Duration = Duration::from_secs(15);

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("not an http:// or https:// URL: {0}")]
    BadUrl(String),
    #[error("cannot connect: {0}")]
    Connect(std::io::Error),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("HTTP: {0}")]
    Http(#[from] hyper::Error),
    #[error("the answer is over {0} bytes")]
    TooBig(usize),
    #[error("cannot read the answer: {0}")]
    Body(String),
}

/// Where requests go: `scheme://host:port/base`.
struct Origin {
    host: String,
    port: u16,
    /// The Host header.
    authority: String,
    /// The URL's path, without a trailing `/`.
    base: String,
    tls: Option<(futures_rustls::TlsConnector, ServerName<'static>)>,
}

/// A connection and the task that drives it, which ends when the connection is dropped.
struct Connection {
    sender: SendRequest<Empty<Bytes>>,
    driver: JoinHandle<()>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

pub struct UpstreamClient {
    origin: Origin,
    /// Requests at once, and as many idle connections kept.
    slots: Semaphore,
    at_once: usize,
    idle: Mutex<Vec<(Instant, Connection)>>,
}

impl UpstreamClient {
    /// A client of `url`, `at_once` requests at a time, trusting the web's certificate
    /// authorities (the roots the blocking client trusts).
    pub fn new(url: &str, at_once: usize) -> Result<Self, ClientError> {
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        Self::with_roots(url, at_once, roots)
    }

    fn with_roots(
        url: &str,
        at_once: usize,
        roots: rustls::RootCertStore,
    ) -> Result<Self, ClientError> {
        Ok(Self {
            origin: origin(url, roots)?,
            slots: Semaphore::new(at_once),
            at_once,
            idle: Mutex::new(Vec::new()),
        })
    }

    /// GETs `path` (relative to the URL's) and reads at most `max_body` bytes of the answer,
    /// whatever its status. Waits for a free slot first.
    pub async fn get(
        &self,
        path: &str,
        max_body: usize,
    ) -> Result<(StatusCode, Bytes), ClientError> {
        let _slot = self
            .slots
            .acquire()
            .await
            .map_err(|e| ClientError::Body(e.to_string()))?;
        let target = format!("{}/{path}", self.origin.base);
        if let Some(mut connection) = self.reused() {
            match self.exchange(&mut connection, &target, max_body).await {
                Ok(answer) => return Ok(self.kept(connection, answer)),
                Err(e @ ClientError::TooBig(_)) => return Err(e),
                // Most likely closed by upstream while idle, which shows only now; a GET may
                // be asked again.
                Err(e) => tracing::debug!(error = %e, "upstream: a kept connection failed"),
            }
        }
        let mut connection = self.connect().await?;
        let answer = self.exchange(&mut connection, &target, max_body).await?;
        Ok(self.kept(connection, answer))
    }

    async fn exchange(
        &self,
        connection: &mut Connection,
        target: &str,
        max_body: usize,
    ) -> Result<(StatusCode, Bytes), ClientError> {
        connection.sender.ready().await?;
        let request = hyper::Request::get(target)
            .header(hyper::header::HOST, &self.origin.authority)
            .header(hyper::header::USER_AGENT, USER_AGENT)
            .body(Empty::new())
            .map_err(|e| ClientError::BadUrl(e.to_string()))?;
        let response = connection.sender.send_request(request).await?;
        let status = response.status();
        let body = Limited::new(response.into_body(), max_body)
            .collect()
            .await
            .map_err(|e| match e.downcast_ref::<LengthLimitError>() {
                Some(_) => ClientError::TooBig(max_body),
                None => ClientError::Body(e.to_string()),
            })?;
        Ok((status, body.to_bytes()))
    }

    /// An idle connection still open and not too old.
    fn reused(&self) -> Option<Connection> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        while let Some((since, connection)) = idle.pop() {
            if since.elapsed() < IDLE_FOR && !connection.sender.is_closed() {
                return Some(connection);
            }
        }
        None
    }

    /// Keeps `connection` for the next request, its answer read whole.
    fn kept<T>(&self, connection: Connection, answer: T) -> T {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < self.at_once && !connection.sender.is_closed() {
            idle.push((Instant::now(), connection));
        }
        answer
    }

    async fn connect(&self) -> Result<Connection, ClientError> {
        let origin = &self.origin;
        let tcp = TcpStream::connect((origin.host.as_str(), origin.port))
            .await
            .map_err(ClientError::Connect)?;
        // A request is one small write; nothing is gained by waiting to fill a segment.
        let _ = tcp.set_nodelay(true);
        let (sender, driver) = match &origin.tls {
            None => {
                let (sender, connection) = http1::handshake(TokioIo::new(tcp)).await?;
                (sender, tokio::spawn(drive(connection)))
            }
            Some((tls, name)) => {
                let stream = tls
                    .connect(name.clone(), tcp.compat())
                    .await
                    .map_err(|e| ClientError::Tls(e.to_string()))?;
                let io = TokioIo::new(stream.compat());
                let (sender, connection) = http1::handshake(io).await?;
                (sender, tokio::spawn(drive(connection)))
            }
        };
        Ok(Connection { sender, driver })
    }
}

const USER_AGENT: &str = concat!("peerix/", env!("CARGO_PKG_VERSION"));

async fn drive(connection: impl std::future::Future<Output = Result<(), hyper::Error>>) {
    if let Err(e) = connection.await {
        tracing::debug!(error = %e, "upstream: connection ended");
    }
}

fn origin(url: &str, roots: rustls::RootCertStore) -> Result<Origin, ClientError> {
    let bad = || ClientError::BadUrl(url.to_owned());
    let uri: Uri = url.parse().map_err(|_| bad())?;
    let authority = uri.authority().ok_or_else(bad)?;
    let tls = match uri.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        _ => return Err(bad()),
    };
    // An IPv6 literal comes bracketed, as the Host header wants it; a socket address does not.
    let host = authority.host();
    let bare = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let tls = match tls {
        false => None,
        true => {
            let name = ServerName::try_from(bare.clone()).map_err(|_| bad())?;
            Some((tls_connector(roots)?, name))
        }
    };
    Ok(Origin {
        port: authority
            .port_u16()
            .unwrap_or(if tls.is_some() { 443 } else { 80 }),
        host: bare,
        authority: authority.as_str().to_owned(),
        base: uri.path().trim_end_matches('/').to_owned(),
        tls,
    })
}

/// TLS trusting `roots`, with ring's crypto (the blocking client's).
fn tls_connector(
    roots: rustls::RootCertStore,
) -> Result<futures_rustls::TlsConnector, ClientError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ClientError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(futures_rustls::TlsConnector::from(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    /// A server answering `body` to every request, closing each connection after
    /// `per_connection` answers (over TLS with `tls`); counts the connections it accepted.
    async fn server(
        body: &'static str,
        per_connection: usize,
        tls: Option<futures_rustls::TlsAcceptor>,
    ) -> (u16, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counted = accepted.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                let tls = tls.clone();
                tokio::spawn(async move {
                    match tls {
                        None => answer(stream, body, per_connection).await,
                        Some(tls) => {
                            if let Ok(stream) = tls.accept(stream.compat()).await {
                                answer(stream.compat(), body, per_connection).await;
                            }
                        }
                    }
                });
            }
        });
        (port, accepted)
    }

    async fn answer(
        mut stream: impl AsyncRead + AsyncWrite + Unpin,
        body: &str,
        per_connection: usize,
    ) {
        let mut buffer = Vec::new();
        for _ in 0..per_connection {
            while !buffer.windows(4).any(|w| w == b"\r\n\r\n") {
                let mut chunk = [0; 1024];
                match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                }
            }
            assert!(buffer.starts_with(b"GET /base/x HTTP/1.1\r\n"));
            buffer.clear();
            let answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            );
            if stream.write_all(answer.as_bytes()).await.is_err() {
                return;
            }
        }
    }

    fn url(port: u16) -> String {
        format!("http://127.0.0.1:{port}/base/")
    }

    #[tokio::test]
    async fn one_connection_serves_request_after_request() {
        let (port, accepted) = server("hello", usize::MAX, None).await;
        let client = UpstreamClient::new(&url(port), 4).unwrap();
        for _ in 0..10 {
            let (status, body) = client.get("x", 64).await.unwrap();
            assert_eq!((status, &body[..]), (StatusCode::OK, &b"hello"[..]));
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_connection_closed_by_the_server_is_replaced() {
        let (port, accepted) = server("hello", 1, None).await;
        let client = UpstreamClient::new(&url(port), 4).unwrap();
        for _ in 0..3 {
            assert_eq!(client.get("x", 64).await.unwrap().0, StatusCode::OK);
            // The server's close reaches the kept connection, or the next request finds out.
            tokio::task::yield_now().await;
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_refused() {
        let (port, _) = server("too long for the limit", usize::MAX, None).await;
        let client = UpstreamClient::new(&url(port), 4).unwrap();
        assert!(matches!(
            client.get("x", 8).await,
            Err(ClientError::TooBig(8))
        ));
    }

    #[tokio::test]
    async fn https_upstreams_are_spoken_to_over_tls() {
        let rcgen::CertifiedKey { cert, key_pair } =
            rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(key_pair.serialize_der().into());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.der().clone()], key)
            .unwrap();
        let acceptor = futures_rustls::TlsAcceptor::from(Arc::new(config));
        let (port, accepted) = server("hello", usize::MAX, Some(acceptor)).await;
        let url = format!("https://localhost:{port}/base");
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert.der().clone()).unwrap();
        let client = UpstreamClient::with_roots(&url, 4, roots).unwrap();
        for _ in 0..3 {
            let (status, body) = client.get("x", 64).await.unwrap();
            assert_eq!((status, &body[..]), (StatusCode::OK, &b"hello"[..]));
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
        // A certificate no authority of the web signed is refused.
        let client = UpstreamClient::new(&url, 4).unwrap();
        assert!(matches!(
            client.get("x", 64).await,
            Err(ClientError::Tls(_))
        ));
    }

    #[test]
    fn urls_name_their_origin() {
        let roots = rustls::RootCertStore::empty;
        let https = origin("https://cache.nixos.org", roots()).unwrap();
        assert_eq!((https.host.as_str(), https.port), ("cache.nixos.org", 443));
        assert!(https.tls.is_some());
        let v6 = origin("http://[::1]:8080/cache/", roots()).unwrap();
        assert_eq!((v6.host.as_str(), v6.port), ("::1", 8080));
        assert_eq!(
            (v6.authority.as_str(), v6.base.as_str()),
            ("[::1]:8080", "/cache")
        );
        assert!(v6.tls.is_none());
        for bad in ["file:///nix/store", "cache.nixos.org", "ftp://x"] {
            assert!(origin(bad, roots()).is_err(), "{bad}");
        }
    }
}
