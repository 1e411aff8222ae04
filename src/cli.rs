//! Command line: every flag also reads from a `PEERIX_*` environment variable (switches take
//! 1/0, true/false, yes/no or on/off there).

use std::path::PathBuf;

use clap::builder::BoolishValueParser;
use clap::{Args, Parser, Subcommand};
use peerix_node::Multiaddr;

mod config_error;
mod doctor;
mod filter;
mod http;
mod lan;
mod peer_connections;
mod reachability;
mod serve_config;
mod tracker;
mod trust;
mod why;

pub use config_error::ConfigError;

/// The network a node joins unless `--network-id` names another.
pub const DEFAULT_NETWORK_ID: &str = "default";
pub use doctor::DoctorArgs;
pub use filter::FilterArgs;

pub use http::HttpArgs;
pub use lan::{LanArgs, LanSettings};
pub use peer_connections::PeerConnectionArgs;
pub use reachability::ReachabilityArgs;
pub use tracker::TrackerArgs;
pub use trust::TrustArgs;
pub use why::WhyArgs;

/// Peer-to-peer binary cache for Nix.
#[derive(Parser, Debug)]
#[command(version, about, propagate_version = true)]
pub struct Cli {
    /// More log output (-v info, -vv debug, -vvv trace). RUST_LOG overrides it.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve the local store to Nix as an HTTP binary cache.
    Serve(Box<ServeArgs>),
    /// Write a Nix-compatible signing key pair (secret file mode 0600).
    Keygen(KeygenArgs),
    /// Print the CID that `ipfs add` (kubo) gives FILE.
    Cid(CidArgs),
    /// Talk to the embedded IPFS node of a running `peerix serve`.
    Ipfs(IpfsArgs),
    /// Run a tracker: a directory of peers and the store paths they share, for `--mode wan`.
    Tracker(TrackerArgs),
    /// What a running `peerix serve` is doing, as a table (its `/status`).
    Status(StatusArgs),
    /// Explain why Nix does or does not get a path from a running `peerix serve`.
    Why(WhyArgs),
    /// Check a running `peerix serve` and Nix's configuration, one line a check with a hint.
    Doctor(DoctorArgs),
    /// Make a running `peerix serve` look at the store again now (after a system switch, say).
    Rescan(RescanArgs),
}

/// The running `peerix serve` an operator's command asks.
#[derive(Args, Debug)]
pub struct ApiArg {
    /// The running `peerix serve` (its control and status routes answer local clients only).
    #[arg(
        long,
        env = "PEERIX_API",
        default_value = "http://127.0.0.1:12304",
        value_name = "URL"
    )]
    pub api: String,
}

impl ApiArg {
    /// The URL of `route` (starting with `/`) on that node.
    pub fn url(&self, route: &str) -> String {
        format!("{}{route}", self.api.trim_end_matches('/'))
    }
}

#[derive(Args, Debug)]
pub struct RescanArgs {
    #[command(flatten)]
    pub api: ApiArg,
}

#[derive(Args, Debug)]
pub struct StatusArgs {
    #[command(flatten)]
    pub api: ApiArg,
    /// Print the `/status` document itself (JSON).
    #[arg(long)]
    pub json: bool,
    /// Draw the table again every 2 seconds, until interrupted.
    #[arg(long)]
    pub watch: bool,
}

#[derive(Args, Debug)]
pub struct IpfsArgs {
    /// The running `peerix serve` (its RPC answers loopback clients only); also accepted after
    /// the command, as kubo's global options are.
    #[arg(
        long,
        global = true,
        env = "PEERIX_API",
        default_value = "http://127.0.0.1:12304",
        value_name = "URL"
    )]
    pub api: String,

    #[command(subcommand)]
    pub command: IpfsCommand,
}

