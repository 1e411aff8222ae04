//! How the embedded node connects: QUIC beside TCP, its role in the public DHT, and caps on its
//! connections (the old module's `ipfs.enableQUIC`, `ipfs.routingType`, `ipfs.connMgr.highWater`
//! and `ipfs.resourceMgr.conns{In,Out}bound`).

use clap::builder::BoolishValueParser;
use clap::{Args, ValueEnum};
use peerix_node::{DhtRole, NodeConfig, Protocol};

use super::config_error::ConfigError;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DhtMode {
    /// A server of the public DHT once directly reachable, a client before.
    Auto,
    /// Only a client: asks and announces, answers no one.
    Client,
    /// Always a server.
    Server,
    /// No public DHT at all (as `--mode libp2p`).
    Off,
}

#[derive(Args, Debug)]
pub struct PeerConnectionArgs {
    /// QUIC (over UDP) beside TCP, on or off; off for networks that drop or flood UDP.
    #[arg(
        long,
        env = "PEERIX_QUIC",
        num_args = 0..=1,
        default_missing_value = "on",
        default_value = "on",
        value_parser = BoolishValueParser::new(),
        value_name = "on|off"
    )]
    pub quic: bool,

    /// The node's role in the public IPFS DHT (`--mode ipfs`).
    #[arg(long, env = "PEERIX_DHT_MODE", value_enum, default_value = "auto")]
    pub dht_mode: DhtMode,

    /// Connections to peers at most, in and out together.
    #[arg(
        long,
        env = "PEERIX_MAX_PEER_CONNECTIONS",
        default_value = "256",
        value_parser = clap::value_parser!(u32).range(1..),
        value_name = "N"
    )]
    pub max_peer_connections: u32,

    /// Connections peers opened to this node, at most [default: no cap of their own].
    #[arg(long, env = "PEERIX_MAX_INBOUND_PEER_CONNECTIONS", value_name = "N")]
    pub max_inbound_peer_connections: Option<u32>,

    /// Connections this node opened to peers, at most [default: no cap of their own].
    #[arg(long, env = "PEERIX_MAX_OUTBOUND_PEER_CONNECTIONS", value_name = "N")]
    pub max_outbound_peer_connections: Option<u32>,
}

impl PeerConnectionArgs {
    pub fn apply(&self, config: &mut NodeConfig) -> Result<(), ConfigError> {
        if !self.quic {
            if let Some(addr) = config.listen_addrs.iter().find(|a| is_quic(a)) {
                return Err(ConfigError::QuicListenWithoutQuic(addr.to_string()));
            }
        }
        config.quic = self.quic;
        config.public_dht_role = match self.dht_mode {
            DhtMode::Auto | DhtMode::Off => DhtRole::Auto,
            DhtMode::Client => DhtRole::Client,
            DhtMode::Server => DhtRole::Server,
        };
        if self.dht_mode == DhtMode::Off {
            config.public_dht = false;
        }
        config.max_connections = self.max_peer_connections;
        config.max_inbound_connections = self.max_inbound_peer_connections;
        config.max_outbound_connections = self.max_outbound_peer_connections;
        Ok(())
    }
}

fn is_quic(addr: &peerix_node::Multiaddr) -> bool {
    addr.iter()
        .any(|p| matches!(p, Protocol::QuicV1 | Protocol::Quic))
}
