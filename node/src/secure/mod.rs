//! The security protocols a direct TCP connection may negotiate, in the order offered:
//! `/tls/1.0.0` with AES-GCM first (see [`tls`]), then `/noise`. Two Peerix nodes and kubo pick
//! TLS; peers that speak only Noise (Helia, js-libp2p) still connect.

#[cfg(test)]
mod tests;
mod tls;
mod verifier;

use std::array;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use libp2p::core::upgrade::{InboundConnectionUpgrade, OutboundConnectionUpgrade, UpgradeInfo};
use libp2p::futures::future::{BoxFuture, Either};
use libp2p::futures::{AsyncRead, AsyncWrite, FutureExt};
use libp2p::identity::Keypair;
use libp2p::{noise, PeerId};

use tls::{Tls, TlsError};

use crate::status::SecuredConnections;

/// The stream a secured connection carries: TLS or Noise.
pub(crate) type Secured<C> = Either<libp2p::tls::TlsStream<C>, noise::Output<C>>;

/// Offers TLS, then Noise; the output is the peer's identity and the encrypted stream.
#[derive(Clone)]
pub(crate) struct Security {
    tls: Tls,
    noise: noise::Config,
    handshakes: Arc<Handshakes>,
}

/// Connections secured since start, by protocol and cipher (for the node's status).
#[derive(Debug, Default)]
pub(crate) struct Handshakes {
    tls_aes_gcm: AtomicU64,
    tls_chacha20: AtomicU64,
    noise: AtomicU64,
}

impl Handshakes {
    fn tls<C>(&self, stream: &libp2p::tls::TlsStream<C>) {
        let aes = stream
            .get_ref()
            .1
            .negotiated_cipher_suite()
            .is_some_and(|suite| {
                matches!(
                    suite.suite(),
                    rustls::CipherSuite::TLS13_AES_128_GCM_SHA256
                        | rustls::CipherSuite::TLS13_AES_256_GCM_SHA384
                )
            });
        // ChaCha20-Poly1305 is the only other suite offered.
        let counter = if aes {
            &self.tls_aes_gcm
        } else {
            &self.tls_chacha20
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn noise(&self) {
        self.noise.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn counts(&self) -> SecuredConnections {
        SecuredConnections {
            tls_aes_gcm: self.tls_aes_gcm.load(Ordering::Relaxed),
            tls_chacha20: self.tls_chacha20.load(Ordering::Relaxed),
            noise: self.noise.load(Ordering::Relaxed),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum SecurityError {
    #[error("TLS: {0}")]
    Tls(#[from] TlsError),
    #[error("Noise: {0}")]
    Noise(#[from] noise::Error),
}

impl Security {
    pub(crate) fn new(key: &Keypair, handshakes: Arc<Handshakes>) -> Result<Self, SecurityError> {
        Ok(Self {
            tls: Tls::new(key)?,
            noise: noise::Config::new(key)?,
            handshakes,
        })
    }
}

/// A security protocol's multistream-select name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SecurityProtocol {
    Tls,
    Noise,
}

impl AsRef<str> for SecurityProtocol {
    fn as_ref(&self) -> &str {
        match self {
            Self::Tls => "/tls/1.0.0",
            Self::Noise => "/noise",
        }
    }
}

impl UpgradeInfo for Security {
    type Info = SecurityProtocol;
    type InfoIter = array::IntoIter<SecurityProtocol, 2>;

    fn protocol_info(&self) -> Self::InfoIter {
        [SecurityProtocol::Tls, SecurityProtocol::Noise].into_iter()
    }
}

type Upgraded<C> = BoxFuture<'static, Result<(PeerId, Secured<C>), SecurityError>>;

/// Which end of the handshake this node is.
#[derive(Clone, Copy)]
enum Role {
    Dialer,
    Listener,
}

impl Security {
    fn upgrade<C>(self, io: C, protocol: SecurityProtocol, role: Role) -> Upgraded<C>
    where
        C: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let Self {
            tls,
            noise,
            handshakes,
        } = self;
        async move {
            match protocol {
                SecurityProtocol::Tls => {
                    let (peer, stream) = match role {
                        Role::Dialer => tls.connect(io).await?,
                        Role::Listener => tls.accept(io).await?,
                    };
                    handshakes.tls(&stream);
                    Ok((peer, Either::Left(stream)))
                }
                SecurityProtocol::Noise => {
                    let name = SecurityProtocol::Noise.as_ref();
                    let (peer, stream) = match role {
                        Role::Dialer => noise.upgrade_outbound(io, name).await?,
                        Role::Listener => noise.upgrade_inbound(io, name).await?,
                    };
                    handshakes.noise();
                    Ok((peer, Either::Right(stream)))
                }
            }
        }
        .boxed()
    }
}

impl<C> InboundConnectionUpgrade<C> for Security
where
    C: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    type Output = (PeerId, Secured<C>);
    type Error = SecurityError;
    type Future = Upgraded<C>;

    fn upgrade_inbound(self, io: C, protocol: SecurityProtocol) -> Self::Future {
        self.upgrade(io, protocol, Role::Listener)
    }
}

impl<C> OutboundConnectionUpgrade<C> for Security
where
    C: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    type Output = (PeerId, Secured<C>);
    type Error = SecurityError;
    type Future = Upgraded<C>;

    fn upgrade_outbound(self, io: C, protocol: SecurityProtocol) -> Self::Future {
        self.upgrade(io, protocol, Role::Dialer)
    }
}
