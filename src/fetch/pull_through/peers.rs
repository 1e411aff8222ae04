//! The pull protocol between near nodes, both sides: the asker sends a store hash, the puller
//! answers with [`encode_nar_answer`]'s head (not found, or the file's length) and the file's
//! bytes as upstream sent them, which the asker checks against the FileHash its own upstream
//! narinfo gave. The puller fetches only files its own upstream names for that path, and only
//! for near members of the network: a stranger cannot spend its uplink.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{AsyncReadExt, AsyncWriteExt, StreamExt};
use peerix_node::{InboundStream, NodeError, NodeHandle, PeerId};

use super::downloads::Writer;
use super::{PullThrough, PulledFile};
use crate::publish::Admission;
use crate::wire::frames::{expect_frame, write_frame};
use crate::wire::{
    decode_nar_answer, decode_narinfo_request, encode_hash, encode_nar_answer, PULL_PROTOCOL,
};

/// Bytes read at a time, from upstream or a peer.
const CHUNK: usize = 256 << 10;
/// Chunks between upstream's reader thread and the file.
const CHUNKS_IN_FLIGHT: usize = 4;
/// How long the asker waits to open a stream, and for the head of the answer (the puller may
/// ask upstream for the narinfo first).
const OPEN_DEADLINE: Duration = Duration::from_secs(2);
const HEAD_DEADLINE: Duration = Duration::from_secs(4);
/// How long the puller waits for the request, and for each write to be taken.
const REQUEST_DEADLINE: Duration = Duration::from_secs(5);
const WRITE_DEADLINE: Duration = Duration::from_secs(30);
/// Files served to near nodes at once: per node, and in all.
const PER_PEER: usize = 8;
const IN_ALL: usize = 32;
const TURN_WAIT: Duration = Duration::from_secs(1);

/// Why a peer did not deliver a file.
pub enum Failure {
    /// It sent bytes that are not the file.
    Lied(String),
    /// It stopped or never started; the writer back when it can go on from upstream.
    Stopped(String, Option<Box<Writer>>),
}

/// Answers near nodes' pull requests from now on.
pub fn answer(pull: Arc<PullThrough>) -> Result<(), NodeError> {
    let mut requests = pull
        .node
        .accept(pull.node.network_protocol(PULL_PROTOCOL))?;
    let turns = Admission::new(PER_PEER, IN_ALL, TURN_WAIT);
    tokio::spawn(async move {
        while let Some((peer, stream)) = requests.next().await {
            tokio::spawn(answer_one(pull.clone(), peer, stream, turns.clone()));
        }
    });
    Ok(())
}

async fn answer_one(
    pull: Arc<PullThrough>,
    peer: PeerId,
    mut stream: InboundStream,
    turns: Arc<Admission>,
) {
    let request = tokio::time::timeout(REQUEST_DEADLINE, expect_frame(&mut stream)).await;
    let Ok(Ok(Ok(hash))) = request.map(|r| r.map(|f| decode_narinfo_request(&f))) else {
        tracing::debug!(%peer, "bad pull request");
        return;
    };
    if !pull.pulls_for(peer).await {
        tracing::debug!(%peer, "pull request from a node that is not near: not found");
        let not_found = encode_nar_answer(None);
        let _ = tokio::time::timeout(WRITE_DEADLINE, write_frame(&mut stream, &not_found)).await;
        return;
    }
    let Some(_turn) = turns.turn(peer).await else {
        tracing::debug!(%peer, "too many pull requests at once: closing a stream");
        return;
    };
    let download = match pull.upstream_narinfo(hash, true).await {
        Some((_, file)) => pull.download(&file, true).await.ok(),
        None => None,
    };
    let head = encode_nar_answer(download.as_ref().map(|d| d.size()));
    let written = tokio::time::timeout(WRITE_DEADLINE, write_frame(&mut stream, &head)).await;
    let (Some(download), Ok(Ok(()))) = (download, written) else {
        return;
    };
    let size = download.size();
    let mut body = download.read(0, size);
    while let Some(chunk) = body.next().await {
        let chunk = match chunk {
            Ok(chunk) => chunk,
            Err(e) => {
                tracing::debug!(%peer, %hash, error = %e, "pulled file failed: closing the stream");
                return;
            }
        };
        let written = tokio::time::timeout(WRITE_DEADLINE, stream.write_all(&chunk)).await;
        if !matches!(written, Ok(Ok(()))) {
            tracing::debug!(%peer, "pulled file not taken in time: closing the stream");
            return;
        }
    }
    let _ = tokio::time::timeout(WRITE_DEADLINE, stream.close()).await;
}