#[derive(Subcommand, Debug)]
pub enum IpfsCommand {
    /// The node's identity as JSON: `peer_id` and `multiaddrs`.
    Id,
    /// Connect to a peer.
    Connect {
        /// The peer's address, ending in /p2p/<peer id>.
        multiaddr: String,
    },
    /// Publish FILE (stored in the node's state dir) and print its CID alone.
    Add { file: PathBuf },
    /// List connected peers, one `peer-id address` per line.
    Peers,
    /// List the providers of CID found in the DHT, one peer id per line.
    Providers { cid: String },
    /// Write the content of a UnixFS file to standard output, fetched from its providers.
    Cat { cid: String },
    /// The node's state as JSON: NAT status, listen and external addresses, bandwidth cap, bytes
    /// in and out in total and per connected peer.
    Status,
    /// Stop (`pause`) or restart (`resume`) DHT announcements; they queue meanwhile.
    Announce {
        #[arg(value_parser = ["pause", "resume"])]
        action: String,
    },
}

#[derive(Args, Debug)]
pub struct CidArgs {
    /// 0: `ipfs add` defaults (dag-pb leaves, Qm...); 1: `ipfs add --cid-version 1` (raw leaves).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=1))]
    pub cid_version: u8,
    /// The file to hash ("-" for standard input).
    pub file: PathBuf,
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on; an address with a port (127.0.0.1:8080) overrides --port.
    #[arg(
        long,
        env = "PEERIX_LISTEN",
        default_value = "127.0.0.1",
        value_name = "ADDR"
    )]
    pub listen: String,

    /// HTTP port of the binary cache.
    #[arg(long, env = "PEERIX_PORT", default_value_t = 12304, value_name = "N")]
    pub port: u16,

    /// Priority announced in /nix-cache-info (lower is tried first; cache.nixos.org is 40).
    #[arg(long, env = "PEERIX_PRIORITY", default_value_t = 20, value_name = "N")]
    pub priority: u32,

    /// Secret key file to sign narinfos with (also read from NIX_SECRET_KEY_FILE).
    #[arg(long, env = "PEERIX_PRIVATE_KEY", value_name = "FILE")]
    pub private_key: Option<PathBuf>,

    /// Root of the Nix store to serve, as in Nix's `local?root=DIR`.
    #[arg(
        long,
        env = "PEERIX_STORE_ROOT",
        default_value = "/",
        value_name = "DIR"
    )]
    pub store_root: PathBuf,

    /// Directory for Peerix's own state, created when missing [default: $STATE_DIRECTORY, else
    /// /var/lib/peerix when writable, else $XDG_STATE_HOME/peerix or ~/.local/state/peerix].
    #[arg(long, env = "PEERIX_STATE_DIR", value_name = "DIR")]
    pub state_dir: Option<PathBuf>,

    /// Contact nothing that was not given explicitly: no default upstream cache, no public
    /// bootstrap peers, no public DHT, no mDNS.
    #[arg(long, env = "PEERIX_OFFLINE", value_parser = BoolishValueParser::new())]
    pub offline: bool,

    /// DHT announcements started per second at most (one per published path; 0: no pacing,
    /// only eight at a time). `peerix ipfs announce pause|resume` stops and restarts them.
    #[arg(
        long,
        env = "PEERIX_ANNOUNCE_RATE",
        default_value_t = 10.0,
        value_name = "PER_SECOND"
    )]
    pub announce_rate: f64,

    /// Disk space for NARs fetched from peers, served again without asking them (suffixes k, M,
    /// G or KiB, MiB, GiB; kept in STATE_DIR/nar-cache) [default: 0, no cache].
    #[arg(long, env = "PEERIX_CACHE_SIZE", value_parser = parse_amount, default_value = "0", value_name = "SIZE")]
    pub cache_size: u64,

    /// Serve Nix the paths no peer holds from --upstream-cache, through this node: upstream's
    /// narinfo and signatures as they are, its file passed unchanged with FileHash checked; the
    /// near nodes of the network (on the LAN, or all of an explicitly set --network-id)
    /// get each file from one of them, so it crosses the uplink once.
    #[arg(long, env = "PEERIX_PULL_THROUGH", value_parser = BoolishValueParser::new())]
    pub pull_through: bool,

    /// Seconds between full publication scans of the store (new paths are noticed within
    /// seconds anyway); 0 turns the periodic scan off.
    #[arg(
        long,
        env = "PEERIX_SCAN_INTERVAL",
        default_value_t = 3600,
        value_name = "SECONDS"
    )]
    pub scan_interval: u64,

    /// How peers are found: `ipfs` (Peerix's own DHT, mDNS and the public IPFS DHT), `libp2p`
    /// (no public DHT), `lan` (mDNS and the old UDP protocol, no internet), `wan` (the tracker
    /// only), `hybrid` (libp2p and the tracker), `both` (lan and the tracker).
    #[arg(long, env = "PEERIX_MODE", value_enum, default_value = "ipfs")]
    pub mode: Mode,

    /// The tracker (http://HOST:12305) this node announces itself and its paths to and asks
    /// who holds a path; needed by `wan`, `hybrid` and `both`, used in `ipfs` and `libp2p` when
    /// given.
    #[arg(long, env = "PEERIX_TRACKER_URL", value_name = "URL")]
    pub tracker_url: Option<String>,

    /// Check every flag and file, print what would run, and exit (0, or 2 for a bad setting)
    /// without binding a port, starting the node or writing anything. No environment
    /// variable: one left set would keep the service from ever starting.
    #[arg(long)]
    pub check_config: bool,

    #[command(flatten)]
    pub lan: LanArgs,

    #[command(flatten)]
    pub filter: FilterArgs,

    #[command(flatten)]
    pub http: HttpArgs,

    #[command(flatten)]
    pub node: NodeArgs,

    #[command(flatten)]
    pub trust: TrustArgs,
}

