//! The Nix binary-cache protocol over HTTP.
//!
//! The formats Nix speaks to a substituter (nixbase32, store path names, NAR hashes, narinfo) and an
//! axum router that serves any [`BinaryCache`]. Where the bytes come from is the caller's business.
#![forbid(unsafe_code)]

mod cache;
mod encoding;
mod error;
mod guard;
mod ipfs_api;
mod metrics;
pub mod nar_hash;
pub mod narinfo;
pub mod nixbase32;
mod paced_body;
mod range;
mod request_counts;
mod router;
mod server;
pub mod store_path;

pub use cache::{channel_stream, BinaryCache, ByteStream, CacheError, CacheInfo, Nar, NarSource};
pub use guard::{is_loopback_name, BrowserGuard, Guarded, Refusal};
pub use ipfs_api::{ipfs_api_router, ApiError, IpfsApi, NodeIdentity};
pub use metrics::{FrontCounters, Metrics, MoreMetrics};
pub use nar_hash::NarHash;
pub use narinfo::NarInfo;
pub use paced_body::{TooSlow, MIN_RATE as MIN_BODY_RATE};
pub use range::ByteRange;
pub use request_counts::{CountRequests, CountRequestsLayer};
pub use router::router;
pub use server::{serve, ServerLimits};
pub use store_path::{StoreHash, StorePathName};
