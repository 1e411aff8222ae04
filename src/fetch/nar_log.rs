//! What narinfo answers said of peers' NARs, recorded durably before the narinfo reaches Nix (it
//! may ask for the NAR long after, across a restart). One thread writes them, every record
//! waiting at that moment in one commit: a burst of first-time narinfos costs a few fsyncs, not
//! one each, and no fsync ever blocks the runtime's workers. Records not offered again for
//! [`REMOTE_NAR_DAYS`] are forgotten, once a day: every distinct path offered Nix left one.

use std::sync::Arc;

use peerix_http::NarHash;
use tokio::sync::{mpsc, oneshot};

use crate::publish::{today, IndexDb, RemoteNar, REMOTE_NAR_DAYS};

/// Records committed together at most.
const BATCH: usize = 512;

type Pending = (NarHash, RemoteNar, oneshot::Sender<bool>);

pub struct NarLog {
    db: Arc<IndexDb>,
    pending: mpsc::UnboundedSender<Pending>,
}

impl NarLog {
    pub fn start(db: Arc<IndexDb>) -> std::io::Result<Self> {
        let (pending, mut receiver) = mpsc::unbounded_channel::<Pending>();
        let writer_db = db.clone();
        std::thread::Builder::new()
            .name("nar-log".to_owned())
            .spawn(move || {
                let mut pruned_on = None;
                while let Some(first) = receiver.blocking_recv() {
                    let day = today();
                    if pruned_on != Some(day) {
                        pruned_on = Some(day);
                        forget_old(&writer_db, day);
                    }
                    let mut batch = vec![first];
                    while batch.len() < BATCH {
                        match receiver.try_recv() {
                            Ok(next) => batch.push(next),
                            Err(_) => break,
                        }
                    }
                    let records: Vec<(NarHash, RemoteNar)> = batch
                        .iter()
                        .map(|(hash, nar, _)| (*hash, nar.clone()))
                        .collect();
                    let written = writer_db.remember_remote_nars(&records, day);
                    if let Err(e) = &written {
                        tracing::warn!(error = %e, "cannot remember peers' NARs");
                    }
                    for (_, _, done) in batch {
                        let _ = done.send(written.is_ok());
                    }
                }
            })?;
        Ok(Self { db, pending })
    }

    /// Records `nar` and waits until it is on disk; `false` if it could not be written.
    pub async fn record(&self, nar_hash: NarHash, nar: RemoteNar) -> bool {
        let (done, written) = oneshot::channel();
        if self.pending.send((nar_hash, nar, done)).is_err() {
            return false;
        }
        written.await.unwrap_or(false)
    }

    /// What was recorded for `nar_hash`.
    pub fn get(&self, nar_hash: &NarHash) -> Option<RemoteNar> {
        match self.db.remote_nar(nar_hash) {
            Ok(nar) => nar,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read a peer's NAR record");
                None
            }
        }
    }
}

fn forget_old(db: &IndexDb, today: u64) {
    match db.forget_remote_nars_before(today.saturating_sub(REMOTE_NAR_DAYS)) {
        Ok(0) => {}
        Ok(gone) => {
            tracing::info!(
                gone,
                "forgot peers' NARs not offered for {REMOTE_NAR_DAYS} days"
            );
        }
        Err(e) => tracing::warn!(error = %e, "cannot forget old records of peers' NARs"),
    }
}
