//! The kubo-style RPC over the embedded node, a running kubo (`--ipfs-api`), or both: content is
//! added to and announced by each, and fetched from the embedded node first, then from kubo.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use bytes::Bytes;
use futures_util::StreamExt;
use peerix_http::{ApiError, ByteStream, IpfsApi, NodeIdentity};
use peerix_node::unixfs::decode_node;
use peerix_node::{Multiaddr, NodeHandle, PeerId};
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use crate::kubo_rpc::{KuboError, KuboRpc};
use crate::status::{node_json, HolePunchLog};

/// Multihash code of the identity "hash", which holds its input as is.
const IDENTITY: u64 = 0x00;
/// CID codec of dag-pb blocks.
const DAG_PB: u64 = 0x70;

/// Bytes read from kubo per chunk handed to the HTTP response.
const KUBO_CHUNK: usize = 256 << 10;

/// The RPC over `node` and/or `kubo`; content added through it is kept in `blobs` (one file
/// each), which the embedded node then publishes without a further copy.
pub struct NodeApi {
    node: Option<NodeHandle>,
    hole_punches: Arc<HolePunchLog>,
    kubo: Option<KuboRpc>,
    blobs: PathBuf,
}

/// A file being uploaded: removed when dropped before [`PartialFile::keep`], so a failed,
/// refused or aborted upload (the request's future dropped mid-way) leaves nothing behind.
struct PartialFile {
    path: PathBuf,
    kept: bool,
}

impl PartialFile {
    fn path(&self) -> &Path {
        &self.path
    }

    fn keep(mut self) -> PathBuf {
        self.kept = true;
        std::mem::take(&mut self.path)
    }
}

impl Drop for PartialFile {
    fn drop(&mut self) {
        if self.kept {
            return;
        }
        if let Err(e) = std::fs::remove_file(&self.path) {
            tracing::warn!(path = %self.path.display(), error = %e, "cannot remove a partial upload");
        }
    }
}

/// A file name no other upload in this process or an earlier one takes.
fn unique_name() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!(
        "{nanos}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

fn failed(e: impl ToString) -> ApiError {
    ApiError::Failed(e.to_string())
}

fn parse_cid(cid: &str) -> Result<cid::Cid, ApiError> {
    cid::Cid::try_from(cid).map_err(|e| ApiError::BadArgument(format!("{cid}: {e}")))
}

fn no_backend() -> ApiError {
    ApiError::Failed("neither an embedded node nor --ipfs-api is configured".to_owned())
}

/// kubo's `PublicKey` for `peer`: the protobuf-encoded key in base64. Ed25519 peer ids carry it
/// (an identity multihash); longer keys, RSA's, are only hashed into the id.
fn public_key(peer: &PeerId) -> Option<String> {
    let hash = cid::multihash::Multihash::<64>::from_bytes(&peer.to_bytes()).ok()?;
    (hash.code() == IDENTITY).then(|| BASE64.encode(hash.digest()))
}

/// What kubo's `add` reports as `Size`: the cumulative size of the file's DAG, the root's bytes
/// plus the `Tsize` of its links (a raw leaf is only its bytes).
async fn dag_size(node: &NodeHandle, cid: cid::Cid) -> Result<u64, ApiError> {
    let root = node
        .block(cid)
        .await
        .map_err(failed)?
        .ok_or_else(|| ApiError::Failed(format!("block {cid} not found")))?;
    if cid.codec() != DAG_PB {
        return Ok(root.len() as u64);
    }
    let links = decode_node(&root).map_err(failed)?.links;
    Ok(root.len() as u64 + links.iter().filter_map(|l| l.tsize).sum::<u64>())
}

/// Turns a channel of chunks into the stream an HTTP body takes.
fn byte_stream(chunks: mpsc::Receiver<std::io::Result<Vec<u8>>>) -> ByteStream {
    Box::pin(futures_util::stream::unfold(
        chunks,
        |mut chunks| async move {
            let chunk = chunks.recv().await?;
            Some((chunk.map(Bytes::from), chunks))
        },
    ))
}

impl NodeApi {
    pub fn new(
        node: Option<NodeHandle>,
        hole_punches: Arc<HolePunchLog>,
        kubo: Option<KuboRpc>,
        blobs: PathBuf,
    ) -> Self {
        Self {
            node,
            hole_punches,
            kubo,
            blobs,
        }
    }

    /// Runs a (blocking) call on the kubo client, if there is one.
    async fn kubo<T: Send + 'static>(
        &self,
        call: impl FnOnce(&KuboRpc) -> Result<T, KuboError> + Send + 'static,
    ) -> Option<Result<T, ApiError>> {
        let kubo = self.kubo.clone()?;
        let joined = tokio::task::spawn_blocking(move || call(&kubo)).await;
        Some(joined.map_err(failed).and_then(|r| r.map_err(failed)))
    }

    /// Streams `cid` from kubo's `cat`, read on a blocking thread.
    fn kubo_cat(kubo: KuboRpc, cid: String) -> ByteStream {
        let (chunks, received) = mpsc::channel(4);
        tokio::task::spawn_blocking(move || {
            let mut body = match kubo.cat(&cid) {
                Ok(body) => body,
                Err(e) => {
                    let _ = chunks.blocking_send(Err(std::io::Error::other(e)));
                    return;
                }
            };
            loop {
                let mut chunk = vec![0u8; KUBO_CHUNK];
                match body.read(&mut chunk) {
                    Ok(0) => return,
                    Ok(n) => {
                        chunk.truncate(n);
                        if chunks.blocking_send(Ok(chunk)).is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        let _ = chunks.blocking_send(Err(e));
                        return;
                    }
                }
            }
        });
        byte_stream(received)
    }

    async fn save_upload(&self, mut content: ByteStream) -> Result<PartialFile, ApiError> {
        tokio::fs::create_dir_all(&self.blobs)
            .await
            .map_err(failed)?;
        let path = self.blobs.join(unique_name());
        let mut file = tokio::fs::File::create(&path).await.map_err(failed)?;
        let partial = PartialFile { path, kept: false };
        while let Some(chunk) = content.next().await {
            file.write_all(&chunk.map_err(failed)?)
                .await
                .map_err(failed)?;
        }
        file.sync_all().await.map_err(failed)?;
        Ok(partial)
    }

    /// Adds the file at `path` to kubo; returns the CID and size kubo reports.
    async fn kubo_add(&self, path: &Path) -> Option<Result<(String, u64), ApiError>> {
        let path = path.to_owned();
        self.kubo(move |kubo| {
            let file = std::fs::File::open(&path).map_err(KuboError::Upload)?;
            kubo.add("", file)
        })
        .await
    }
}

