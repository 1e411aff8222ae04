//! Who holds which store path, learnt from every source: the index protocol between connected
//! Peerix nodes ([`exchange`]), the DHT rendezvous that connects nodes of one network
//! ([`rendezvous`]), `--bootstrap-url` ([`bootstrap`]) and the tracker ([`tracker`]). Each feeds
//! one [`Holders`]; nothing downstream knows which source a holder came from. When none of them
//! gives a peer for minutes, that is said once ([`alone`]).

mod alone;
mod bootstrap;
mod exchange;
mod holders;
mod rendezvous;
pub mod tracker;

pub use alone::{warn_when_alone, PeerSources};
pub use bootstrap::{
    follow as follow_bootstrap_url, parse_answer as parse_bootstrap_answer,
    router as bootstrap_router,
};
pub use exchange::run as run_index;
pub use holders::{Holders, MAX_HASHES, MAX_HASHES_PER_PEER};
pub use rendezvous::run as discover_network;
