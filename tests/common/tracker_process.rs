//! A real `peerix tracker` process on 127.0.0.1 and peers that write to it signed, as a node
//! would. Included by `tests/tracker/`, `tests/wan_mode.rs` and `benches/tracker`.
#![allow(dead_code)] // Each includer uses its own subset.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ed25519_dalek::SigningKey;
use peerix::wire::tracker::{peer_id, SignedWrite, WritePayload, NONCE_LEN};
use peerix_http::StoreHash;
use peerix_node::PeerId;

pub struct TrackerProcess {
    child: Child,
    pub url: String,
    pub db: PathBuf,
    agent: ureq::Agent,
}

/// A response: status, `Retry-After` if any, body.
pub struct Reply {
    pub status: u16,
    pub retry_after: Option<String>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!("{e}: {}", String::from_utf8_lossy(&self.body));
        })
    }

    pub fn error(&self) -> String {
        self.json()["error"].as_str().unwrap_or_default().to_owned()
    }
}

impl TrackerProcess {
    /// Starts `binary tracker` on a free port of 127.0.0.1 with its database at `db`.
    pub fn start_binary(binary: &Path, db: &Path, extra: &[&str]) -> Self {
        Self::start_binary_on(binary, db, 0, extra)
    }

    /// [`Self::start_binary`] on `port` of 127.0.0.1 (0: a free one).
    pub fn start_binary_on(binary: &Path, db: &Path, port: u16, extra: &[&str]) -> Self {
        let mut child = Command::new(binary)
            .args([
                "tracker",
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
            ])
            .arg("--db-path")
            .arg(db)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("peerix runs");
        let stderr = child.stderr.take().expect("piped stderr");
        let (found, url) = mpsc::channel();
        std::thread::spawn(move || {
            let mut found = Some(found);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("peerix tracker: listening on ") {
                    if let Some(found) = found.take() {
                        let _ = found.send(url.to_owned());
                    }
                } else {
                    eprintln!("tracker: {line}");
                }
            }
        });
        let url = url
            .recv_timeout(Duration::from_secs(60))
            .expect("the tracker says where it listens");
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        Self {
            child,
            url,
            db: db.to_owned(),
            agent,
        }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.url
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or(0)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: no shutdown, no flush beyond what each commit did.
    pub fn kill_9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn get(&self, path: &str) -> Reply {
        self.reply(self.agent.get(format!("{}{path}", self.url)).call())
    }

    pub fn get_with(&self, path: &str, header: (&str, &str)) -> Reply {
        let request = self
            .agent
            .get(format!("{}{path}", self.url))
            .header(header.0, header.1);
        self.reply(request.call())
    }

    pub fn post(&self, path: &str, body: &[u8]) -> Reply {
        let request = self
            .agent
            .post(format!("{}{path}", self.url))
            .header("content-type", "application/json");
        self.reply(request.send(body))
    }

    pub fn post_with(&self, path: &str, body: &[u8], header: (&str, &str)) -> Reply {
        let request = self
            .agent
            .post(format!("{}{path}", self.url))
            .header("content-type", "application/json")
            .header(header.0, header.1);
        self.reply(request.send(body))
    }

    fn reply(&self, result: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Reply {
        let mut response = result.expect("the tracker answers");
        Reply {
            status: response.status().as_u16(),
            retry_after: response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            body: response
                .body_mut()
                .with_config()
                .limit(64 << 20)
                .read_to_vec()
                .expect("a body"),
        }
    }

    /// Posts `payload` signed by `peer` to its route.
    pub fn write(&self, peer: &TestPeer, payload: WritePayload) -> Reply {
        self.post(payload.route(), &peer.sign(payload))
    }

    /// [`Self::write`], which must be accepted.
    pub fn write_ok(&self, peer: &TestPeer, payload: WritePayload) -> serde_json::Value {
        let route = payload.route();
        let reply = self.write(peer, payload);
        assert_eq!(
            reply.status,
            200,
            "{route}: {}",
            String::from_utf8_lossy(&reply.body)
        );
        reply.json()
    }
}

impl Drop for TrackerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A peer with an ed25519 identity, as a node's libp2p key.
pub struct TestPeer {
    key: SigningKey,
    pub id: PeerId,
}

impl TestPeer {
    pub fn new(seed: u64) -> Self {
        let mut secret = [0; 32];
        secret[..8].copy_from_slice(&seed.to_le_bytes());
        secret[8] = 1;
        let key = SigningKey::from_bytes(&secret);
        let id = peer_id(&key.verifying_key()).unwrap();
        Self { key, id }
    }

    /// The write's JSON, signed now with a fresh nonce.
    pub fn sign(&self, payload: WritePayload) -> Vec<u8> {
        let mut nonce = [0; NONCE_LEN];
        getrandom::getrandom(&mut nonce).unwrap();
        self.sign_at(payload, unix_now(), nonce)
    }

    pub fn sign_at(
        &self,
        payload: WritePayload,
        timestamp: u64,
        nonce: [u8; NONCE_LEN],
    ) -> Vec<u8> {
        let route = payload.route();
        SignedWrite::sign(&self.key, route, payload, timestamp, nonce)
            .unwrap()
            .to_json()
    }
}

/// The `n`th of many distinct store hashes.
pub fn store_hash(n: u32) -> StoreHash {
    // Digits of nixbase32 only: 0-9 and a-d are all in its alphabet.
    const DIGITS: &[u8; 14] = b"0123456789abcd";
    let mut text = [b'0'; 32];
    let mut n = n as usize;
    for byte in text.iter_mut().rev() {
        *byte = DIGITS[n % DIGITS.len()];
        n /= DIGITS.len();
    }
    StoreHash::parse(std::str::from_utf8(&text).unwrap()).unwrap()
}
