//! The `/find` answer, written from pieces rendered once per peer: at 1,000 peers a path has
//! some 200 holders and the answer names 50 of them, so serialising each provider anew made
//! the answer's cost grow with the fleet. A provider's JSON changes only when its peer
//! heartbeats or its score moves; the CID, which differs per path, is spliced in last.

use cid::Cid;
use peerix_http::StoreHash;

use super::directory::LivePeer;
use crate::wire::tracker::Provider;

/// A provider's JSON up to the value of its last field, `cid`.
pub(super) fn provider_prefix(peer: &LivePeer) -> String {
    let id = peer.peer.to_string();
    let provider = Provider {
        peer_id: id.clone(),
        addr: peer.ip.to_string(),
        port: peer.port,
        libp2p_peer_id: id,
        last_seen: peer.last_seen,
        score: peer.score,
        multiaddrs: peer.dial_addrs.clone(),
        cid: None,
    };
    // Strings and numbers always serialise; `cid` is the struct's last field.
    let mut text = serde_json::to_string(&provider).unwrap_or_default();
    text.truncate(text.len().saturating_sub("null}".len()));
    text
}

/// The JSON of a [`crate::wire::tracker::FindAnswer`] for `hash` with these providers.
pub(super) fn render<'a>(
    hash: &StoreHash,
    providers: impl Iterator<Item = (&'a LivePeer, Option<Cid>)>,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(1024);
    out.extend_from_slice(b"{\"hash\":\"");
    // A store hash is nixbase32 and a CID base32 or base58: nothing to escape.
    out.extend_from_slice(hash.as_str().as_bytes());
    out.extend_from_slice(b"\",\"providers\":[");
    for (n, (peer, cid)) in providers.enumerate() {
        if n > 0 {
            out.push(b',');
        }
        out.extend_from_slice(peer.provider_prefix.as_bytes());
        match cid {
            Some(cid) => {
                out.push(b'"');
                out.extend_from_slice(cid.to_string().as_bytes());
                out.extend_from_slice(b"\"}");
            }
            None => out.extend_from_slice(b"null}"),
        }
    }
    out.extend_from_slice(b"]}");
    out
}

#[cfg(test)]
mod tests {
    use peerix_node::PeerId;

    use super::*;
    use crate::wire::tracker::{parse_answer, FindAnswer};

    #[test]
    fn the_spliced_answer_is_what_serde_writes() {
        let mut peer = LivePeer::new(
            PeerId::random(),
            "192.0.2.1".parse().unwrap(),
            12304,
            7,
            vec!["/ip4/192.0.2.1/tcp/1".parse().unwrap()],
        );
        peer.score = 1.5;
        peer.provider_prefix = provider_prefix(&peer);
        let cid: Cid = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"
            .parse()
            .unwrap();
        let hash = StoreHash::parse(&"a".repeat(32)).unwrap();
        let body = render(&hash, [(&peer, Some(cid)), (&peer, None)].into_iter());
        let answer: FindAnswer = parse_answer(&body).unwrap();
        let expected = |cid: Option<String>| Provider {
            peer_id: peer.peer.to_string(),
            addr: "192.0.2.1".to_owned(),
            port: 12304,
            libp2p_peer_id: peer.peer.to_string(),
            last_seen: 7,
            score: 1.5,
            multiaddrs: peer.dial_addrs.clone(),
            cid,
        };
        assert_eq!(
            answer,
            FindAnswer {
                hash: hash.to_string(),
                providers: vec![expected(Some(cid.to_string())), expected(None)],
            }
        );
        let empty: FindAnswer = parse_answer(&render(&hash, std::iter::empty())).unwrap();
        assert!(empty.providers.is_empty());
    }
}
