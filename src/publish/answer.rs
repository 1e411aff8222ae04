//! Answering other nodes: narinfos and NARs of this node's shareable paths, over the narinfo and
//! NAR protocols. The filters apply here exactly as on the HTTP front.
//!
//! Bounded whatever peers do: requests being answered are capped per peer and in all (see
//! [`Admission`]; over a cap a request waits a little, then its stream is closed), every read
//! and write has a deadline, and a NAR request for a hash this node does not share costs a
//! lookup in memory.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{AsyncWriteExt, StreamExt};
use peerix_http::{BinaryCache, NarHash, StoreHash};
use peerix_node::{InboundStream, NodeError, NodeHandle, PeerId};
use tokio::sync::mpsc;

use super::admission::Admission;
use super::answered::Answered;
use super::IndexDb;
use crate::store::LocalStore;
use crate::wire::frames::{expect_frame, read_frame, write_frame};
use crate::wire::{
    decode_narinfo_request, encode_nar_answer, NarRequest, NarinfoAnswer, NARINFO_PROTOCOL,
    NAR_PROTOCOL,
};

/// A request must arrive this soon after the stream opens.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// A narinfo stream may carry one request after another; it is closed after this long idle.
const NARINFO_STREAM_IDLE: Duration = Duration::from_secs(60);
/// An answer (a frame, or one 256 KiB chunk of a NAR) must be taken by the asker within this:
/// a peer that stops reading holds its turn, and a thread reading the store, no longer.
const WRITE_DEADLINE: Duration = Duration::from_secs(30);
/// Narinfo requests answered at once per peer (Nix asks 25 at once, prefetching adds more),
/// and in all.
const NARINFOS_PER_PEER: usize = 64;
const NARINFOS: usize = 512;
/// NAR requests answered at once per peer (a far holder is asked for six 4 MiB segments at
/// once), and in all: each holds a thread reading the store.
const NARS_PER_PEER: usize = 16;
const NARS: usize = 64;
/// How long a request over a cap waits for its turn before its stream is closed.
const NARINFO_TURN_WAIT: Duration = Duration::from_secs(2);
const NAR_TURN_WAIT: Duration = Duration::from_secs(5);

/// A NAR (or a range of it) served to a peer in full.
#[derive(Clone, Copy, Debug)]
pub struct ServedNar {
    pub peer: PeerId,
    pub nar_hash: NarHash,
    pub bytes: u64,
    /// The whole NAR's size.
    pub size: u64,
}

/// Answers peers' requests; each NAR range served whole is told to `served` (dropped when its
/// queue is full: the account is for reputation only).
pub fn run(
    node: &NodeHandle,
    store: Arc<LocalStore>,
    index: Arc<IndexDb>,
    served: Option<mpsc::Sender<ServedNar>>,
    answered: Arc<Answered>,
) -> Result<(), NodeError> {
    let mut narinfos = node.accept(node.network_protocol(NARINFO_PROTOCOL))?;
    let mut nars = node.accept(node.network_protocol(NAR_PROTOCOL))?;
    let for_narinfos = store.clone();
    let narinfo_turns = Admission::new(NARINFOS_PER_PEER, NARINFOS, NARINFO_TURN_WAIT);
    let narinfos_answered = answered.clone();
    tokio::spawn(async move {
        while let Some((peer, stream)) = narinfos.next().await {
            let (store, index) = (for_narinfos.clone(), index.clone());
            tokio::spawn(answer_narinfo(
                peer,
                stream,
                store,
                index,
                narinfo_turns.clone(),
                narinfos_answered.clone(),
            ));
        }
    });
    let nar_turns = Admission::new(NARS_PER_PEER, NARS, NAR_TURN_WAIT);
    tokio::spawn(async move {
        while let Some((peer, stream)) = nars.next().await {
            let served = served.clone();
            tokio::spawn(answer_nar(
                peer,
                stream,
                store.clone(),
                nar_turns.clone(),
                served,
                answered.clone(),
            ));
        }
    });
    Ok(())
}

