//! Flags of the HTTP server itself: which `Host` names browsers may use for the local control
//! routes, the upload limit, and the bounds on connections.

use std::time::Duration;

use clap::Args;
use peerix_http::ServerLimits;

use super::parse_amount;

#[derive(Args, Debug)]
pub struct HttpArgs {
    /// A `Host` name (or IP address) besides loopback under which the RPC, /status and, while
    /// the front listens on loopback, the Nix routes answer, e.g. a name in /etc/hosts for this
    /// machine (repeatable).
    #[arg(
        long = "allowed-host",
        visible_alias = "allowed-hosts",
        env = "PEERIX_ALLOWED_HOSTS",
        value_delimiter = ',',
        value_name = "NAME"
    )]
    pub allowed_hosts: Vec<String>,

    /// Largest request body `/api/v0/add` takes (suffixes k, M, G or KiB, MiB, GiB); larger
    /// uploads get 413.
    #[arg(long, env = "PEERIX_MAX_ADD_SIZE", value_parser = parse_amount, default_value = "4GiB", value_name = "SIZE")]
    pub max_add_size: u64,

    /// Seconds an HTTP connection has to send a complete request head (idle keep-alive
    /// connections are closed after as long); a request body may pause no longer, and must
    /// average 16 KiB/s past that time.
    #[arg(long, env = "PEERIX_HEADER_TIMEOUT", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..), value_name = "SECONDS")]
    pub header_timeout: u64,

    /// HTTP connections open at once; further ones wait in the kernel's listen backlog.
    #[arg(long, env = "PEERIX_MAX_CONNECTIONS", default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..), value_name = "N")]
    pub max_connections: u64,
}

impl HttpArgs {
    pub fn server_limits(&self) -> ServerLimits {
        ServerLimits {
            header_timeout: Duration::from_secs(self.header_timeout),
            max_connections: usize::try_from(self.max_connections).unwrap_or(usize::MAX),
        }
    }
}
