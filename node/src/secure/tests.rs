use std::sync::Arc;

use libp2p::futures::future::join;
use libp2p::futures::{AsyncReadExt, AsyncWriteExt};
use libp2p::identity::Keypair;
use libp2p::tls::certificate;
use rustls::crypto::aws_lc_rs::{self, cipher_suite};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::ClientConfig;
use tokio_util::compat::{Compat, TokioAsyncReadCompatExt};

use super::tls::{hardware_aes, Tls, TlsError};
use super::verifier::PeerCertificate;

fn pipe() -> (
    Compat<tokio::io::DuplexStream>,
    Compat<tokio::io::DuplexStream>,
) {
    let (a, b) = tokio::io::duplex(64 * 1024);
    (a.compat(), b.compat())
}

#[tokio::test]
async fn two_nodes_learn_each_other_and_use_aes_gcm() {
    let (client_key, server_key) = (Keypair::generate_ed25519(), Keypair::generate_ed25519());
    let (a, b) = pipe();
    let client = Tls::new(&client_key).unwrap().connect(a);
    let server = Tls::new(&server_key).unwrap().accept(b);
    let (client, server) = join(client, server).await;
    let (server_seen, mut client_stream) = client.unwrap();
    let (client_seen, mut server_stream) = server.unwrap();
    assert_eq!(server_seen, server_key.public().to_peer_id());
    assert_eq!(client_seen, client_key.public().to_peer_id());

    let expected = match hardware_aes() {
        true => cipher_suite::TLS13_AES_128_GCM_SHA256,
        false => cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
    };
    let suite = client_stream.get_ref().1.negotiated_cipher_suite();
    assert_eq!(suite.map(|s| s.suite()), Some(expected.suite()));
    assert_eq!(
        server_stream.get_ref().1.alpn_protocol(),
        Some(&b"libp2p"[..])
    );

    let sent = vec![7u8; 100_000];
    let write = async {
        client_stream.write_all(&sent).await.unwrap();
        client_stream.close().await.unwrap();
    };
    let mut received = Vec::new();
    let read = server_stream.read_to_end(&mut received);
    let ((), read) = join(write, read).await;
    read.unwrap();
    assert_eq!(received, sent);
}

/// A TLS 1.3 client using the node's verifier but presenting `certificates` (a chain and the
/// first one's key).
fn client_presenting(
    certificates: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
) -> ClientConfig {
    let builder = ClientConfig::builder_with_provider(Arc::new(aws_lc_rs::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PeerCertificate));
    let mut config = match certificates {
        Some((chain, key)) => {
            let key = aws_lc_rs::default_provider()
                .key_provider
                .load_private_key(key)
                .unwrap();
            let own = CertifiedKey::new(chain, key);
            builder.with_client_cert_resolver(Arc::new(SingleCertAndKey::from(own)))
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"libp2p".to_vec()];
    config
}

async fn server_verdict(client: ClientConfig) -> Result<libp2p::PeerId, TlsError> {
    let (a, b) = pipe();
    let name = ServerName::try_from("peer").unwrap();
    let connect = async move {
        // The client's own outcome does not matter: the server must refuse.
        let _ = futures_rustls::TlsConnector::from(Arc::new(client))
            .connect(name, a)
            .await;
    };
    let accept = Tls::new(&Keypair::generate_ed25519()).unwrap().accept(b);
    let ((), accepted) = join(connect, accept).await;
    accepted.map(|(peer, _)| peer)
}

#[tokio::test]
async fn a_client_without_certificate_is_refused() {
    let verdict = server_verdict(client_presenting(None)).await;
    assert!(
        matches!(verdict, Err(TlsError::Handshake(_))),
        "{verdict:?}"
    );
}

#[tokio::test]
async fn a_tampered_certificate_is_refused() {
    let key = Keypair::generate_ed25519();
    let (certificate, private_key) = certificate::generate(&key).unwrap();
    // The last bytes are the certificate's self-signature.
    let mut tampered = certificate.to_vec();
    *tampered.last_mut().unwrap() ^= 1;
    let tampered = CertificateDer::from(tampered);
    assert!(certificate::parse(&tampered).is_err());

    let verdict = server_verdict(client_presenting(Some((vec![tampered], private_key)))).await;
    assert!(
        matches!(verdict, Err(TlsError::Handshake(_))),
        "{verdict:?}"
    );
}

#[tokio::test]
async fn a_chain_of_two_certificates_is_refused() {
    let (first, private_key) = certificate::generate(&Keypair::generate_ed25519()).unwrap();
    let (second, _) = certificate::generate(&Keypair::generate_ed25519()).unwrap();
    let chain = vec![first, second];
    let verdict = server_verdict(client_presenting(Some((chain, private_key)))).await;
    assert!(
        matches!(verdict, Err(TlsError::Handshake(_))),
        "{verdict:?}"
    );
}