/// Fills `writer` with `file` from `peer`, the near node that pulls it.
pub async fn pull_from(
    node: &NodeHandle,
    peer: PeerId,
    file: &PulledFile,
    mut writer: Writer,
) -> Result<(), Failure> {
    let protocol = node.network_protocol(PULL_PROTOCOL);
    let opened = tokio::time::timeout(OPEN_DEADLINE, node.open_stream(peer, protocol)).await;
    let mut stream = match opened {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => return Err(Failure::Stopped(e.to_string(), Some(Box::new(writer)))),
        Err(_) => {
            return Err(Failure::Stopped(
                "no stream in time".to_owned(),
                Some(Box::new(writer)),
            ))
        }
    };
    let asked = write_frame(&mut stream, &encode_hash(&file.path)).await;
    if let Err(e) = asked {
        return Err(Failure::Stopped(e.to_string(), Some(Box::new(writer))));
    }
    let head = match tokio::time::timeout(HEAD_DEADLINE, expect_frame(&mut stream)).await {
        Ok(Ok(head)) => head,
        Ok(Err(e)) => return Err(Failure::Stopped(e.to_string(), Some(Box::new(writer)))),
        Err(_) => {
            return Err(Failure::Stopped(
                "no answer in time".to_owned(),
                Some(Box::new(writer)),
            ))
        }
    };
    match decode_nar_answer(&head) {
        Ok(Some(len)) if len == file.expected.size => {}
        Ok(Some(len)) => {
            return Err(Failure::Lied(format!(
                "{len} bytes, not {}",
                file.expected.size
            )))
        }
        Ok(None) => {
            return Err(Failure::Stopped(
                "it has not got it".to_owned(),
                Some(Box::new(writer)),
            ))
        }
        Err(e) => return Err(Failure::Lied(e.to_string())),
    }
    let mut chunk = vec![0u8; CHUNK];
    while writer.written() < file.expected.size {
        let read = tokio::time::timeout(super::downloads::STALL, stream.read(&mut chunk)).await;
        let n = match read {
            Ok(Ok(0)) => return Err(Failure::Stopped("the stream ended early".to_owned(), None)),
            Ok(Ok(n)) => n,
            Ok(Err(e)) => return Err(Failure::Stopped(e.to_string(), None)),
            Err(_) => return Err(Failure::Stopped("stalled".to_owned(), None)),
        };
        if let Err(e) = writer.write(&chunk[..n]).await {
            return Err(Failure::Lied(e.to_string()));
        }
    }
    writer
        .finish()
        .await
        .map_err(|e| Failure::Lied(e.to_string()))
}

/// Fills `writer` from `url`: read on a blocking thread (the HTTP client is blocking), written
/// as it comes.
pub async fn fetch_url(agent: &ureq::Agent, url: &str, mut writer: Writer) -> io::Result<()> {
    let (chunks, mut arriving) = tokio::sync::mpsc::channel(CHUNKS_IN_FLIGHT);
    let (agent, url, limit) = (agent.clone(), url.to_owned(), writer.expected_size());
    tokio::task::spawn_blocking(move || {
        let read = || -> io::Result<()> {
            let response = agent.get(&url).call().map_err(io::Error::other)?;
            let mut body = response
                .into_body()
                .into_with_config()
                .limit(limit)
                .reader();
            loop {
                let mut chunk = vec![0u8; CHUNK];
                let n = io::Read::read(&mut body, &mut chunk)?;
                if n == 0 {
                    return Ok(());
                }
                chunk.truncate(n);
                if chunks.blocking_send(Ok(chunk)).is_err() {
                    return Ok(());
                }
            }
        };
        if let Err(e) = read() {
            let _ = chunks.blocking_send(Err(e));
        }
    });
    while let Some(chunk) = arriving.recv().await {
        writer.write(&chunk?).await?;
    }
    writer.finish().await
}
