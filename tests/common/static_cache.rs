//! A binary cache served over HTTP from a directory (`nix copy --to file://...` made it), as
//! an upstream cache stands in for cache.nixos.org: counts the requests for each file, and can
//! stop answering (connections accepted and held) or stop altogether.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct StaticCache {
    pub port: u16,
    requests: Arc<Mutex<HashMap<String, u64>>>,
    silent: Arc<AtomicBool>,
    stopped: Arc<AtomicBool>,
}

impl StaticCache {
    pub fn serve(dir: &Path) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let this = Self {
            port,
            requests: Arc::default(),
            silent: Arc::default(),
            stopped: Arc::default(),
        };
        let (requests, silent, stopped) = (
            this.requests.clone(),
            this.silent.clone(),
            this.stopped.clone(),
        );
        let dir = dir.to_owned();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    return; // The listener goes: connections are refused from now on.
                }
                let Ok(stream) = stream else { continue };
                let (dir, requests, silent) = (dir.clone(), requests.clone(), silent.clone());
                std::thread::spawn(move || answer(stream, &dir, &requests, &silent));
            }
        });
        this
    }

    /// A listener that accepts connections and never answers.
    pub fn silent_from_start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let cache = Self::serve(dir.path());
        cache.go_silent();
        cache
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// GET requests for `path` (e.g. `/nar/x.nar.xz`) so far.
    pub fn requests_for(&self, path: &str) -> u64 {
        self.requests
            .lock()
            .unwrap()
            .get(path)
            .copied()
            .unwrap_or(0)
    }

    /// Every path asked for, with its count.
    pub fn requests(&self) -> HashMap<String, u64> {
        self.requests.lock().unwrap().clone()
    }

    pub fn go_silent(&self) {
        self.silent.store(true, Ordering::SeqCst);
    }

    /// Refuses connections from now on (open ones end at their next request).
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        // Wakes the accepting thread so that it drops the listener.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn answer(
    stream: TcpStream,
    dir: &Path,
    requests: &Mutex<HashMap<String, u64>>,
    silent: &AtomicBool,
) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut stream = stream;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        // The headers, up to the empty line.
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if line == "\r\n" || line == "\n" {
                break;
            }
        }
        if silent.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_secs(600));
            return;
        }
        let path = request_line.split(' ').nth(1).unwrap_or("/").to_owned();
        *requests.lock().unwrap().entry(path.clone()).or_default() += 1;
        let file: PathBuf = dir.join(path.trim_start_matches('/'));
        let inside = !path.contains("..");
        let written = match std::fs::read(&file) {
            Ok(body) if inside => {
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\n\r\n",
                    body.len()
                );
                stream
                    .write_all(head.as_bytes())
                    .and_then(|()| stream.write_all(&body))
            }
            _ => stream.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"),
        };
        if written.is_err() {
            return;
        }
    }
}