impl IpfsApi for NodeApi {
    async fn id(&self) -> Result<NodeIdentity, ApiError> {
        let Some(node) = &self.node else {
            let id = self.kubo(KuboRpc::id).await.ok_or_else(no_backend)??;
            let strings = |v: &serde_json::Value| {
                v.as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|a| a.as_str().map(str::to_owned))
                    .collect()
            };
            return Ok(NodeIdentity {
                peer_id: id["ID"].as_str().unwrap_or_default().to_owned(),
                public_key: id["PublicKey"].as_str().map(str::to_owned),
                addresses: strings(&id["Addresses"]),
                agent_version: id["AgentVersion"].as_str().unwrap_or_default().to_owned(),
            });
        };
        let status = node.status().await.map_err(failed)?;
        let with_id = |addr: Multiaddr| format!("{addr}/p2p/{}", status.peer_id);
        Ok(NodeIdentity {
            peer_id: status.peer_id.to_string(),
            public_key: public_key(&status.peer_id),
            addresses: status.listen_addrs.iter().cloned().map(with_id).collect(),
            agent_version: format!("peerix/{}", env!("CARGO_PKG_VERSION")),
        })
    }

    async fn peers(&self) -> Result<Vec<(String, String)>, ApiError> {
        let mut peers = Vec::new();
        if let Some(node) = &self.node {
            let status = node.status().await.map_err(failed)?;
            peers.extend(status.peers.into_iter().map(|p| {
                (
                    p.peer_id.to_string(),
                    p.addr.map(|a| a.to_string()).unwrap_or_default(),
                )
            }));
        }
        if let Some(kubo_peers) = self.kubo(KuboRpc::peers).await {
            peers.extend(kubo_peers?);
        }
        Ok(peers)
    }

    async fn connect(&self, addr: &str) -> Result<String, ApiError> {
        let Some(node) = &self.node else {
            let addr = addr.to_owned();
            let lines = self
                .kubo(move |kubo| kubo.connect(&addr))
                .await
                .ok_or_else(no_backend)??;
            // kubo says "connect <peer id> success".
            let peer = lines.first().and_then(|l| l.split(' ').nth(1));
            return Ok(peer.unwrap_or_default().to_owned());
        };
        let addr: Multiaddr = addr
            .parse()
            .map_err(|e| ApiError::BadArgument(format!("{addr}: {e}")))?;
        Ok(node.dial(addr).await.map_err(failed)?.to_string())
    }

    async fn cat(&self, cid: &str) -> Result<ByteStream, ApiError> {
        let parsed = parse_cid(cid)?;
        if let Some(node) = &self.node {
            let mut chunks = node.cat(parsed).await.map_err(failed)?;
            match (chunks.recv().await, &self.kubo) {
                // Nothing came from the embedded node: kubo may do better.
                (Some(Err(e)), Some(kubo)) => {
                    tracing::debug!(%cid, error = %e, "embedded node cannot fetch: asking kubo");
                    return Ok(Self::kubo_cat(kubo.clone(), cid.to_owned()));
                }
                (first, _) => {
                    let first = futures_util::stream::iter(first.map(|c| c.map(Bytes::from)));
                    return Ok(Box::pin(first.chain(byte_stream(chunks))));
                }
            }
        }
        let kubo = self.kubo.clone().ok_or_else(no_backend)?;
        Ok(Self::kubo_cat(kubo, cid.to_owned()))
    }

    async fn pause_announcements(&self, paused: bool) -> Result<(), ApiError> {
        let node = self.node.as_ref().ok_or_else(|| {
            ApiError::Failed("announcements belong to the embedded node, which is off".to_owned())
        })?;
        node.pause_announcements(paused).await.map_err(failed)
    }

    async fn status(&self) -> Result<serde_json::Value, ApiError> {
        let (node, paused) = match &self.node {
            Some(node) => {
                let status = node.status().await.map_err(failed)?;
                let paused = status.announcements.paused;
                (node_json(&status, &self.hole_punches), paused)
            }
            None => (serde_json::Value::Null, false),
        };
        let kubo = self.kubo.as_ref().map(KuboRpc::base);
        Ok(json!({ "node": node, "ipfs_api": kubo, "announcements_paused": paused }))
    }

    async fn block(&self, cid: &str) -> Result<Vec<u8>, ApiError> {
        let parsed = parse_cid(cid)?;
        if let Some(node) = &self.node {
            if let Some(block) = node.block(parsed).await.map_err(failed)? {
                return Ok(block);
            }
        }
        let cid_text = cid.to_owned();
        let block = self
            .kubo(move |kubo| kubo.block(&cid_text))
            .await
            .ok_or_else(|| ApiError::Failed(format!("block {cid} not found")))??;
        // Whatever kubo answers is checked like any other block before it is passed on.
        peerix_node::block::verify(&parsed, &block).map_err(failed)?;
        Ok(block)
    }

    async fn add(&self, content: ByteStream) -> Result<(String, u64), ApiError> {
        let upload = self.save_upload(content).await?;
        let Some(node) = &self.node else {
            // kubo keeps its own copy; the upload goes when `upload` is dropped.
            return self.kubo_add(upload.path()).await.ok_or_else(no_backend)?;
        };
        // The node publishes the file where it is, so it is kept once the node has it.
        let parsed = node.add_file(upload.path()).await.map_err(failed)?;
        let path = upload.keep();
        let (cid, size) = (parsed.to_string(), dag_size(node, parsed).await?);
        if let Some(kubo_cid) = self.kubo_add(&path).await {
            match kubo_cid {
                Ok((other, _)) if other != cid => {
                    tracing::warn!(%cid, kubo = %other, "kubo gave another CID for the same content")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(%cid, error = %e, "kubo could not add the content"),
            }
        }
        Ok((cid, size))
    }

    async fn find_providers(&self, cid: &str) -> Result<Vec<String>, ApiError> {
        let mut providers = Vec::new();
        if let Some(node) = &self.node {
            let found = node
                .find_providers(&parse_cid(cid)?)
                .await
                .map_err(failed)?;
            providers.extend(found.into_iter().map(|p| p.to_string()));
        }
        let cid = cid.to_owned();
        if let Some(found) = self.kubo(move |kubo| kubo.find_providers(&cid)).await {
            for peer in found? {
                if !providers.contains(&peer) {
                    providers.push(peer);
                }
            }
        }
        Ok(providers)
    }

    async fn provide(&self, cid: &str) -> Result<(), ApiError> {
        if let Some(node) = &self.node {
            node.provide(&parse_cid(cid)?).await.map_err(failed)?;
        }
        let cid = cid.to_owned();
        if let Some(provided) = self.kubo(move |kubo| kubo.provide(&cid)).await {
            provided?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ed25519_peer_ids_give_their_public_key() {
        // An ed25519 peer id and its key as kubo's `PublicKey` (js-libp2p maps one to the other).
        let peer: PeerId = "12D3KooWAbhFfEBKrDghATomsLiWW7sSK3uMUXh38WAsCKxoarEm"
            .parse()
            .unwrap();
        assert_eq!(
            public_key(&peer).as_deref(),
            Some("CAESIAuctzHEuBM3FxyJDFdJIzU8k6cdrp+hjtALyVofM/Bq")
        );
        // An RSA peer id is a sha2-256 hash of the key: nothing to give.
        let rsa: PeerId = "QmaCpDMGvV2BGHeYERUEnRQAwe3N8SzbUtfsmvsqQLuvuJ"
            .parse()
            .unwrap();
        assert_eq!(public_key(&rsa), None);
    }
}
