//! Pieces both namespace labs (`tests/nat_lab`, `tests/lan_lab`) build with: a namespace that
//! resolves names only on its own loopback, commands that must succeed, and the log of a
//! process run in a lab.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

/// Runs `cmd`, which must succeed; its stderr is in the failure message.
pub fn must(cmd: &mut Command) {
    let out = cmd.output().expect("command starts");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Creates namespace `ns` with its loopback up; name resolution inside it goes to that
/// loopback, never elsewhere.
pub fn add_namespace(ns: &str) {
    must(Command::new("ip").args(["netns", "add", ns]));
    let etc = Path::new("/etc/netns").join(ns);
    std::fs::create_dir_all(&etc).unwrap();
    std::fs::write(etc.join("resolv.conf"), "nameserver 127.0.0.1\n").unwrap();
    must(Command::new("ip").args(["-n", ns, "link", "set", "lo", "up"]));
}

/// Deletes what [`add_namespace`] made.
pub fn remove_namespace(ns: &str) {
    let _ = Command::new("ip").args(["netns", "del", ns]).status();
    let _ = std::fs::remove_dir_all(Path::new("/etc/netns").join(ns));
}

/// Starts `cmd` with no stdin or stdout and its stderr kept by [`keep_stderr`].
pub fn spawn_logged(cmd: &mut Command, label: String) -> (Child, Arc<Mutex<Vec<String>>>) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the program starts");
    let log = keep_stderr(&mut child, label);
    (child, log)
}

/// Echoes `child`'s stderr (piped) to the test's, each line behind `label`, and keeps it.
pub fn keep_stderr(child: &mut Child, label: String) -> Arc<Mutex<Vec<String>>> {
    let stderr = child.stderr.take().expect("stderr is piped");
    let log = Arc::new(Mutex::new(Vec::new()));
    let sink = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("[{label}] {line}");
            sink.lock().unwrap().push(line);
        }
    });
    log
}
