//! libp2p's TLS handshake (the `/tls/1.0.0` spec: TLS 1.3, a self-signed certificate carrying
//! the libp2p identity, ALPN `libp2p`, no SNI) with the cipher chosen for bulk transfer.
//!
//! libp2p-tls offers ChaCha20-Poly1305 first and rustls follows the client's order, so two nodes
//! would never use AES-GCM, which runs several times faster on CPUs with AES instructions. Here
//! the client offers AES-128-GCM first when its CPU has them; a server without them picks
//! ChaCha20-Poly1305 itself, being then the slow end. The certificate format and its checks are
//! libp2p-tls's public ones ([`certificate`]).

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use futures_rustls::{TlsAcceptor, TlsConnector};
use libp2p::futures::{AsyncRead, AsyncWrite};
use libp2p::identity::Keypair;
use libp2p::tls::{certificate, TlsStream};
use libp2p::PeerId;
use rustls::crypto::aws_lc_rs::{self, cipher_suite};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::ServerName;
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::{ClientConfig, CommonState, ServerConfig, SupportedCipherSuite};

use super::verifier::PeerCertificate;

const ALPN: &[u8] = b"libp2p";

/// The two ends' configurations for one identity.
#[derive(Clone)]
pub(crate) struct Tls {
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum TlsError {
    #[error("cannot make the certificate: {0}")]
    Certificate(#[from] certificate::GenError),
    #[error("configuration: {0}")]
    Config(#[from] rustls::Error),
    #[error("handshake: {0}")]
    Handshake(std::io::Error),
    #[error("the peer's certificate: {0}")]
    PeerCertificate(#[from] certificate::ParseError),
    #[error("the peer sent no certificate")]
    NoPeerCertificate,
}

impl Tls {
    pub(crate) fn new(key: &Keypair) -> Result<Self, TlsError> {
        let hardware_aes = hardware_aes();
        let provider = Arc::new(CryptoProvider {
            cipher_suites: cipher_suites(hardware_aes),
            ..aws_lc_rs::default_provider()
        });
        let verifier = Arc::new(PeerCertificate);
        let own = own_certificate(key, &provider)?;

        let mut server = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_client_cert_verifier(verifier.clone())
            .with_cert_resolver(own.clone());
        server.alpn_protocols = vec![ALPN.to_vec()];
        server.ignore_client_order = !hardware_aes;

        let mut client = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_client_cert_resolver(own);
        client.alpn_protocols = vec![ALPN.to_vec()];
        // The spec forbids a server name: the peer is known by its certificate alone.
        client.enable_sni = false;

        Ok(Self {
            server: Arc::new(server),
            client: Arc::new(client),
        })
    }

    pub(crate) async fn accept<C>(self, io: C) -> Result<(PeerId, TlsStream<C>), TlsError>
    where
        C: AsyncRead + AsyncWrite + Unpin,
    {
        let stream = TlsAcceptor::from(self.server)
            .accept(io)
            .await
            .map_err(TlsError::Handshake)?;
        let peer = peer_id(stream.get_ref().1)?;
        Ok((peer, stream.into()))
    }

    pub(crate) async fn connect<C>(self, io: C) -> Result<(PeerId, TlsStream<C>), TlsError>
    where
        C: AsyncRead + AsyncWrite + Unpin,
    {
        // An IP address is never sent as SNI; rustls needs some name.
        let name = ServerName::IpAddress(IpAddr::V4(Ipv4Addr::UNSPECIFIED).into());
        let stream = TlsConnector::from(self.client)
            .connect(name, io)
            .await
            .map_err(TlsError::Handshake)?;
        let peer = peer_id(stream.get_ref().1)?;
        Ok((peer, stream.into()))
    }
}

/// A fresh certificate binding `key`, presented on every connection. rustls's own loaders
/// cannot be used: webpki rejects the libp2p extension, which the spec marks critical.
fn own_certificate(
    key: &Keypair,
    provider: &CryptoProvider,
) -> Result<Arc<SingleCertAndKey>, TlsError> {
    let (certificate, private_key) = certificate::generate(key)?;
    let signing_key = provider.key_provider.load_private_key(private_key)?;
    Ok(Arc::new(SingleCertAndKey::from(CertifiedKey::new(
        vec![certificate],
        signing_key,
    ))))
}

/// TLS 1.3's suites, fastest first for this CPU.
fn cipher_suites(hardware_aes: bool) -> Vec<SupportedCipherSuite> {
    let aes = [
        cipher_suite::TLS13_AES_128_GCM_SHA256,
        cipher_suite::TLS13_AES_256_GCM_SHA384,
    ];
    let chacha = cipher_suite::TLS13_CHACHA20_POLY1305_SHA256;
    match hardware_aes {
        true => [aes[0], aes[1], chacha].to_vec(),
        false => [chacha, aes[0], aes[1]].to_vec(),
    }
}

pub(super) fn hardware_aes() -> bool {
    #[cfg(target_arch = "x86_64")]
    return std::arch::is_x86_feature_detected!("aes")
        && std::arch::is_x86_feature_detected!("pclmulqdq");
    #[cfg(target_arch = "aarch64")]
    return std::arch::is_aarch64_feature_detected!("aes")
        && std::arch::is_aarch64_feature_detected!("pmull");
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    return false;
}

/// The identity in the peer's certificate, which the verifier has already checked.
fn peer_id(state: &CommonState) -> Result<PeerId, TlsError> {
    let [certificate] = state.peer_certificates().unwrap_or_default() else {
        return Err(TlsError::NoPeerCertificate);
    };
    Ok(certificate::parse(certificate)?.peer_id())
}
