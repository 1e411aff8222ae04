//! Asking other nodes: a narinfo over the narinfo protocol, a NAR over the NAR protocol, checked
//! against the NAR hash and size while it streams.

use std::collections::VecDeque;
use std::io;
use std::time::Duration;

use bytes::Bytes;
use cid::Cid;
use futures_util::AsyncReadExt;
use peerix_http::{NarHash, NarInfo, StoreHash};
use peerix_node::{NodeHandle, PeerId, Stream};
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, Semaphore};

use super::stream_pool::StreamPool;
use crate::wire::frames::{expect_frame, write_frame};
use crate::wire::{
    decode_nar_answer, encode_hash, NarRequest, NarinfoAnswer, NARINFO_PROTOCOL, NAR_PROTOCOL,
};

/// A narinfo answer must come this fast; a slow peer costs Nix's time. A busy holder queues a
/// request for up to 2 s (`publish/answer.rs`), so this leaves it a second to answer.
const NARINFO_TIMEOUT: Duration = Duration::from_secs(3);
/// The head of a NAR answer: a busy holder queues a NAR request for up to 5 s.
const NAR_HEAD_TIMEOUT: Duration = Duration::from_secs(6);
/// A NAR stream that stalls this long is given up.
const NAR_STALL_TIMEOUT: Duration = Duration::from_secs(30);
const CHUNK: usize = 1024 * 1024;
/// What one stream of a striped NAR fetch carries at a time.
const SEGMENT: u64 = 4 << 20;
/// Segments being read at once, over all striped fetches: 96 MiB.
static SEGMENT_BUDGET: Semaphore = Semaphore::const_new(24);

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("no answer: {0}")]
    Unreachable(String),
    #[error("the peer does not have it")]
    NotFound,
    #[error("the peer sent what the protocol does not allow: {0}")]
    Malformed(String),
    #[error("the peer sent {got} where {expected} was announced")]
    Lied { got: String, expected: String },
    /// The whole NAR hashed wrong: the last source's fault only if it sent every byte.
    #[error("the NAR hashes to {got}, not {expected}")]
    WrongNarHash { got: NarHash, expected: NarHash },
}

/// A peer's narinfo for `hash`, with the CID its NAR is published under when it says. Asked on
/// an idle stream from `pool` when there is one (again on a new stream if that one has died).
pub async fn narinfo(
    node: &NodeHandle,
    pool: &StreamPool,
    peer: PeerId,
    hash: StoreHash,
) -> Result<(NarInfo, Option<Cid>), FetchError> {
    let request = encode_hash(&hash);
    let asked = async {
        if let Some(mut stream) = pool.take(peer) {
            if let Ok(frame) = ask(&mut stream, &request).await {
                pool.put_back(peer, stream);
                return Ok(frame);
            }
        }
        let protocol = node.network_protocol(NARINFO_PROTOCOL);
        let mut stream = node
            .open_stream(peer, protocol)
            .await
            .map_err(|e| FetchError::Unreachable(e.to_string()))?;
        let frame = ask(&mut stream, &request)
            .await
            .map_err(|e| FetchError::Unreachable(e.to_string()))?;
        pool.put_back(peer, stream);
        Ok(frame)
    };
    let frame = tokio::time::timeout(NARINFO_TIMEOUT, asked)
        .await
        .map_err(|_| FetchError::Unreachable("timed out".to_owned()))??;
    let answer = NarinfoAnswer::decode(&frame).map_err(|e| FetchError::Malformed(e.to_string()))?;
    let NarinfoAnswer::Found { text, cid } = answer else {
        return Err(FetchError::NotFound);
    };
    let narinfo = NarInfo::parse(&text).map_err(|e| FetchError::Malformed(e.to_string()))?;
    if narinfo.store_path.hash() != hash {
        return Err(FetchError::Lied {
            got: narinfo.store_path.to_string(),
            expected: hash.to_string(),
        });
    }
    Ok((narinfo, cid))
}

/// One request and its answer on `stream`.
async fn ask(stream: &mut Stream, request: &[u8]) -> io::Result<Vec<u8>> {
    write_frame(stream, request).await?;
    expect_frame(stream).await
}

