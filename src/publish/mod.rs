//! What this node offers: the publication index of every shared path with its narinfo and the
//! CID its NAR is published under in the embedded node, kept current by a resumable scan; and the
//! answers to other nodes' narinfo and NAR requests.

mod admission;
mod answer;
mod answered;
mod content;
mod db;
mod kubo;
mod scan;

pub use admission::Admission;
pub use answer::{run as answer_requests, ServedNar};
pub use answered::Answered;
pub use content::StoreContent;
pub use db::{today, IndexDb, IndexError, RemoteNar, REMOTE_NAR_DAYS};
pub use kubo::KuboPublisher;
pub use scan::{ScanControl, ScanProgress, Scanner};
