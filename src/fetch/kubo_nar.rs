//! A NAR read through kubo's `cat` (`--ipfs-api`) by the CID a holder named or the tracker maps,
//! when no Peerix holder can send it: hashed against NarHash while it streams, like a peer's.

use std::io::{self, Read};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use cid::Cid;
use tokio::sync::mpsc;

use super::peer::{FetchError, NarOutcome, NarProgress};
use super::remote::CHUNKS_IN_FLIGHT;
use crate::kubo_rpc::KuboRpc;

/// kubo first looks for the content's providers: it must begin its answer within this.
const FIRST_BYTE: Duration = Duration::from_secs(30);
/// An answer that stalls this long is given up.
const STALL: Duration = Duration::from_secs(30);
/// The whole answer may take this, plus a second per [`MIN_RATE`] bytes: bounds the thread
/// that reads it even when kubo trickles.
const BASE_DEADLINE: Duration = Duration::from_secs(60);
const MIN_RATE: u64 = 1 << 20;
/// Handed on in pieces of this size: a NAR no larger reaches the reader only once verified.
const PIECE: usize = 1 << 20;
/// Bytes read from kubo's answer at a time.
const READ: usize = 64 << 10;

/// Continues `progress` from kubo, by `cid`, from the offset it reached.
pub async fn nar(
    kubo: &KuboRpc,
    cid: Cid,
    progress: &mut NarProgress,
    output: &mpsc::Sender<io::Result<Bytes>>,
) -> NarOutcome {
    let (reads, mut incoming) = mpsc::channel(CHUNKS_IN_FLIGHT);
    let (kubo, offset) = (kubo.clone(), progress.offset);
    let whole = BASE_DEADLINE + Duration::from_secs((progress.size - offset) / MIN_RATE);
    tokio::task::spawn_blocking(move || read_cat(&kubo, cid, offset, whole, &reads));
    let mut wait = FIRST_BYTE;
    // Pieces are handed on whole: a NAR of one piece reaches the reader only once it hashed
    // right, since the last piece is held back until then.
    let mut pending = BytesMut::with_capacity(PIECE);
    loop {
        let read = tokio::select! {
            read = tokio::time::timeout(wait, incoming.recv()) => read,
            () = output.closed() => return NarOutcome::Abandoned,
        };
        match read {
            Err(_) => return interrupted("kubo stalled".to_owned()),
            Ok(None) => break,
            Ok(Some(Err(e))) => return interrupted(e.to_string()),
            Ok(Some(Ok(bytes))) => pending.extend_from_slice(&bytes),
        }
        if pending.len() >= PIECE {
            if let Err(outcome) = progress
                .take_bounded(pending.split().freeze(), output)
                .await
            {
                return outcome;
            }
        }
        wait = STALL;
    }
    if !pending.is_empty() {
        if let Err(outcome) = progress.take_bounded(pending.freeze(), output).await {
            return outcome;
        }
    }
    progress.end_of_stream(output).await
}

fn interrupted(why: String) -> NarOutcome {
    NarOutcome::Interrupted(FetchError::Unreachable(format!("kubo: {why}")))
}

/// Reads kubo's answer (blocking), passing on what each read gives, until it ends, fails, or
/// nobody takes it any more.
fn read_cat(
    kubo: &KuboRpc,
    cid: Cid,
    offset: u64,
    whole: Duration,
    reads: &mpsc::Sender<io::Result<Bytes>>,
) {
    let mut body = match kubo.cat_from(&cid.to_string(), offset, FIRST_BYTE, whole) {
        Ok(body) => body,
        Err(e) => {
            let _ = reads.blocking_send(Err(io::Error::other(e)));
            return;
        }
    };
    let mut buf = vec![0; READ];
    loop {
        let read = match body.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => Ok(Bytes::copy_from_slice(&buf[..n])),
            Err(e) => Err(e),
        };
        let failed = read.is_err();
        if reads.blocking_send(read).is_err() || failed {
            return;
        }
    }
}
