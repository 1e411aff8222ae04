//! `peerix tracker` as a process on 127.0.0.1, written to by signed peers and read with the
//! answer types nodes parse (issue 11, "The tracker"). `refusals`: what the tracker must refuse,
//! changing nothing; `state`: what it keeps, answers and forgets.

#[path = "../common/tracker_process.rs"]
mod tracker_process;

mod refusals;
mod state;

use std::path::Path;

use peerix::wire::tracker::{
    parse_answer, FindAnswer, MembershipAnswer, ReputationAnswer, WritePayload,
};
use peerix_http::StoreHash;
use peerix_node::PeerId;
use tempfile::TempDir;
use tracker_process::{store_hash, Reply, TestPeer, TrackerProcess};

pub const CID: &str = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy";
pub const OTHER_CID: &str = "bafkreiccgvvayxxoskzwf2wwh6ldulucg6c7zqq7zt6fnsrglpyolgltgy";

pub fn start(dir: &TempDir, extra: &[&str]) -> TrackerProcess {
    TrackerProcess::start_binary(
        Path::new(env!("CARGO_BIN_EXE_peerix")),
        &dir.path().join("tracker.redb"),
        extra,
    )
}

pub fn announce(port: u16) -> WritePayload {
    WritePayload::Announce {
        port,
        addrs: vec![format!("/ip4/192.168.1.7/tcp/{port}").parse().unwrap()],
    }
}

pub fn batch(range: std::ops::Range<u32>) -> WritePayload {
    WritePayload::PackagesBatch {
        hashes: range.map(store_hash).collect(),
    }
}

pub fn cid_write(hash: StoreHash, cid: &str) -> WritePayload {
    WritePayload::Cid {
        hash,
        cid: cid.parse().unwrap(),
    }
}

pub fn find(tracker: &TrackerProcess, hash: StoreHash) -> FindAnswer {
    let reply = tracker.get(&format!("/find/{hash}"));
    assert_eq!(reply.status, 200);
    parse_answer(&reply.body).unwrap()
}

pub fn providers(tracker: &TrackerProcess, hash: StoreHash) -> Vec<String> {
    find(tracker, hash)
        .providers
        .into_iter()
        .map(|p| p.peer_id)
        .collect()
}

pub fn reputation(tracker: &TrackerProcess, peer: PeerId) -> ReputationAnswer {
    parse_answer(&tracker.get(&format!("/reputation/{peer}")).body).unwrap()
}

pub fn membership(tracker: &TrackerProcess, since: Option<(u64, u64)>) -> MembershipAnswer {
    let path = match since {
        Some((epoch, version)) => format!("/membership?since={epoch}.{version}"),
        None => "/membership".to_owned(),
    };
    parse_answer(&tracker.get(&path).body).unwrap()
}

/// Everything a refused write could have changed, as the read routes show it.
pub fn snapshot(tracker: &TrackerProcess, peers: &[&TestPeer]) -> Vec<String> {
    let mut seen = vec![
        String::from_utf8(tracker.get("/status").body).unwrap(),
        String::from_utf8(tracker.get("/peers").body).unwrap(),
        String::from_utf8(tracker.get("/cids").body).unwrap(),
    ];
    for n in 0..12 {
        let body = tracker.get(&format!("/find/{}", store_hash(n))).body;
        seen.push(String::from_utf8(body).unwrap());
        let body = tracker.get(&format!("/cid/{}", store_hash(n))).body;
        seen.push(String::from_utf8(body).unwrap());
    }
    for peer in peers {
        let body = tracker.get(&format!("/reputation/{}", peer.id)).body;
        seen.push(String::from_utf8(body).unwrap());
    }
    seen
}

pub fn assert_refused(reply: &Reply, status: u16, what: &str) {
    assert_eq!(
        reply.status,
        status,
        "{what}: {}",
        String::from_utf8_lossy(&reply.body)
    );
    assert!(!reply.error().is_empty(), "{what}: a JSON error says why");
}

/// Flips one character in the middle of the base64 signature.
pub fn forge(body: &[u8]) -> Vec<u8> {
    let mut value: serde_json::Value = serde_json::from_slice(body).unwrap();
    let signature = value["signature"].as_str().unwrap().to_owned();
    let mut chars: Vec<char> = signature.chars().collect();
    let i = chars.len() / 2;
    chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
    value["signature"] = chars.into_iter().collect::<String>().into();
    serde_json::to_vec(&value).unwrap()
}
