//! The path Nix's requests take when this machine lacks a path: the holders are asked for its
//! narinfo (hedged, the best-scored first), which must pass the trust checks, and its NAR is streamed from them through a
//! verifier (one holder, several streams from a far one, or Bitswap from all of them), kept in
//! the NAR cache when there is one; near nodes that fetch the same large NAR at once fetch it
//! together (a swarm). A path no peer holds may come through from the upstream cache
//! (`--pull-through`), one near node pulling each file for the others.

mod kubo_nar;
mod lookup;
mod lookups;
mod named_cids;
mod nar_cache;
mod nar_log;
mod near;
mod old_peer_nar;
mod p2p_cache;
mod peer;
mod prefetch;
mod pull_through;
pub mod refusals;
mod remote;
mod scores;
mod served;
mod source;
mod stream_pool;
mod swarms;
mod transfers;
mod trust;
mod upstream;
mod upstream_client;

pub use lookups::{LookupSource, Lookups};
pub use nar_cache::NarCache;
pub use nar_log::NarLog;
pub use near::NearMembers;
pub use p2p_cache::P2pCache;
pub use pull_through::{PullThrough, PullThroughError, PullThroughParts};
pub use remote::Remote;
pub use served::Served;
pub use source::Source;
pub use swarms::Swarms;
pub use trust::{Trust, NIXOS_CACHE_KEY, NIXOS_CACHE_URL};
pub use upstream::Upstream;
