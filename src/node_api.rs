//! The kubo-style RPC over the embedded node.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::StreamExt;
use peerix_http::{ApiError, ByteStream, IpfsApi, NodeIdentity};
use peerix_node::{Multiaddr, NodeHandle};
use tokio::io::AsyncWriteExt;

/// The RPC over `node`; content added through it is kept in `blobs` (one file each), which the
/// node then publishes without a further copy.
pub struct NodeApi {
    pub node: NodeHandle,
    pub blobs: PathBuf,
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

impl IpfsApi for NodeApi {
    async fn id(&self) -> Result<NodeIdentity, ApiError> {
        let status = self.node.status().await.map_err(failed)?;
        let with_id = |addr: Multiaddr| format!("{addr}/p2p/{}", status.peer_id);
        Ok(NodeIdentity {
            peer_id: status.peer_id.to_string(),
            addresses: status.listen_addrs.iter().cloned().map(with_id).collect(),
            agent_version: format!("peerix/{}", env!("CARGO_PKG_VERSION")),
        })
    }

    async fn peers(&self) -> Result<Vec<(String, String)>, ApiError> {
        let status = self.node.status().await.map_err(failed)?;
        Ok(status
            .peers
            .into_iter()
            .map(|p| {
                (
                    p.peer_id.to_string(),
                    p.addr.map(|a| a.to_string()).unwrap_or_default(),
                )
            })
            .collect())
    }

    async fn connect(&self, addr: &str) -> Result<String, ApiError> {
        let addr: Multiaddr = addr
            .parse()
            .map_err(|e| ApiError::BadArgument(format!("{addr}: {e}")))?;
        Ok(self.node.dial(addr).await.map_err(failed)?.to_string())
    }

    async fn cat(&self, cid: &str) -> Result<ByteStream, ApiError> {
        let cid = parse_cid(cid)?;
        let chunks = self.node.cat(cid).await.map_err(failed)?;
        Ok(Box::pin(futures_util::stream::unfold(
            chunks,
            |mut chunks| async move {
                let chunk = chunks.recv().await?;
                Some((chunk.map(Bytes::from), chunks))
            },
        )))
    }

    async fn add(&self, mut content: ByteStream) -> Result<(String, u64), ApiError> {
        tokio::fs::create_dir_all(&self.blobs)
            .await
            .map_err(failed)?;
        let path = self.blobs.join(unique_name());
        let mut file = tokio::fs::File::create(&path).await.map_err(failed)?;
        let mut size = 0u64;
        while let Some(chunk) = content.next().await {
            let chunk = chunk.map_err(failed)?;
            size += chunk.len() as u64;
            file.write_all(&chunk).await.map_err(failed)?;
        }
        file.sync_all().await.map_err(failed)?;
        let cid = self.node.add_file(&path).await.map_err(failed)?;
        Ok((cid.to_string(), size))
    }

    async fn find_providers(&self, cid: &str) -> Result<Vec<String>, ApiError> {
        let providers = self
            .node
            .find_providers(&parse_cid(cid)?)
            .await
            .map_err(failed)?;
        Ok(providers.into_iter().map(|p| p.to_string()).collect())
    }

    async fn provide(&self, cid: &str) -> Result<(), ApiError> {
        self.node.provide(&parse_cid(cid)?).await.map_err(failed)
    }
}

fn parse_cid(cid: &str) -> Result<cid::Cid, ApiError> {
    cid::Cid::try_from(cid).map_err(|e| ApiError::BadArgument(format!("{cid}: {e}")))
}
