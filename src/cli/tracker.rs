//! Flags of `peerix tracker`, and the server settings they amount to.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use peerix_http::ServerLimits;

use crate::rate_limit::RateLimit;
use crate::tracker::server::Settings;
use crate::tracker::trusted_proxy::Cidr;

#[derive(Args, Debug)]
pub struct TrackerArgs {
    /// Address to listen on.
    #[arg(
        long,
        env = "PEERIX_TRACKER_HOST",
        default_value = "0.0.0.0",
        value_name = "ADDR"
    )]
    pub host: IpAddr,

    /// Port to listen on (0: any free port, printed at start).
    #[arg(
        long,
        env = "PEERIX_TRACKER_PORT",
        default_value_t = 12305,
        value_name = "N"
    )]
    pub port: u16,

    /// The tracker's database [default: $STATE_DIRECTORY/tracker.redb, else
    /// ./peerix-tracker.redb].
    #[arg(long, env = "PEERIX_TRACKER_DB_PATH", value_name = "FILE")]
    pub db_path: Option<PathBuf>,

    /// A reverse proxy's address block (repeatable): only requests from it may name the client
    /// in X-Forwarded-For or X-Real-IP; everyone else's address is the socket's.
    #[arg(
        long,
        env = "PEERIX_TRACKER_TRUST_PROXY",
        value_delimiter = ',',
        value_name = "CIDR"
    )]
    pub trust_proxy: Vec<Cidr>,

    /// Seconds after its last heartbeat a peer is forgotten with its packages (checked every
    /// half of it, at most every minute).
    #[arg(long, env = "PEERIX_TRACKER_TTL", default_value_t = 120, value_parser = clap::value_parser!(u64).range(2..), value_name = "SECONDS")]
    pub ttl: u64,

    /// Seconds a write's signed timestamp may differ from the tracker's clock.
    #[arg(
        long,
        env = "PEERIX_TRACKER_MAX_SKEW",
        default_value_t = 30,
        value_name = "SECONDS"
    )]
    pub max_skew: u64,

    /// Requests per second per client IP (IPv6: per /64), on average.
    #[arg(
        long,
        env = "PEERIX_TRACKER_IP_RATE",
        default_value_t = 200.0,
        value_name = "N"
    )]
    pub ip_rate: f64,

    /// Requests a client IP may make at once after a pause.
    #[arg(
        long,
        env = "PEERIX_TRACKER_IP_BURST",
        default_value_t = 2000.0,
        value_name = "N"
    )]
    pub ip_burst: f64,

    /// Writes per second per peer, on average.
    #[arg(
        long,
        env = "PEERIX_TRACKER_PEER_RATE",
        default_value_t = 20.0,
        value_name = "N"
    )]
    pub peer_rate: f64,

    /// Writes a peer may make at once after a pause.
    #[arg(
        long,
        env = "PEERIX_TRACKER_PEER_BURST",
        default_value_t = 200.0,
        value_name = "N"
    )]
    pub peer_burst: f64,

    /// Seconds an HTTP connection has to send a complete request head (idle keep-alive
    /// connections are closed after as long); a request body may pause no longer, and must
    /// average 16 KiB/s past that time.
    #[arg(long, env = "PEERIX_TRACKER_HEADER_TIMEOUT", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..), value_name = "SECONDS")]
    pub header_timeout: u64,

    /// HTTP connections open at once; further ones wait in the kernel's listen backlog.
    #[arg(long, env = "PEERIX_TRACKER_MAX_CONNECTIONS", default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..), value_name = "N")]
    pub max_connections: u64,

    /// Check the flags and the database path, print what would run, and exit (0, or 2 for a
    /// bad setting) without binding a port or writing anything. No environment variable: one
    /// left set would keep the service from ever starting.
    #[arg(long)]
    pub check_config: bool,
}

/// A rate of at least one token in a while: a zero or negative flag would refuse everything
/// forever.
fn rate(per_second: f64, burst: f64) -> RateLimit {
    RateLimit {
        per_second: per_second.max(0.001),
        burst: burst.max(1.0),
    }
}

impl TrackerArgs {
    pub fn settings(&self) -> Settings {
        let db_path = self.db_path.clone().unwrap_or_else(|| {
            std::env::var_os("STATE_DIRECTORY")
                .map(|dir| PathBuf::from(dir).join("tracker.redb"))
                .unwrap_or_else(|| PathBuf::from("peerix-tracker.redb"))
        });
        Settings {
            listen: SocketAddr::new(self.host, self.port),
            db_path,
            trusted_proxies: self.trust_proxy.clone(),
            ttl: self.ttl,
            max_skew: self.max_skew,
            per_ip: rate(self.ip_rate, self.ip_burst),
            per_peer: rate(self.peer_rate, self.peer_burst),
            server_limits: ServerLimits {
                header_timeout: Duration::from_secs(self.header_timeout),
                max_connections: usize::try_from(self.max_connections).unwrap_or(usize::MAX),
            },
        }
    }
}
