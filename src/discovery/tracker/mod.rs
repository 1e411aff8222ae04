//! The tracker (`--tracker-url`) as a discovery source: this node tells it what it shares and
//! where it is, follows the network's membership set, and asks it who holds a path only when
//! that set says someone does.

mod client;
mod membership;
mod source;
mod sync;
mod transfers;

pub use client::{TrackerClient, TrackerError};
pub use source::TrackerSource;
pub use sync::{run as keep_in_step, HEARTBEAT};
pub use transfers::{report_served, Transfer, TransferReports};
