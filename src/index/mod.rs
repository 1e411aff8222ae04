//! Publishing the store: an index of every shared path with its narinfo and the CID its NAR is
//! published under in the embedded node, kept current by a resumable scan.

mod content;
mod db;
mod scan;

pub use content::StoreContent;
pub use db::{IndexDb, RemoteNar};
pub use scan::{ScanProgress, Scanner};
