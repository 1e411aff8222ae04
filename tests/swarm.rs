//! Swarming: one holder and five near fetchers, every upload capped, all `nix copy` the same
//! 64 MiB path at once; the fetchers pass each other the blocks they have, so the holder sends
//! the NAR less than twice (five times without). A fetcher that passes on wrong blocks is
//! banned by the others, whose copies still succeed.

mod common;

use std::process::Output;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use common::bare_peer::BarePeer;
use common::{eventually, nix_copy_from, ChrootStore, NixKey, Peerix};
use futures_util::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::StreamProtocol;
use peerix_node::bitswap::Message;
use peerix_node::unixfs::{file_cid, CidVersion};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tempfile::TempDir;

const BITSWAP: &str = "/ipfs/bitswap/1.2.0";

/// The tests take turns: six nodes each are enough for two cores.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn turn() -> MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner)
}

const NAR_MIB: usize = 64;
const FETCHERS: usize = 5;
/// Each node's upload: slow enough that the holder alone would take seconds per copy.
const UPLOAD_CAP: &str = "16M";
const LOOPBACK: &str = "/ip4/127.0.0.1/tcp/0";
const READY: Duration = Duration::from_secs(60);

/// Bytes that do not compress (SHA-256 of a counter): what a large build output looks like to a
/// cache.
fn content(len: usize) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(len + 32);
    let mut counter = 0u64;
    while bytes.len() < len {
        bytes.extend_from_slice(&Sha256::digest(counter.to_le_bytes()));
        counter += 1;
    }
    bytes.truncate(len);
    bytes
}