/// How paths from peers are fetched.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The embedded node on the public IPFS DHT as well as Peerix's own (kubo too with --ipfs-api).
    Ipfs,
    /// The same without the public IPFS DHT.
    Libp2p,
    /// No internet: Peerix nodes found by mDNS, and the old program's UDP protocol both ways
    /// for machines still running it.
    Lan,
    /// Peers found through the tracker alone (no DHT rendezvous, no mDNS); NAT traversal as in
    /// the other modes.
    Wan,
    /// `libp2p` and the tracker together.
    Hybrid,
    /// `lan` and `wan` together.
    Both,
}

impl Mode {
    /// The name `--mode` takes.
    pub fn name(self) -> &'static str {
        match self {
            Self::Ipfs => "ipfs",
            Self::Libp2p => "libp2p",
            Self::Lan => "lan",
            Self::Wan => "wan",
            Self::Hybrid => "hybrid",
            Self::Both => "both",
        }
    }

    /// Whether nodes find each other on their own (DHT rendezvous, mDNS).
    pub fn finds_peers_itself(self) -> bool {
        self != Self::Wan
    }

    pub fn needs_tracker(self) -> bool {
        matches!(self, Self::Wan | Self::Hybrid | Self::Both)
    }
}

#[derive(Args, Debug)]
pub struct NodeArgs {
    /// libp2p listen address (repeatable) [default: TCP and QUIC on all interfaces at --port + 1000].
    #[arg(
        long = "listen-addrs",
        visible_alias = "listen-addr",
        env = "PEERIX_LISTEN_ADDRS",
        value_delimiter = ',',
        value_name = "MULTIADDR"
    )]
    pub listen_addrs: Vec<Multiaddr>,

    /// Peer to connect to at start, ending in /p2p/<peer id> (repeatable) [default: the public IPFS
    /// bootstrap peers, none with --offline].
    #[arg(
        long = "bootstrap-peers",
        visible_alias = "bootstrap-peer",
        env = "PEERIX_BOOTSTRAP_PEERS",
        value_delimiter = ',',
        value_name = "MULTIADDR"
    )]
    pub bootstrap_peers: Vec<Multiaddr>,

    /// Another Peerix's `/bootstrap` URL (http://HOST:12304/bootstrap): its node is dialled at
    /// start and whenever this node has no peer left.
    #[arg(long, env = "PEERIX_BOOTSTRAP_URL", value_name = "URL")]
    pub bootstrap_url: Option<String>,

    /// Nodes share a private DHT, path lists and answers only with nodes of the same network id
    /// (a label that separates networks, not a password).
    #[arg(
        long,
        env = "PEERIX_NETWORK_ID",
        default_value = DEFAULT_NETWORK_ID,
        value_name = "ID"
    )]
    pub network_id: String,

    /// The node's libp2p identity (created, mode 0600, when missing) [default: STATE_DIR/identity.key].
    #[arg(long, env = "PEERIX_IDENTITY_FILE", value_name = "FILE")]
    pub identity_file: Option<PathBuf>,

    /// Peer-to-peer traffic cap in bytes per second, each direction (suffixes k, M, G or KiB, MiB,
    /// GiB) [default: no cap].
    #[arg(long, env = "PEERIX_BANDWIDTH_LIMIT", value_parser = parse_rate, value_name = "RATE")]
    pub bandwidth_limit: Option<u64>,

    /// Use a running kubo through its HTTP RPC (e.g. http://127.0.0.1:5001) for adding, fetching
    /// and announcing content, next to the embedded node.
    #[arg(long, env = "PEERIX_IPFS_API", value_name = "URL")]
    pub ipfs_api: Option<String>,

    /// Run no embedded IPFS node: the kubo given by --ipfs-api does all the IPFS work.
    #[arg(long, env = "PEERIX_NO_EMBEDDED_NODE", value_parser = BoolishValueParser::new(), requires = "ipfs_api")]
    pub no_embedded_node: bool,

    #[command(flatten)]
    pub reachability: ReachabilityArgs,

    #[command(flatten)]
    pub connections: PeerConnectionArgs,
}

