//! NARs of paths found on machines running the old LAN protocol: where each is (remembered in
//! memory for a while, since Nix fetches the NAR right after the narinfo) and the stream that
//! reads one over HTTP, hashed as it arrives like a peer's.

use std::io;
use std::time::Duration;

use bytes::Bytes;
use hashlink::LruCache;
use http_body_util::BodyExt;
use peerix_http::{channel_stream, ByteStream, NarHash, NarSource};
use std::sync::Mutex;
use tokio::sync::mpsc;

use super::peer::{FetchError, NarOutcome, NarProgress};
use super::remote::CHUNKS_IN_FLIGHT;
use crate::lan::old_peer_http::{self, NAR_HEAD_DEADLINE};
use crate::lan::NarLocation;

/// NAR locations remembered at most.
const REMEMBERED: usize = 4096;
/// A NAR stream that sends nothing this long is given up.
const STALL: Duration = Duration::from_secs(30);

/// Where the NARs of paths old peers served are.
pub struct OldPeerNars {
    known: Mutex<LruCache<NarHash, (NarLocation, u64)>>,
}

impl Default for OldPeerNars {
    fn default() -> Self {
        Self {
            known: Mutex::new(LruCache::new(REMEMBERED)),
        }
    }
}

impl OldPeerNars {
    pub fn record(&self, nar_hash: NarHash, location: NarLocation, size: u64) {
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        known.insert(nar_hash, (location, size));
    }

    pub fn get(&self, nar_hash: &NarHash) -> Option<OldPeerNar> {
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        let (location, size) = known.get(nar_hash)?.clone();
        Some(OldPeerNar {
            nar_hash: *nar_hash,
            size,
            location,
        })
    }
}

pub struct OldPeerNar {
    nar_hash: NarHash,
    pub size: u64,
    location: NarLocation,
}

impl NarSource for OldPeerNar {
    fn stream(self: Box<Self>, start: u64, end: u64) -> ByteStream {
        let (output, chunks) = mpsc::channel(CHUNKS_IN_FLIGHT);
        tokio::spawn(async move {
            let mut progress = NarProgress::new(self.nar_hash, self.size, start, end);
            let outcome = self.read(&mut progress, &output).await;
            if !matches!(outcome, NarOutcome::Complete | NarOutcome::Abandoned) {
                tracing::warn!(from = %self.location.http, nar = %self.nar_hash, %outcome, "NAR from an old peer failed");
                let _ = output
                    .send(Err(io::Error::other(outcome.to_string())))
                    .await;
            }
        });
        channel_stream(chunks)
    }
}

impl OldPeerNar {
    /// The whole NAR (old peers take no ranges), hashed; the reader gets its part of it.
    async fn read(
        &self,
        progress: &mut NarProgress,
        output: &mpsc::Sender<io::Result<Bytes>>,
    ) -> NarOutcome {
        let failed = |why: String| NarOutcome::Interrupted(FetchError::Unreachable(why));
        let location = &self.location;
        let response =
            match old_peer_http::get(location.http, &location.target, NAR_HEAD_DEADLINE).await {
                Ok(response) => response,
                Err(e) => return failed(e.to_string()),
            };
        let mut body = response.into_body();
        loop {
            let frame = tokio::select! {
                frame = tokio::time::timeout(STALL, body.frame()) => frame,
                () = output.closed() => return NarOutcome::Abandoned,
            };
            let frame = match frame {
                Err(_) => return failed("stalled".to_owned()),
                Ok(None) => break,
                Ok(Some(Err(e))) => return failed(e.to_string()),
                Ok(Some(Ok(frame))) => frame,
            };
            let Ok(chunk) = frame.into_data() else {
                continue;
            };
            if let Err(outcome) = progress.take_bounded(chunk, output).await {
                return outcome;
            }
        }
        progress.end_of_stream(output).await
    }
}
