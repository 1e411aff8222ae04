//! Which peers' paths are accepted: trusted keys, upstream agreement, trusted peers.

use clap::builder::BoolishValueParser;
use clap::Args;

#[derive(Args, Debug)]
pub struct TrustArgs {
    /// Key whose signature makes a peer's path acceptable, as in Nix's trusted-public-keys
    /// (repeatable), trusted besides cache.nixos.org-1's key.
    #[arg(
        long = "trusted-public-key",
        visible_alias = "trusted-public-keys",
        env = "PEERIX_TRUSTED_PUBLIC_KEYS",
        value_delimiter = ',',
        value_name = "KEY"
    )]
    pub trusted_public_keys: Vec<String>,

    /// Trust only the --trusted-public-key keys, not cache.nixos.org-1's key as well.
    #[arg(long, env = "PEERIX_NO_DEFAULT_TRUSTED_KEYS", value_parser = BoolishValueParser::new())]
    pub no_default_trusted_keys: bool,

    /// Binary cache asked about paths no trusted key signed: a peer's path is accepted, with
    /// this cache's narinfo, if it has the same NAR for it; "" for none [default:
    /// https://cache.nixos.org, none with --offline unless given].
    #[arg(long, env = "PEERIX_UPSTREAM_CACHE", value_name = "URL")]
    pub upstream_cache: Option<String>,

    /// Accept the paths of the --trusted-peer peers without a trusted signature or upstream
    /// agreement (their NAR hash is still checked; Peerix does not sign them).
    #[arg(long, env = "PEERIX_NO_VERIFY", value_parser = BoolishValueParser::new())]
    pub no_verify: bool,

    /// Peer whose paths --no-verify lets through (repeatable); from any other peer a path
    /// still needs a trusted signature or upstream agreement.
    #[arg(
        long = "trusted-peer",
        env = "PEERIX_TRUSTED_PEERS",
        value_delimiter = ',',
        value_name = "PEER_ID"
    )]
    pub trusted_peers: Vec<peerix_node::PeerId>,
}
