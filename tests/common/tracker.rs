//! A running `peerix tracker` on 127.0.0.1, killed on drop.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use super::front_latency;

pub struct Tracker {
    child: Child,
    pub port: u16,
}

impl Tracker {
    /// A tracker on any free port with its database in `dir`.
    pub fn start(dir: &Path, extra: &[&str]) -> Self {
        Self::start_on(dir, 0, extra)
    }

    /// A tracker on `port` (0: any free one) with its database in `dir`.
    pub fn start_on(dir: &Path, port: u16, extra: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_peerix"))
            .args([
                "tracker",
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
            ])
            .arg("--db-path")
            .arg(dir.join("tracker.redb"))
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("peerix binary runs");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(addr) = line.split("http://").nth(1) {
                    let _ = tx.send(addr.rsplit(':').next().unwrap_or("").parse::<u16>());
                }
                eprintln!("[tracker] {line}");
            }
        });
        let port = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(Ok(port)) => port,
            other => {
                let _ = child.kill();
                panic!("the tracker did not report its address: {other:?}");
            }
        };
        Self { child, port }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn get(&self, path: &str) -> (u16, Vec<u8>) {
        front_latency::get(self.port, path)
    }

    /// GET `path`, which must answer 200 with JSON.
    pub fn get_json(&self, path: &str) -> serde_json::Value {
        let (status, body) = self.get(path);
        assert_eq!(
            status,
            200,
            "GET {path}: {}",
            String::from_utf8_lossy(&body)
        );
        serde_json::from_slice(&body).unwrap()
    }

    /// kill -9, as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        self.kill();
    }
}
