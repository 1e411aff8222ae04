//! A flood of NAR requests for random NAR hashes (which no store holds), each on a stream of its
//! own, from bare peers: what a hostile peer, or fifty identities of one, may send a node. The
//! same flood of narinfo requests for random store hashes is its control: the same streams, and
//! a lookup the store's database indexes. Included by `tests/common` and `benches/nar_flood`.

use std::time::{Duration, Instant};

use peerix::wire::frames::{expect_frame, write_frame};
use peerix::wire::{
    decode_nar_answer, encode_hash, NarRequest, NarinfoAnswer, NARINFO_PROTOCOL, NAR_PROTOCOL,
};
use peerix_http::{NarHash, StoreHash};

use super::bare_peer::BarePeer;
use super::synthetic_store::store_hashes;

/// How long a flooding peer waits for one answer before it counts the request unanswered.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// What a flood asks for.
#[derive(Clone, Copy, Debug)]
pub enum Ask {
    /// NARs of random NAR hashes (the NAR protocol).
    Nar,
    /// Narinfos of random store hashes (the narinfo protocol).
    Narinfo,
}

impl Ask {
    fn protocol(self) -> &'static str {
        match self {
            Self::Nar => NAR_PROTOCOL,
            Self::Narinfo => NARINFO_PROTOCOL,
        }
    }

    /// `count` requests, different for each `seed`, for things no store holds.
    fn requests(self, seed: u64, count: usize) -> Vec<Vec<u8>> {
        match self {
            Self::Nar => RandomNarHashes(seed)
                .take(count)
                .map(|nar_hash| {
                    NarRequest {
                        nar_hash,
                        start: 0,
                        end: 1,
                    }
                    .encode()
                })
                .collect(),
            Self::Narinfo => store_hashes(count)
                .iter()
                .map(|hash| encode_hash(&StoreHash::parse(hash).unwrap()))
                .collect(),
        }
    }

    fn answer(self, frame: &[u8]) -> Answer {
        let found = match self {
            Self::Nar => decode_nar_answer(frame).map(|a| a.is_some()),
            Self::Narinfo => NarinfoAnswer::decode(frame).map(|a| a != NarinfoAnswer::NotFound),
        };
        match found {
            Ok(false) => Answer::NotFound,
            Ok(true) => Answer::Found,
            Err(_) => Answer::Malformed,
        }
    }
}

/// What became of a flood's requests.
#[derive(Clone, Copy, Debug, Default)]
pub struct FloodOutcome {
    /// Answered "not found", as every random hash must be.
    pub not_found: usize,
    /// Refused as busy: the stream was not opened, or closed (or left) without an answer.
    pub busy: usize,
    /// Answered "found": a random hash matched, which must never happen.
    pub found: usize,
    /// Answered with a frame that is no answer of the protocol.
    pub malformed: usize,
    pub took: Duration,
}

impl FloodOutcome {
    pub fn requests(&self) -> usize {
        self.not_found + self.busy + self.found + self.malformed
    }

    pub fn per_second(&self) -> f64 {
        self.requests() as f64 / self.took.as_secs_f64().max(f64::EPSILON)
    }

    fn add(&mut self, other: &Self) {
        self.not_found += other.not_found;
        self.busy += other.busy;
        self.found += other.found;
        self.malformed += other.malformed;
    }
}

impl std::fmt::Display for FloodOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} requests in {:.2?} ({:.0}/s): {} not found, {} busy, {} found, {} malformed",
            self.requests(),
            self.took,
            self.per_second(),
            self.not_found,
            self.busy,
            self.found,
            self.malformed
        )
    }
}

/// Distinct random NAR hashes (xorshift64 from a seed per peer): random enough to miss every NAR.
struct RandomNarHashes(u64);

impl Iterator for RandomNarHashes {
    type Item = NarHash;

    fn next(&mut self) -> Option<NarHash> {
        let mut nar_hash = [0u8; 32];
        for chunk in nar_hash.chunks_mut(8) {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            chunk.copy_from_slice(&self.0.to_le_bytes());
        }
        Some(NarHash(nar_hash))
    }
}

/// Sends `count` requests of `ask` for random hashes, spread evenly over `peers`, each peer
/// keeping `in_flight` requests open at a time on streams of their own; waits for every answer.
pub async fn flood_with_unknown(
    peers: Vec<BarePeer>,
    ask: Ask,
    count: usize,
    in_flight: usize,
) -> FloodOutcome {
    let share = count.div_ceil(peers.len().max(1));
    let floods: Vec<_> = peers
        .into_iter()
        .enumerate()
        .map(|(i, peer)| {
            let seed = 0x2545_f491_4f6c_dd1d ^ ((i as u64 + 1) << 32);
            let requests = ask.requests(seed, share.min(count.saturating_sub(i * share)));
            (peer, requests)
        })
        .collect();
    // The requests are ready before the clock starts: the flood's rate is the peers' alone.
    let started = Instant::now();
    let floods: Vec<_> = floods
        .into_iter()
        .map(|(peer, requests)| tokio::spawn(flood_from(peer, ask, requests, in_flight)))
        .collect();
    let mut outcome = FloodOutcome::default();
    for flood in floods {
        outcome.add(&flood.await.unwrap());
    }
    outcome.took = started.elapsed();
    outcome
}

async fn flood_from(
    mut peer: BarePeer,
    ask: Ask,
    requests: Vec<Vec<u8>>,
    in_flight: usize,
) -> FloodOutcome {
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(in_flight.max(1)));
    let mut asks = Vec::with_capacity(requests.len());
    for request in requests {
        let slot = slots.clone().acquire_owned().await.unwrap();
        let stream = peer.try_open(ask.protocol()).await;
        asks.push(tokio::spawn(async move {
            let _slot = slot;
            let Ok(mut stream) = stream else {
                return Answer::Busy;
            };
            if write_frame(&mut stream, &request).await.is_err() {
                return Answer::Busy;
            }
            match tokio::time::timeout(ANSWER_TIMEOUT, expect_frame(&mut stream)).await {
                Ok(Ok(frame)) => ask.answer(&frame),
                Ok(Err(_)) | Err(_) => Answer::Busy,
            }
        }));
    }
    let mut outcome = FloodOutcome::default();
    for ask in asks {
        match ask.await.unwrap() {
            Answer::NotFound => outcome.not_found += 1,
            Answer::Busy => outcome.busy += 1,
            Answer::Found => outcome.found += 1,
            Answer::Malformed => outcome.malformed += 1,
        }
    }
    outcome
}

enum Answer {
    NotFound,
    Busy,
    Found,
    Malformed,
}