async fn answer_narinfo(
    peer: PeerId,
    mut stream: InboundStream,
    store: Arc<LocalStore>,
    index: Arc<IndexDb>,
    turns: Arc<Admission>,
    answered: Arc<Answered>,
) {
    let mut wait = REQUEST_TIMEOUT;
    loop {
        let request = match tokio::time::timeout(wait, read_frame(&mut stream)).await {
            Ok(Ok(Some(frame))) => decode_narinfo_request(&frame),
            // Closed between requests, or idle too long: the asker is done with the stream.
            Ok(Ok(None)) | Err(_) => break,
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "broken narinfo request");
                break;
            }
        };
        let Ok(hash) = request else {
            tracing::debug!(%peer, "bad narinfo request");
            break;
        };
        let Some(turn) = turns.turn(peer).await else {
            tracing::debug!(%peer, "too many narinfo requests at once: closing a stream");
            break;
        };
        let answer = narinfo_answer(hash, &store, &index);
        answered.narinfo(matches!(answer, NarinfoAnswer::Found { .. }));
        let answer = answer.encode();
        let written = tokio::time::timeout(WRITE_DEADLINE, write_frame(&mut stream, &answer));
        if !matches!(written.await, Ok(Ok(()))) {
            return;
        }
        drop(turn);
        wait = NARINFO_STREAM_IDLE;
    }
    let _ = tokio::time::timeout(WRITE_DEADLINE, stream.close()).await;
}

/// This node's narinfo for `hash` if it shares the path, with the CID its NAR is published under.
fn narinfo_answer(hash: StoreHash, store: &LocalStore, index: &IndexDb) -> NarinfoAnswer {
    let narinfo = match store.shared_narinfo(hash) {
        Ok(found) => found,
        Err(e) => {
            tracing::warn!(%hash, error = %e, "cannot answer a narinfo request");
            None
        }
    };
    let Some(narinfo) = narinfo else {
        return NarinfoAnswer::NotFound;
    };
    // Once published, the NAR's CID lets the asker fetch it from every holder over Bitswap.
    NarinfoAnswer::Found {
        text: narinfo.render(),
        cid: index.get(hash).ok().flatten().map(|(cid, _)| cid),
    }
}

async fn answer_nar(
    peer: PeerId,
    mut stream: InboundStream,
    store: Arc<LocalStore>,
    turns: Arc<Admission>,
    served: Option<mpsc::Sender<ServedNar>>,
    answered: Arc<Answered>,
) {
    let request = tokio::time::timeout(REQUEST_TIMEOUT, expect_frame(&mut stream)).await;
    let request = match request.map(|r| r.map(|f| NarRequest::decode(&f))) {
        Ok(Ok(Ok(request))) => request,
        _ => {
            tracing::debug!(%peer, "bad NAR request");
            return;
        }
    };
    let Some(_turn) = turns.turn(peer).await else {
        tracing::debug!(%peer, "too many NAR requests at once: closing a stream");
        return;
    };
    let nar = match store.nar(request.nar_hash).await {
        Ok(nar) => nar,
        Err(e) => {
            tracing::warn!(nar = %request.nar_hash, error = %e, "cannot answer a NAR request");
            None
        }
    };
    let Some(nar) = nar.filter(|n| request.end <= n.size) else {
        let not_found = encode_nar_answer(None);
        let _ = tokio::time::timeout(WRITE_DEADLINE, write_frame(&mut stream, &not_found)).await;
        return;
    };
    let head = encode_nar_answer(Some(request.end - request.start));
    let written = tokio::time::timeout(WRITE_DEADLINE, write_frame(&mut stream, &head));
    if !matches!(written.await, Ok(Ok(()))) {
        return;
    }
    // Dropping the body on a missed deadline stops the thread that reads the store.
    let mut body = nar.source.stream(request.start, request.end);
    while let Some(chunk) = body.next().await {
        let Ok(chunk) = chunk else {
            return;
        };
        let written = tokio::time::timeout(WRITE_DEADLINE, stream.write_all(&chunk)).await;
        if !matches!(written, Ok(Ok(()))) {
            tracing::debug!(%peer, "NAR not taken in time: closing the stream");
            return;
        }
    }
    answered.nar(request.end - request.start);
    if let Some(served) = served {
        let _ = served.try_send(ServedNar {
            peer,
            nar_hash: request.nar_hash,
            bytes: request.end - request.start,
            size: nar.size,
        });
    }
    let _ = tokio::time::timeout(WRITE_DEADLINE, stream.close()).await;
}