/// `20M` = 20,000,000; `20MiB` = 20 × 2^20; a trailing `/s` or `B` is allowed.
pub(crate) fn parse_amount(text: &str) -> Result<u64, String> {
    let trimmed = text.trim().trim_end_matches("/s").trim_end_matches('B');
    let split = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (digits, unit) = trimmed.split_at(split);
    let scale: u64 = match unit {
        "" => 1,
        "k" | "K" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        _ => {
            return Err(format!(
                "unknown unit in {text:?}: use k, M, G, KiB, MiB or GiB"
            ))
        }
    };
    let value: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not an amount like 20M or 512KiB"))?;
    value
        .checked_mul(scale)
        .ok_or_else(|| format!("{text:?} is too large"))
}

/// A bandwidth: an amount per second, never 0.
fn parse_rate(text: &str) -> Result<u64, String> {
    match parse_amount(text)? {
        0 => Err("a bandwidth limit of 0 would stop all traffic".to_owned()),
        rate => Ok(rate),
    }
}

#[derive(Args, Debug)]
pub struct KeygenArgs {
    /// Key name, conventionally `<host>-1`.
    pub name: String,
    /// Where to write the secret key (created with mode 0600, never overwritten).
    pub secret_file: PathBuf,
    /// Where to write the public key.
    pub public_file: PathBuf,
}

/// `peerix serve ARGS`, parsed as the command line would be (for the flags' tests).
#[cfg(test)]
pub(crate) fn parse_serve(args: &[&str]) -> Box<ServeArgs> {
    let cli = Cli::try_parse_from(["peerix", "serve"].iter().chain(args)).unwrap();
    match cli.command {
        Command::Serve(args) => args,
        other => panic!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::{parse_amount, parse_rate};

    #[test]
    fn rates_take_decimal_and_binary_suffixes() {
        assert_eq!(parse_rate("1500"), Ok(1500));
        assert_eq!(parse_rate("20M"), Ok(20_000_000));
        assert_eq!(parse_rate("20MB/s"), Ok(20_000_000));
        assert_eq!(parse_rate("512KiB"), Ok(512 << 10));
        assert_eq!(parse_rate("1GiB/s"), Ok(1 << 30));
        for bad in ["", "0", "M", "12X", "-1", "99999999999G"] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_amount("0"), Ok(0));
        assert_eq!(parse_amount("10GiB"), Ok(10 << 30));
    }
}
