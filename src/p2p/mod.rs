//! Peer-to-peer substitution: nodes tell each other which store paths they hold (the index
//! protocol), answer narinfo and NAR requests for them, and the HTTP front asks the holders of a
//! path this machine lacks.

mod bootstrap;
mod cache;
mod discovery;
mod fetch;
mod frames;
mod holders;
mod index;
mod nar_cache;
mod nar_log;
mod requests;
mod stream_pool;
mod trust;
pub mod wire;

pub use bootstrap::{
    follow as follow_bootstrap_url, parse_answer as parse_bootstrap_answer,
    router as bootstrap_router,
};
pub use cache::{P2pCache, Remote};
pub use discovery::run as discover_network;
pub use holders::Holders;
pub use index::{run as run_index, watch_store, LocalIndex};
pub use nar_cache::NarCache;
pub use nar_log::NarLog;
pub use requests::run as answer_requests;
pub use trust::{Trust, NIXOS_CACHE_KEY, NIXOS_CACHE_URL};