/// Reads the whole NAR by `cid` over Bitswap, blocks spread over `peers` (each block checked
/// against its CID), into `progress` like [`nar`].
pub async fn nar_by_cid(
    mut chunks: mpsc::Receiver<io::Result<Vec<u8>>>,
    progress: &mut NarProgress,
    output: &mpsc::Sender<io::Result<Bytes>>,
) -> NarOutcome {
    loop {
        // A reader who left (Nix stops at the first bytes that are not a NAR) ends the fetch at
        // once, not when the next block arrives: the caller then stops trusting this CID before
        // Nix's retry asks again.
        let chunk = tokio::select! {
            chunk = chunks.recv() => chunk,
            () = output.closed() => return NarOutcome::Abandoned,
        };
        let Some(chunk) = chunk else {
            break;
        };
        let chunk = match chunk {
            Ok(chunk) => chunk,
            Err(e) => return NarOutcome::Interrupted(FetchError::Unreachable(e.to_string())),
        };
        if let Err(outcome) = progress.take_bounded(Bytes::from(chunk), output).await {
            return outcome;
        }
    }
    progress.end_of_stream(output).await
}

/// How a NAR download ended, for the caller to pick the next peer or give up.
pub enum NarOutcome {
    /// Every byte arrived and matched; all were handed on.
    Complete,
    /// The peer could not go on; another may resume at [`NarProgress::offset`].
    Interrupted(FetchError),
    /// The peer sent wrong bytes (or lied about them): the reader has been told, if it got any.
    Wrong(FetchError),
    /// The reader went away.
    Abandoned,
}

impl std::fmt::Display for NarOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Complete => f.write_str("complete"),
            Self::Interrupted(e) => write!(f, "interrupted: {e}"),
            Self::Wrong(e) => write!(f, "wrong data: {e}"),
            Self::Abandoned => f.write_str("abandoned by the reader"),
        }
    }
}

/// A NAR download across peers: what has been read and hashed so far.
pub struct NarProgress {
    pub nar_hash: NarHash,
    pub size: u64,
    /// Bytes of the NAR the reader wants.
    pub start: u64,
    pub end: u64,
    hasher: Sha256,
    /// Bytes read and hashed so far (from the NAR's start).
    pub offset: u64,
    /// The last part for the reader, held back until the whole NAR is known to be right.
    held: Option<Bytes>,
    /// Whether the reader has received anything.
    pub handed_on: bool,
}

impl NarProgress {
    pub fn new(nar_hash: NarHash, size: u64, start: u64, end: u64) -> Self {
        Self {
            nar_hash,
            size,
            start,
            end,
            hasher: Sha256::new(),
            offset: 0,
            held: None,
            handed_on: false,
        }
    }

    /// Takes the next `chunk` of the NAR; hands the reader the previous part it wants.
    async fn take(&mut self, chunk: Bytes, output: &mpsc::Sender<io::Result<Bytes>>) -> bool {
        self.hasher.update(&chunk);
        let (chunk_start, chunk_end) = (self.offset, self.offset + chunk.len() as u64);
        self.offset = chunk_end;
        let from = self.start.clamp(chunk_start, chunk_end) - chunk_start;
        let to = self.end.clamp(chunk_start, chunk_end) - chunk_start;
        if from == to {
            return true;
        }
        let part = chunk.slice(from as usize..to as usize);
        match self.held.replace(part) {
            Some(previous) => {
                self.handed_on = true;
                output.send(Ok(previous)).await.is_ok()
            }
            None => true,
        }
    }

    /// Takes the next chunk of a stream that has no length of its own (Bitswap, an HTTP body):
    /// more bytes than the NAR has are a lie.
    pub(super) async fn take_bounded(
        &mut self,
        chunk: Bytes,
        output: &mpsc::Sender<io::Result<Bytes>>,
    ) -> Result<(), NarOutcome> {
        if self.offset + chunk.len() as u64 > self.size {
            return Err(NarOutcome::Wrong(FetchError::Lied {
                got: "more bytes".to_owned(),
                expected: format!("{} bytes", self.size),
            }));
        }
        match self.take(chunk, output).await {
            true => Ok(()),
            false => Err(NarOutcome::Abandoned),
        }
    }

    /// Where such a stream ended: it must have carried the whole NAR, and the right one.
    pub(super) async fn end_of_stream(
        &mut self,
        output: &mpsc::Sender<io::Result<Bytes>>,
    ) -> NarOutcome {
        if self.offset != self.size {
            return NarOutcome::Wrong(FetchError::Lied {
                got: format!("{} bytes", self.offset),
                expected: format!("{} bytes", self.size),
            });
        }
        self.finish(output).await
    }

