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
mod requests;
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
pub use requests::run as answer_requests;
pub use trust::{Trust, NIXOS_CACHE_KEY, NIXOS_CACHE_URL};
