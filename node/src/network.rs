//! Protocol names of one network id. Every protocol private to a network (its Kademlia DHT and
//! the application's own) is named `/peerix/<tag>/<name>`, the tag being the first 16 hex digits
//! of sha256(network id): a node of another id does not speak it, so it can neither open such a
//! stream nor be offered one. The id is a label that keeps networks apart, not a secret: anyone
//! who knows it can make the same names.

use libp2p::StreamProtocol;
use sha2::{Digest, Sha256};

/// What every protocol name of `network_id` starts with, after `/peerix/`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkTag(String);

impl NetworkTag {
    pub fn of(network_id: &str) -> Self {
        let digest = Sha256::digest(network_id.as_bytes());
        Self(digest[..8].iter().map(|b| format!("{b:02x}")).collect())
    }

    /// `/peerix/<tag>/<name>`; `name` is like `kad/1.0.0`.
    pub fn protocol(&self, name: &str) -> StreamProtocol {
        // Starting with '/', the name is always valid: the fallback is never taken.
        StreamProtocol::try_from_owned(format!("/peerix/{}/{name}", self.0))
            .unwrap_or(StreamProtocol::new("/peerix/invalid"))
    }
}

/// The protocol `name` (like `index/1.0.0`) of the network `network_id`.
pub fn network_protocol(network_id: &str, name: &str) -> StreamProtocol {
    NetworkTag::of(network_id).protocol(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_differ_per_network_and_keep_the_kademlia_name() {
        // The Kademlia name that nodes before per-network application protocols used.
        let kad = network_protocol("default", "kad/1.0.0");
        let digest = Sha256::digest(b"default");
        let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(kad.as_ref(), format!("/peerix/{hex}/kad/1.0.0"));
        assert_ne!(
            network_protocol("default", "index/1.0.0"),
            network_protocol("office", "index/1.0.0")
        );
    }
}