    /// Checks the whole NAR; hands on the held part only if it is right.
    async fn finish(&mut self, output: &mpsc::Sender<io::Result<Bytes>>) -> NarOutcome {
        let digest: [u8; 32] = std::mem::take(&mut self.hasher).finalize().into();
        if digest != self.nar_hash.0 {
            return NarOutcome::Wrong(FetchError::WrongNarHash {
                got: NarHash(digest),
                expected: self.nar_hash,
            });
        }
        if let Some(last) = self.held.take() {
            if output.send(Ok(last)).await.is_err() {
                return NarOutcome::Abandoned;
            }
        }
        NarOutcome::Complete
    }
}

/// Opens a NAR stream from `peer` for bytes `start..end` of the NAR `nar_hash`; the peer must
/// answer that it sends exactly that many.
async fn open_nar(
    node: &NodeHandle,
    peer: PeerId,
    nar_hash: NarHash,
    (start, end): (u64, u64),
) -> Result<Stream, NarOutcome> {
    let interrupted =
        |e: io::Error| NarOutcome::Interrupted(FetchError::Unreachable(e.to_string()));
    let protocol = node.network_protocol(NAR_PROTOCOL);
    let mut stream = match node.open_stream(peer, protocol).await {
        Ok(stream) => stream,
        Err(e) => {
            return Err(NarOutcome::Interrupted(FetchError::Unreachable(
                e.to_string(),
            )))
        }
    };
    let request = NarRequest {
        nar_hash,
        start,
        end,
    };
    write_frame(&mut stream, &request.encode())
        .await
        .map_err(interrupted)?;
    let head = match tokio::time::timeout(NAR_HEAD_TIMEOUT, expect_frame(&mut stream)).await {
        Ok(Ok(head)) => head,
        Ok(Err(e)) => return Err(interrupted(e)),
        Err(_) => return Err(interrupted(io::ErrorKind::TimedOut.into())),
    };
    let wanted = end - start;
    match decode_nar_answer(&head) {
        Ok(Some(len)) if len == wanted => Ok(stream),
        Ok(Some(len)) => Err(NarOutcome::Wrong(FetchError::Lied {
            got: format!("{len} bytes"),
            expected: format!("{wanted} bytes"),
        })),
        Ok(None) => Err(NarOutcome::Interrupted(FetchError::NotFound)),
        Err(e) => Err(NarOutcome::Wrong(FetchError::Malformed(e.to_string()))),
    }
}

/// Reads exactly `buf.len()` bytes, giving up if no byte comes for [`NAR_STALL_TIMEOUT`]: a
/// slow uplink shared by several streams is slow, not stalled.
async fn read_exact(stream: &mut Stream, buf: &mut [u8]) -> Result<(), NarOutcome> {
    let failed = |why: String| NarOutcome::Interrupted(FetchError::Unreachable(why));
    let mut filled = 0;
    while filled < buf.len() {
        match tokio::time::timeout(NAR_STALL_TIMEOUT, stream.read(&mut buf[filled..])).await {
            Ok(Ok(0)) => return Err(failed("the stream ended early".to_owned())),
            Ok(Ok(n)) => filled += n,
            Ok(Err(e)) => return Err(failed(e.to_string())),
            Err(_) => return Err(failed("stalled".to_owned())),
        }
    }
    Ok(())
}

/// Continues `progress` from `peer`: asks for the rest of the NAR, hashes it as it arrives and
/// hands the reader its part, holding back the last chunk until the hash and size match, so a
/// wrong NAR never arrives complete.
pub async fn nar(
    node: &NodeHandle,
    peer: PeerId,
    progress: &mut NarProgress,
    output: &mpsc::Sender<io::Result<Bytes>>,
) -> NarOutcome {
    let range = (progress.offset, progress.size);
    let stream = match open_nar(node, peer, progress.nar_hash, range).await {
        Ok(stream) => stream,
        Err(outcome) => return outcome,
    };
    let mut chunks = ReadAhead::start(node, stream, range.1 - range.0);
    while let Some(chunk) = chunks.next().await {
        let chunk = match chunk {
            Ok(chunk) => chunk,
            Err(outcome) => return outcome,
        };
        if !progress.take(chunk, output).await {
            return NarOutcome::Abandoned;
        }
    }
    progress.finish(output).await
}

