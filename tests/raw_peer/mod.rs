//! A peer that speaks Peerix's protocols with answers a test chooses: a real libp2p node (the
//! embedded one, started in the test process, of the default network id), announcing paths over
//! the index protocol, answering narinfo requests as told and NAR requests from NAR bytes it is
//! given.
#![allow(dead_code)] // Each test binary uses its own subset.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use futures_util::AsyncWriteExt;
use peerix::wire::frames::{expect_frame, read_frame, write_frame};
use peerix::wire::{
    decode_narinfo_request, encode_nar_answer, IndexUpdate, NarRequest, NarinfoAnswer,
    INDEX_PROTOCOL, NARINFO_PROTOCOL, NAR_PROTOCOL,
};
use peerix_http::{NarHash, StoreHash};
use peerix_node::{NodeConfig, NodeHandle};
use tempfile::TempDir;

/// What the peer answers to a narinfo request: `None` is no answer at all, ever.
pub type Answerer = dyn Fn(StoreHash) -> Option<NarinfoAnswer> + Send + Sync;

pub struct RawPeer {
    runtime: tokio::runtime::Runtime,
    pub node: NodeHandle,
    asked: Arc<AtomicUsize>,
    nars_asked: Arc<AtomicUsize>,
    _state: TempDir,
}

impl RawPeer {
    /// A node answering narinfo requests with `answer`, and NAR requests from `nars` (no NAR
    /// protocol at all when empty).
    pub fn start(answer: Box<Answerer>, nars: HashMap<NarHash, Vec<u8>>) -> Self {
        Self::start_cut(answer, nars, usize::MAX)
    }

    /// [`RawPeer::start`], but every NAR answer stops after `cut` bytes (the full length
    /// announced): a source that breaks off part way.
    pub fn start_cut(answer: Box<Answerer>, nars: HashMap<NarHash, Vec<u8>>, cut: usize) -> Self {
        let state = TempDir::new().unwrap();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let mut protocols = vec![INDEX_PROTOCOL, NARINFO_PROTOCOL];
        if !nars.is_empty() {
            protocols.push(NAR_PROTOCOL);
        }
        let config = NodeConfig {
            app_protocols: protocols
                .into_iter()
                .map(|name| peerix_node::network_protocol("default", name))
                .collect(),
            ..NodeConfig::offline(
                state.path().to_owned(),
                vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()],
            )
        };
        let node = runtime.block_on(peerix_node::start(config)).unwrap();
        let asked = Arc::new(AtomicUsize::new(0));
        let _guard = runtime.enter();
        // Index streams from the node under test: read and dropped.
        let mut indexes = node.accept(node.network_protocol(INDEX_PROTOCOL)).unwrap();
        tokio::spawn(async move {
            while let Some((_, mut stream)) = indexes.next().await {
                tokio::spawn(
                    async move { while let Ok(Some(_)) = read_frame(&mut stream).await {} },
                );
            }
        });
        let mut narinfos = node
            .accept(node.network_protocol(NARINFO_PROTOCOL))
            .unwrap();
        let (answer, counter) = (Arc::new(answer), asked.clone());
        tokio::spawn(async move {
            while let Some((_, mut stream)) = narinfos.next().await {
                let (answer, counter) = (answer.clone(), counter.clone());
                tokio::spawn(async move {
                    while let Ok(Some(frame)) = read_frame(&mut stream).await {
                        counter.fetch_add(1, Ordering::SeqCst);
                        let Ok(hash) = decode_narinfo_request(&frame) else {
                            return;
                        };
                        match answer(hash) {
                            Some(reply) => {
                                if write_frame(&mut stream, &reply.encode()).await.is_err() {
                                    return;
                                }
                            }
                            // Silent: keeps the stream open and never answers.
                            None => std::future::pending::<()>().await,
                        }
                    }
                });
            }
        });
        let nars_asked = Arc::new(AtomicUsize::new(0));
        if !nars.is_empty() {
            let mut requests = node.accept(node.network_protocol(NAR_PROTOCOL)).unwrap();
            let nars = Arc::new(nars);
            let counted = nars_asked.clone();
            tokio::spawn(async move {
                while let Some((_, mut stream)) = requests.next().await {
                    counted.fetch_add(1, Ordering::Relaxed);
                    let nars = nars.clone();
                    tokio::spawn(async move {
                        let Ok(frame) = expect_frame(&mut stream).await else {
                            return;
                        };
                        let Ok(request) = NarRequest::decode(&frame) else {
                            return;
                        };
                        let Some(nar) = nars.get(&request.nar_hash) else {
                            let _ = write_frame(&mut stream, &encode_nar_answer(None)).await;
                            return;
                        };
                        let end = (request.end as usize)
                            .min((request.start as usize).saturating_add(cut));
                        let range = request.start as usize..end;
                        let head = encode_nar_answer(Some(request.end - request.start));
                        if write_frame(&mut stream, &head).await.is_ok() {
                            let _ = stream.write_all(&nar[range]).await;
                            let _ = stream.close().await;
                        }
                    });
                }
            });
        }
        Self {
            runtime,
            node,
            asked,
            nars_asked,
            _state: state,
        }
    }

    /// NAR requests received so far.
    pub fn nars_asked(&self) -> usize {
        self.nars_asked.load(Ordering::Relaxed)
    }

    /// Narinfo requests received so far.
    pub fn asked(&self) -> usize {
        self.asked.load(Ordering::SeqCst)
    }

    /// Connects to the node at `addr` and tells it, over an index stream kept open, that this
    /// peer holds `hashes`.
    pub fn announce_to(&self, addr: &str, hashes: Vec<StoreHash>) {
        let node = self.node.clone();
        let addr = addr.parse().unwrap();
        self.runtime.block_on(async move {
            let peer = node.dial(addr).await.unwrap();
            let protocol = node.network_protocol(INDEX_PROTOCOL);
            let mut stream = node.open_stream(peer, protocol).await.unwrap();
            write_frame(&mut stream, &IndexUpdate::Add(hashes).encode())
                .await
                .unwrap();
            tokio::spawn(async move {
                let _open = stream;
                std::future::pending::<()>().await
            });
        });
    }

    /// Adds `file` to the node (served over Bitswap) and returns its CID.
    pub fn add_file(&self, file: &Path) -> cid::Cid {
        self.runtime.block_on(self.node.add_file(file)).unwrap()
    }

    pub fn peer_id(&self) -> String {
        self.node.peer_id().to_string()
    }
}
