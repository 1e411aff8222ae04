//! Said once: a node that has had no peer for [`ALONE_FOR`] since it started (or since its last
//! peer left) logs one warning naming the ways it looks for peers and what to check. Then nothing
//! more until a peer has come and gone again. Not run with `--offline`, nor while the operator
//! stopped peer-to-peer traffic, where being alone is expected.

use std::time::{Duration, Instant};

use peerix_node::NodeHandle;
use serde::Serialize;

/// How long without a peer before it is said.
pub const ALONE_FOR: Duration = Duration::from_secs(5 * 60);
/// How often the node's peers are counted.
const CHECK_EVERY: Duration = Duration::from_secs(15);

/// The ways this node looks for peers, as its settings turn them on (also `/status`'s
/// `discovery`).
#[derive(Clone, Debug, Default, Serialize)]
pub struct PeerSources {
    /// `--mode`.
    pub mode: &'static str,
    /// Peerix's DHT rendezvous for its network id.
    pub rendezvous: bool,
    pub mdns: bool,
    pub public_dht: bool,
    /// `--bootstrap-peers` (or the public ones).
    pub bootstrap_peers: usize,
    pub tracker: bool,
    pub bootstrap_url: bool,
    /// The old program's UDP protocol on the LAN (its machines are not libp2p peers).
    #[serde(rename = "lan_protocol")]
    pub old_lan: bool,
    pub network_id: String,
}

impl PeerSources {
    /// The warning, in the operator's terms: what is on, then what to check.
    pub fn warning(&self) -> String {
        let mut on = Vec::new();
        if self.rendezvous {
            on.push("the DHT rendezvous".to_owned());
        }
        if self.mdns {
            on.push("mDNS on the local network".to_owned());
        }
        if self.public_dht {
            on.push("the public IPFS DHT".to_owned());
        }
        if self.bootstrap_peers > 0 {
            on.push(format!("{} bootstrap peer(s)", self.bootstrap_peers));
        }
        if self.tracker {
            on.push("the tracker".to_owned());
        }
        if self.bootstrap_url {
            on.push("--bootstrap-url".to_owned());
        }
        let on = match on.is_empty() {
            true => "nothing (no bootstrap peers, tracker or mDNS)".to_owned(),
            false => on.join(", "),
        };
        let mut check = vec![format!(
            "other machines run `peerix serve` with network id \"{}\"",
            self.network_id
        )];
        if self.mdns {
            check.push("multicast (UDP 5353) passes between machines".to_owned());
        }
        if self.tracker {
            check.push("the tracker answers (`peerix doctor`)".to_owned());
        }
        if self.bootstrap_peers > 0 || self.public_dht {
            check.push("this machine reaches its bootstrap peers".to_owned());
        }
        check.push("no firewall drops the node's ports".to_owned());
        let old_lan = match self.old_lan {
            true => " (old LAN peers are asked over UDP meanwhile)",
            false => "",
        };
        format!(
            "no peer connected for {} minutes (mode {}; looking through {on}){old_lan}: check that {}",
            ALONE_FOR.as_secs() / 60,
            self.mode,
            check.join(", that ")
        )
    }
}

/// Whether to warn, from the node's peer count as time passes.
struct AloneWatch {
    /// Since when the node has had no peer; `None` while it has one.
    alone_since: Option<Instant>,
    /// Said for this stretch alone.
    told: bool,
}

impl AloneWatch {
    fn new(started: Instant) -> Self {
        Self {
            alone_since: Some(started),
            told: false,
        }
    }

    /// Whether to warn now, having seen `peers` connected at `now`.
    fn saw(&mut self, peers: usize, now: Instant) -> bool {
        if peers > 0 {
            *self = Self {
                alone_since: None,
                told: false,
            };
            return false;
        }
        let since = *self.alone_since.get_or_insert(now);
        if self.told || now.saturating_duration_since(since) < ALONE_FOR {
            return false;
        }
        self.told = true;
        true
    }
}

/// Counts `node`'s peers every [`CHECK_EVERY`] and logs `sources`' warning when the node has
/// been alone for [`ALONE_FOR`]; runs until the node stops.
pub async fn warn_when_alone(node: NodeHandle, sources: PeerSources) {
    let mut watch = AloneWatch::new(Instant::now());
    loop {
        tokio::time::sleep(CHECK_EVERY).await;
        let Ok(status) = node.status().await else {
            return;
        };
        // Alone on purpose: the time alone counts from the restart.
        if status.traffic_stopped {
            watch = AloneWatch::new(Instant::now());
            continue;
        }
        if watch.saw(status.peers.len(), Instant::now()) {
            tracing::warn!("{}", sources.warning());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn said_once_after_five_minutes_alone_and_again_only_after_a_peer_came_and_went() {
        let start = Instant::now();
        let at = |seconds| start + Duration::from_secs(seconds);
        let mut watch = AloneWatch::new(start);
        assert!(!watch.saw(0, at(15)));
        assert!(!watch.saw(0, at(299)));
        assert!(watch.saw(0, at(300)));
        // Not again while it stays alone.
        assert!(!watch.saw(0, at(315)));
        assert!(!watch.saw(0, at(3600)));
        // A peer came and went: alone from then on, said again five minutes later.
        assert!(!watch.saw(1, at(3615)));
        assert!(!watch.saw(0, at(3630)));
        assert!(!watch.saw(0, at(3629 + 300)));
        assert!(watch.saw(0, at(3630 + 300)));
        assert!(!watch.saw(0, at(3630 + 600)));
    }

    #[test]
    fn a_peer_within_five_minutes_of_start_means_nothing_is_said() {
        let start = Instant::now();
        let at = |seconds| start + Duration::from_secs(seconds);
        let mut watch = AloneWatch::new(start);
        assert!(!watch.saw(2, at(60)));
        assert!(!watch.saw(1, at(400)));
        assert!(!watch.saw(1, at(4000)));
    }

    #[test]
    fn the_warning_names_what_is_on_and_what_to_check() {
        let lan = PeerSources {
            mode: "lan",
            rendezvous: true,
            mdns: true,
            old_lan: true,
            network_id: "office".to_owned(),
            ..PeerSources::default()
        };
        let text = lan.warning();
        assert!(
            text.starts_with("no peer connected for 5 minutes (mode lan; "),
            "{text}"
        );
        assert!(text.contains("mDNS on the local network"), "{text}");
        assert!(text.contains("multicast (UDP 5353)"), "{text}");
        assert!(text.contains("network id \"office\""), "{text}");
        assert!(text.contains("old LAN peers"), "{text}");
        assert!(!text.contains("tracker"), "{text}");

        let wan = PeerSources {
            mode: "wan",
            tracker: true,
            network_id: "n".to_owned(),
            ..PeerSources::default()
        };
        let text = wan.warning();
        assert!(text.contains("looking through the tracker)"), "{text}");
        assert!(
            text.contains("the tracker answers (`peerix doctor`)"),
            "{text}"
        );
        assert!(!text.contains("mDNS"), "{text}");
    }
}
