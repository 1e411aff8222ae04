//! Two `peerix serve` nodes in two network namespaces joined by a veth pair, started without
//! `--offline` and without each other's address, find each other by mDNS alone. Everything they
//! send stays inside the namespaces this test creates (and removes). Needs root.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::running_as_root;
use tempfile::TempDir;

/// Two namespaces and the veth between them; removed on drop.
struct Lan {
    names: [String; 2],
}

fn ip(args: &[&str]) {
    let status = Command::new("ip")
        .args(args)
        .status()
        .expect("iproute2 is installed");
    assert!(status.success(), "ip {}", args.join(" "));
}

impl Lan {
    fn new() -> Self {
        let tag = std::process::id() % 100_000;
        let names = [format!("peerix-{tag}-a"), format!("peerix-{tag}-b")];
        let lan = Self { names };
        let links = [format!("px{tag}a"), format!("px{tag}b")];
        for name in &lan.names {
            ip(&["netns", "add", name]);
            // Name resolution inside the namespace goes to its own loopback, never elsewhere.
            let etc = Path::new("/etc/netns").join(name);
            std::fs::create_dir_all(&etc).unwrap();
            std::fs::write(etc.join("resolv.conf"), "nameserver 127.0.0.1\n").unwrap();
        }
        ip(&[
            "link", "add", &links[0], "type", "veth", "peer", "name", &links[1],
        ]);
        for (i, (name, link)) in lan.names.iter().zip(&links).enumerate() {
            ip(&["link", "set", link, "netns", name]);
            ip(&[
                "-n",
                name,
                "addr",
                "add",
                &format!("10.77.0.{}/24", i + 1),
                "dev",
                link,
            ]);
            ip(&["-n", name, "link", "set", link, "up"]);
            ip(&["-n", name, "link", "set", "lo", "up"]);
        }
        lan
    }

    fn run(&self, host: usize, args: &[&str]) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args([
            "netns",
            "exec",
            &self.names[host],
            env!("CARGO_BIN_EXE_peerix"),
        ])
        .args(args);
        cmd
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        for name in &self.names {
            let _ = Command::new("ip").args(["netns", "del", name]).status();
            let _ = std::fs::remove_dir_all(Path::new("/etc/netns").join(name));
        }
    }
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn stdout_of(mut cmd: Command) -> String {
    let out = cmd.output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn nodes_on_one_lan_find_each_other_by_mdns() {
    if !running_as_root() {
        eprintln!("skipped: network namespaces need root");
        return;
    }
    let lan = Lan::new();
    let dir = TempDir::new().unwrap();
    let _nodes: Vec<Killed> = (0..2)
        .map(|host| {
            let state = dir.path().join(format!("state-{host}"));
            let store = dir.path().join(format!("store-{host}"));
            let mut cmd = lan.run(host, &["serve", "--state-dir"]);
            cmd.arg(&state).arg("--store-root").arg(&store);
            cmd.stdout(Stdio::null()).stderr(Stdio::null());
            Killed(cmd.spawn().expect("peerix serve starts"))
        })
        .collect();

    let deadline = Instant::now() + Duration::from_secs(60);
    let peer_b = loop {
        let id = stdout_of(lan.run(1, &["ipfs", "id"]));
        if let Ok(id) = serde_json::from_str::<serde_json::Value>(&id) {
            break id["peer_id"].as_str().unwrap().to_owned();
        }
        assert!(Instant::now() < deadline, "node B never answered");
        std::thread::sleep(Duration::from_millis(200));
    };
    loop {
        let peers = stdout_of(lan.run(0, &["ipfs", "peers"]));
        if let Some(line) = peers.lines().find(|l| l.starts_with(&peer_b)) {
            assert!(line.contains("/ip4/10.77.0.2/"), "met over the LAN: {line}");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "A never found B by mDNS; peers: {peers:?}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}
