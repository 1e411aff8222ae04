//! Answering other nodes: narinfos and NARs of this node's shareable paths, over the narinfo and
//! NAR protocols. The filters apply here exactly as on the HTTP front.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{AsyncWriteExt, StreamExt};
use peerix_http::{BinaryCache, StoreHash};
use peerix_node::{NodeHandle, PeerId, Stream, StreamProtocol};

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

pub fn run(node: &NodeHandle, store: Arc<LocalStore>, index: Arc<IndexDb>) -> Result<(), String> {
    let mut narinfos = node
        .accept(StreamProtocol::new(NARINFO_PROTOCOL))
        .map_err(|e| e.to_string())?;
    let mut nars = node
        .accept(StreamProtocol::new(NAR_PROTOCOL))
        .map_err(|e| e.to_string())?;
    let for_narinfos = store.clone();
    tokio::spawn(async move {
        while let Some((peer, stream)) = narinfos.next().await {
            let (store, index) = (for_narinfos.clone(), index.clone());
            tokio::spawn(answer_narinfo(peer, stream, store, index));
        }
    });
    tokio::spawn(async move {
        while let Some((peer, stream)) = nars.next().await {
            tokio::spawn(answer_nar(peer, stream, store.clone()));
        }
    });
    Ok(())
}

async fn answer_narinfo(
    peer: PeerId,
    mut stream: Stream,
    store: Arc<LocalStore>,
    index: Arc<IndexDb>,
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
        let answer = narinfo_answer(hash, &store, &index);
        if write_frame(&mut stream, &answer.encode()).await.is_err() {
            return;
        }
        wait = NARINFO_STREAM_IDLE;
    }
    let _ = stream.close().await;
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

async fn answer_nar(peer: PeerId, mut stream: Stream, store: Arc<LocalStore>) {
    let request = tokio::time::timeout(REQUEST_TIMEOUT, expect_frame(&mut stream)).await;
    let request = match request.map(|r| r.map(|f| NarRequest::decode(&f))) {
        Ok(Ok(Ok(request))) => request,
        _ => {
            tracing::debug!(%peer, "bad NAR request");
            return;
        }
    };
    let nar = match store.nar(request.nar_hash).await {
        Ok(nar) => nar,
        Err(e) => {
            tracing::warn!(nar = %request.nar_hash, error = %e, "cannot answer a NAR request");
            None
        }
    };
    let Some(nar) = nar.filter(|n| request.end <= n.size) else {
        let _ = write_frame(&mut stream, &encode_nar_answer(None)).await;
        return;
    };
    let len = request.end - request.start;
    if write_frame(&mut stream, &encode_nar_answer(Some(len)))
        .await
        .is_err()
    {
        return;
    }
    let mut body = nar.source.stream(request.start, request.end);
    while let Some(chunk) = body.next().await {
        let Ok(chunk) = chunk else {
            return;
        };
        if stream.write_all(&chunk).await.is_err() {
            return;
        }
    }
    let _ = stream.close().await;
}
