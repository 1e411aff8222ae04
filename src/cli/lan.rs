//! Flags of the old LAN protocol (`--mode lan` and `both`), kept as the old program named them
//! where it had them (`--timeout`).

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use clap::builder::BoolishValueParser;
use clap::Args;

use super::{Mode, ServeArgs};
use crate::lan::{ExtraHost, LanConfig};

#[derive(Args, Debug)]
pub struct LanArgs {
    /// Milliseconds a LAN query waits for an answer before the narinfo is a miss (a miss is then
    /// remembered for 30 s, so Nix's repeated queries do not wait again).
    #[arg(long, env = "PEERIX_TIMEOUT", default_value_t = 150, value_parser = clap::value_parser!(u64).range(1..=10_000), value_name = "MS")]
    pub timeout: u64,

    /// A machine asked by unicast, for networks without broadcast (Tailscale, WireGuard, other
    /// VPNs): an old peer there is asked over UDP, a Peerix node is dialled over libp2p
    /// (repeatable; PORT is its UDP port) [default PORT: --port].
    #[arg(
        long = "extra-hosts",
        visible_alias = "extra-host",
        env = "PEERIX_EXTRA_HOSTS",
        value_delimiter = ',',
        value_name = "HOST[:PORT]"
    )]
    pub extra_hosts: Vec<ExtraHost>,

    /// Send no broadcast queries (extra hosts are still asked).
    #[arg(long, env = "PEERIX_DISABLE_BROADCAST", value_parser = BoolishValueParser::new())]
    pub disable_broadcast: bool,

    /// TCP port, on all interfaces, of the `/local/` routes LAN peers fetch narinfos and NARs
    /// from (only hosts on a local subnet or named in --extra-hosts) [default: --port + 2].
    #[arg(long, env = "PEERIX_LAN_PORT", value_name = "N")]
    pub lan_port: Option<u16>,
}

/// The LAN protocol's settings and where its `/local/` routes listen.
pub struct LanSettings {
    pub listen: SocketAddr,
    pub config: LanConfig,
}

impl Mode {
    /// Whether the old LAN protocol is spoken (UDP and `/local/`).
    pub fn speaks_lan(self) -> bool {
        matches!(self, Self::Lan | Self::Both)
    }
}

impl ServeArgs {
    /// The LAN protocol's settings in `lan` and `both` modes. The ports are the flags'; the
    /// daemon puts the bound ones in when a flag asked for any free port (0).
    pub fn lan_settings(&self) -> Option<LanSettings> {
        if !self.mode.speaks_lan() {
            return None;
        }
        let http_port = self.lan.lan_port.unwrap_or_else(|| match self.port {
            0 => 0,
            port => port.saturating_add(2),
        });
        Some(LanSettings {
            listen: SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), http_port),
            config: LanConfig {
                udp_port: self.port,
                http_port,
                timeout: Duration::from_millis(self.lan.timeout),
                broadcast: !self.lan.disable_broadcast && !self.offline,
                extra_hosts: self.lan.extra_hosts.clone(),
            },
        })
    }
}

#[cfg(test)]
mod tests {

    use crate::cli::{parse_serve as serve, ConfigError};

    #[test]
    fn lan_modes_take_the_old_flags_and_their_defaults() {
        let args = serve(&["--mode", "lan", "--timeout", "50", "--extra-hosts", "a,b:9"]);
        let lan = args.lan_settings().unwrap();
        assert_eq!(lan.listen.to_string(), "0.0.0.0:12306");
        assert_eq!(lan.config.udp_port, 12304);
        assert_eq!(lan.config.timeout.as_millis(), 50);
        assert!(lan.config.broadcast);
        assert_eq!(lan.config.extra_hosts.len(), 2);
        assert!(args.tracker_url().unwrap().is_none());

        let quiet = serve(&["--mode", "lan", "--disable-broadcast", "--lan-port", "9000"]);
        let lan = quiet.lan_settings().unwrap();
        assert!(!lan.config.broadcast);
        assert_eq!(lan.listen.port(), 9000);
        // Offline, nothing is broadcast either.
        let offline = serve(&["--mode", "lan", "--offline"]);
        assert!(!offline.lan_settings().unwrap().config.broadcast);
        let defaults = serve(&["--mode", "lan"]).lan_settings().unwrap();
        assert_eq!(defaults.config.timeout.as_millis(), 150);

        // No internet: no public DHT, no bootstrap peers, no peers of earlier runs; mDNS on.
        let node = args
            .node_config(std::path::Path::new("/nonexistent"))
            .unwrap();
        assert!(node.mdns && !node.public_dht && !node.redial_known_peers);
        assert!(node.bootstrap_peers.is_empty());

        assert!(serve(&["--mode", "libp2p"]).lan_settings().is_none());
        let both = serve(&["--mode", "both", "--tracker-url", "http://t:12305"]);
        assert!(both.lan_settings().is_some());
    }

    #[test]
    fn lan_needs_no_tracker_and_both_needs_one() {
        let lan = serve(&["--mode", "lan", "--tracker-url", "http://t:12305"]);
        assert!(matches!(lan.tracker_url(), Err(ConfigError::TrackerInLan)));
        let both = serve(&["--mode", "both"]);
        assert!(matches!(
            both.tracker_url(),
            Err(ConfigError::TrackerNeeded("both"))
        ));
        for bad in [
            &["--timeout", "0"][..],
            &["--extra-hosts", "a b"],
            &["--timeout", "x"],
        ] {
            let args = ["peerix", "serve"].iter().chain(bad);
            assert!(
                <crate::cli::Cli as clap::Parser>::try_parse_from(args).is_err(),
                "{bad:?}"
            );
        }
    }
}