/// A NAR stream read on a task of its own, up to [`READ_AHEAD`] chunks ahead of the hashing:
/// the holder keeps sending while this side hashes, instead of both waiting in turn for the
/// stream's window. Dropping it stops the reading.
struct ReadAhead {
    chunks: mpsc::Receiver<Result<Bytes, NarOutcome>>,
    reader: tokio::task::JoinHandle<()>,
}

/// Chunks read but not yet hashed, per NAR download.
const READ_AHEAD: usize = 4;

impl ReadAhead {
    /// Reads exactly `len` bytes from `stream`, then checks that nothing follows them, on the
    /// node's runtime (beside the connection that carries the stream).
    fn start(node: &NodeHandle, mut stream: Stream, len: u64) -> Self {
        let (sender, chunks) = mpsc::channel(READ_AHEAD);
        let reader = node.spawn(async move {
            let mut left = len;
            while left > 0 {
                let want = CHUNK.min(usize::try_from(left).unwrap_or(CHUNK));
                let mut chunk = vec![0u8; want];
                if let Err(outcome) = read_exact(&mut stream, &mut chunk).await {
                    let _ = sender.send(Err(outcome)).await;
                    return;
                }
                left -= want as u64;
                if sender.send(Ok(Bytes::from(chunk))).await.is_err() {
                    return;
                }
            }
            let mut extra = [0u8; 1];
            let after = tokio::time::timeout(NAR_STALL_TIMEOUT, stream.read(&mut extra)).await;
            if matches!(after, Ok(Ok(n)) if n > 0) {
                let lied = FetchError::Lied {
                    got: "more bytes".to_owned(),
                    expected: format!("{len} bytes"),
                };
                let _ = sender.send(Err(NarOutcome::Wrong(lied))).await;
            }
        });
        Self { chunks, reader }
    }

    /// The next chunk, an outcome that ends the stream, or `None` after the last chunk.
    async fn next(&mut self) -> Option<Result<Bytes, NarOutcome>> {
        self.chunks.recv().await
    }
}

impl Drop for ReadAhead {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// Like [`nar`], over `streams` streams at once, each carrying the next [`SEGMENT`] of the NAR:
/// one stream's flow-control window caps it at about a window per round trip, so on a long
/// path several together go as fast as the link. Segments are hashed and handed on in order.
pub async fn nar_striped(
    node: &NodeHandle,
    peer: PeerId,
    progress: &mut NarProgress,
    output: &mpsc::Sender<io::Result<Bytes>>,
    streams: usize,
) -> NarOutcome {
    let mut requested = progress.offset;
    let mut in_flight = VecDeque::new();
    let outcome = loop {
        if progress.offset >= progress.size {
            break progress.finish(output).await;
        }
        while in_flight.len() < streams && requested < progress.size {
            let range = (requested, (requested + SEGMENT).min(progress.size));
            let (segment_node, nar_hash) = (node.clone(), progress.nar_hash);
            in_flight.push_back(node.spawn(async move {
                // Bounds the memory of every striped fetch together.
                let _permit = SEGMENT_BUDGET
                    .acquire()
                    .await
                    .map_err(|e| NarOutcome::Interrupted(FetchError::Unreachable(e.to_string())))?;
                let mut stream = open_nar(&segment_node, peer, nar_hash, range).await?;
                let len = usize::try_from(range.1 - range.0).unwrap_or(usize::MAX);
                let mut segment = vec![0u8; len];
                read_exact(&mut stream, &mut segment).await?;
                Ok::<_, NarOutcome>(segment)
            }));
            requested = range.1;
        }
        let Some(next) = in_flight.pop_front() else {
            break progress.finish(output).await;
        };
        let segment = match next.await {
            Ok(Ok(segment)) => segment,
            Ok(Err(outcome)) => break outcome,
            Err(e) => break NarOutcome::Interrupted(FetchError::Unreachable(e.to_string())),
        };
        // Handed on a chunk at a time: the output channel counts items, not bytes.
        let segment = Bytes::from(segment);
        let mut abandoned = false;
        for start in (0..segment.len()).step_by(CHUNK) {
            let end = (start + CHUNK).min(segment.len());
            if !progress.take(segment.slice(start..end), output).await {
                abandoned = true;
                break;
            }
        }
        if abandoned {
            break NarOutcome::Abandoned;
        }
    };
    // Segments still on their way are of no use to anyone now.
    for segment in in_flight {
        segment.abort();
    }
    outcome
}