fn node_peers(node: &Peerix) -> Vec<Value> {
    node.status()["node"]["peers"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn bytes_out(node: &Peerix) -> u64 {
    node.status()["node"]["bytes_out"].as_u64().unwrap_or(0)
}

fn peer_id(addr: &str) -> &str {
    addr.rsplit("/p2p/").next().unwrap()
}

fn wait_connected(node: &Peerix, addrs: &[String]) {
    eventually(READY, "the nodes never all connected", || {
        let peers = node_peers(node);
        addrs
            .iter()
            .all(|a| peers.iter().any(|p| p["peer_id"] == peer_id(a)))
    });
}

struct Fleet {
    _scratch: TempDir,
    key: NixKey,
    path: String,
    holder_store: ChrootStore,
    holder: Peerix,
    fetchers: Vec<Peerix>,
    /// The fetchers' own stores: empty, and they stay so (`nix copy` writes elsewhere).
    _fetcher_stores: Vec<ChrootStore>,
}

/// The holder of a signed 64 MiB path and five fetchers, each connected to all the others.
fn fleet() -> Fleet {
    let scratch = TempDir::new().unwrap();
    let key = NixKey::generate("swarm-test-1");
    let holder_store = ChrootStore::empty();
    let path = holder_store.add_file(scratch.path(), "big-64m", &content(NAR_MIB << 20));
    holder_store.sign(&key.secret, &[&path]);
    let base = ["--listen-addrs", LOOPBACK, "--bandwidth-limit", UPLOAD_CAP];
    let with_key = |extra: &[String]| {
        let mut args: Vec<String> = base.iter().map(|s| s.to_string()).collect();
        args.extend(["--trusted-public-key".to_owned(), key.public.clone()]);
        args.extend_from_slice(extra);
        args
    };
    let holder = Peerix::serve(holder_store.root(), &refs(&with_key(&[])));
    eventually(READY, "the holder never published the path", || {
        let status = holder.status();
        status["indexed_paths"] == 1 && status["scan"]["running"] == false
    });
    let mut addrs = vec![holder.p2p_addr()];
    let (mut fetchers, mut fetcher_stores) = (Vec::new(), Vec::new());
    for _ in 0..FETCHERS {
        let bootstrap: Vec<String> = addrs
            .iter()
            .flat_map(|a| ["--bootstrap-peers".to_owned(), a.clone()])
            .collect();
        let store = ChrootStore::initialised();
        let fetcher = Peerix::serve(store.root(), &refs(&with_key(&bootstrap)));
        addrs.push(fetcher.p2p_addr());
        fetchers.push(fetcher);
        fetcher_stores.push(store);
    }
    for (i, fetcher) in fetchers.iter().enumerate() {
        let others: Vec<String> = addrs
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i + 1)
            .map(|(_, a)| a.clone())
            .collect();
        wait_connected(fetcher, &others);
        fetcher.wait_for_narinfo(&path, READY);
        // The holder and the four other fetchers.
        eventually(READY, "the others never became near members", || {
            fetcher.status()["swarm"]["near_members"] == FETCHERS as u64
        });
    }
    Fleet {
        _scratch: scratch,
        key,
        path,
        holder_store,
        holder,
        fetchers,
        _fetcher_stores: fetcher_stores,
    }
}

fn refs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// Every fetcher `nix copy`s the path at the same moment; each copy must succeed with the
/// holder's bytes.
fn copy_all(fleet: &Fleet) {
    for (dest, out) in copies(fleet) {
        assert!(
            out.status.success(),
            "nix copy failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        fleet.holder_store.assert_same_nars(&dest, &[&fleet.path]);
    }
}

fn copies(fleet: &Fleet) -> Vec<(ChrootStore, Output)> {
    let copies: Vec<_> = fleet
        .fetchers
        .iter()
        .map(|fetcher| {
            let (url, key, path) = (fetcher.url(), fleet.key.public.clone(), fleet.path.clone());
            std::thread::spawn(move || {
                let dest = ChrootStore::empty();
                let started = std::time::Instant::now();
                let out = nix_copy_from(&url, &dest, &key, &[&path]);
                eprintln!("a copy took {:.1} s", started.elapsed().as_secs_f64());
                (dest, out)
            })
        })
        .collect();
    copies.into_iter().map(|c| c.join().unwrap()).collect()
}

#[test]
fn five_fetchers_of_one_path_take_it_from_the_holder_less_than_twice() {
    let _turn = turn();
    let fleet = fleet();
    let before = bytes_out(&fleet.holder);
    copy_all(&fleet);
    let sent = bytes_out(&fleet.holder) - before;
    let nar = (NAR_MIB << 20) as f64;
    let passed_on: Vec<u64> = fleet
        .fetchers
        .iter()
        .map(|f| {
            f.status()["swarm"]["blocks_passed_on"]
                .as_u64()
                .unwrap_or(0)
        })
        .collect();
    eprintln!(
        "the holder sent {:.2} NARs for {FETCHERS} copies; blocks the fetchers passed on: {passed_on:?}",
        sent as f64 / nar
    );
    assert!(
        (sent as f64) < 2.0 * nar,
        "the holder sent {:.2} NARs",
        sent as f64 / nar
    );
    for fetcher in &fleet.fetchers {
        let served = &fetcher.status()["served"]["nar_bytes"];
        let swarm = served["swarm"].as_u64().unwrap_or(0);
        assert!(
            swarm > (NAR_MIB << 20) as u64,
            "not served as a swarm's: {served}"
        );
    }
}

/// Reads one length-prefixed (unsigned varint) message, or `None` at the end of the stream.
async fn read_delimited(stream: &mut libp2p::Stream) -> Option<Vec<u8>> {
    let (mut len, mut shift) = (0usize, 0);
    loop {
        let mut byte = [0u8];
        stream.read_exact(&mut byte).await.ok()?;
        len |= usize::from(byte[0] & 0x7f) << shift;
        if byte[0] & 0x80 == 0 {
            break;
        }
        shift += 7;
        if shift > 28 {
            return None;
        }
    }
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).await.ok()?;
    Some(body)
}

/// Answers every block wanted on the node's Bitswap streams with other bytes under its CID.
fn answer_with_wrong_blocks(
    runtime: &tokio::runtime::Runtime,
    liar: &mut BarePeer,
    lies: Arc<AtomicU64>,
) {
    let mut wants = liar.accept_protocol(StreamProtocol::new(BITSWAP));
    let mut replies = runtime.block_on(liar.open_protocol(StreamProtocol::new(BITSWAP)));
    runtime.spawn(async move {
        while let Some((_, mut stream)) = wants.next().await {
            while let Some(body) = read_delimited(&mut stream).await {
                let Ok(message) = Message::decode(&body) else {
                    return;
                };
                for want in message.wantlist.iter().filter(|w| !w.cancel) {
                    let wrong = Message {
                        blocks: vec![(want.cid, vec![0x5a; 1024])],
                        ..Message::default()
                    };
                    if replies
                        .write_all(wrong.encode_delimited().bytes())
                        .await
                        .is_err()
                    {
                        return;
                    }
                    lies.fetch_add(1, Ordering::SeqCst);
                }
            }
        }
    });
}

#[test]
fn a_fetcher_that_passes_on_wrong_blocks_is_banned_and_every_copy_succeeds() {
    let _turn = turn();
    let fleet = fleet();
    let cid = file_cid(CidVersion::V1, &fleet.holder_store.dump(&fleet.path)[..]).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let keypair = libp2p::identity::Keypair::generate_ed25519();
    let lies = Arc::new(AtomicU64::new(0));
    let mut liars = Vec::new();
    for fetcher in &fleet.fetchers {
        let addr: libp2p::Multiaddr = fetcher.p2p_addr().parse().unwrap();
        let mut liar = runtime.block_on(BarePeer::connect_as(&addr, keypair.clone()));
        let liar_id = liar.id.to_string();
        // A member of the network: an index stream announcing nothing, kept open.
        let index = runtime.block_on(async {
            let mut index = liar.open("index/1.0.0").await;
            index.write_all(&[0, 0, 0, 1, 1]).await.unwrap();
            index.flush().await.unwrap();
            index
        });
        eventually(READY, "the liar never became a member", || {
            fetcher.status()["peers"]["held_by_peer"]
                .get(&liar_id)
                .is_some()
        });
        answer_with_wrong_blocks(&runtime, &mut liar, lies.clone());
        // "I fetch this NAR too": the fetcher counts on it for a share of the blocks.
        eventually(READY, "the liar never became near", || {
            fetcher.status()["swarm"]["near_members"] == FETCHERS as u64 + 1
        });
        runtime.block_on(async {
            let mut notice = liar.open("swarm/1.0.0").await;
            let cid = cid.to_bytes();
            let mut frame = (cid.len() as u32).to_be_bytes().to_vec();
            frame.extend_from_slice(&cid);
            notice.write_all(&frame).await.unwrap();
            let mut answer = [0u8; 5];
            notice.read_exact(&mut answer).await.unwrap();
            assert_eq!(answer, [0, 0, 0, 1, 0], "nobody fetches it yet");
        });
        liars.push((liar, index));
    }
    copy_all(&fleet);
    let liar_id = keypair.public().to_peer_id().to_string();
    let told = lies.load(Ordering::SeqCst);
    assert!(told > 0, "nobody asked the liar");
    for fetcher in &fleet.fetchers {
        let banned = &fetcher.status()["swarm"]["banned"];
        assert!(
            banned.as_array().unwrap().iter().any(|b| *b == liar_id),
            "the liar is not banned: {banned}"
        );
    }
    eprintln!("the liar sent {told} wrong blocks, at most one per fetcher and want in flight");
}
