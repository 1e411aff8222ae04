//! The units the NixOS modules make, run: their generated command lines pass Peerix's own check
//! as systemd would run them, and the rescan a system switch triggers makes a running node scan
//! again. The modules are evaluated by the real module system (see `tests/common/nixos.rs`).

mod common;

use std::process::Command;

use common::nixos::{check_as_systemd, evaluate, nixpkgs_lib, package, words};
use common::NixKey;
use tempfile::TempDir;

#[test]
fn a_system_switch_makes_the_node_scan_again() {
    let Some(lib) = nixpkgs_lib() else { return };
    let package = package();
    let f = common::Fixture::get();
    let store = common::ChrootStore::with_paths(&[&f.app]);
    let node = common::Peerix::serve(store.root(), &[]);
    let finished_ago = || node.status()["scan"]["finished_seconds_ago"].as_u64();
    common::eventually(
        std::time::Duration::from_secs(20),
        "the first scan never finished long enough ago",
        || finished_ago() >= Some(2),
    );
    let evaluated = evaluate(
        &lib,
        package.path(),
        &format!(
            "{{ services.peerix = {{ enable = true; listen = \"0.0.0.0\"; port = {}; }}; }}",
            node.port
        ),
    );
    assert_eq!(
        evaluated["paths"]["peerix-rescan"]["pathConfig"]["PathChanged"],
        "/run/current-system"
    );
    let rescan = words(&evaluated["rescan"]);
    let out = Command::new(&rescan[0])
        .args(&rescan[1..])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{rescan:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    common::eventually(
        std::time::Duration::from_secs(20),
        "the node never scanned again",
        || finished_ago() < Some(2),
    );
}

#[test]
fn the_generated_command_lines_pass_peerix_s_own_check() {
    let Some(lib) = nixpkgs_lib() else { return };
    let package = package();
    let credentials = TempDir::new().unwrap();
    let key = NixKey::peerix_keygen("module-check-1");
    std::fs::copy(&key.secret, credentials.path().join("signing-key")).unwrap();
    let configurations = [
        "{ services.peerix.enable = true; }".to_owned(),
        format!(
            r#"{{ services.peerix = {{ enable = true; mode = "both"; trackerUrl = "http://t.example:12305";
               privateKeyFile = "/run/keys/peerix"; publicKey = "{}"; ipfs.lowBandwidth = true;
               extraHosts = [ "192.0.2.4" ]; cacheSize = "1GiB"; }}; }}"#,
            key.public
        ),
        r#"{ services.peerix = { enable = true; mode = "lan"; listen = "0.0.0.0"; ipfs.enableQUIC = false;
             ipfs.routingType = "none"; ipfs.resourceMgr.connsInbound = 20; }; }"#
            .to_owned(),
    ];
    for configuration in &configurations {
        let evaluated = evaluate(&lib, package.path(), configuration);
        let out = check_as_systemd(&evaluated["peerix"], credentials.path());
        assert!(
            out.status.success(),
            "{configuration}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // A bad setting stops the unit before it starts, naming the flag.
    let evaluated = evaluate(
        &lib,
        package.path(),
        r#"{ services.peerix = { enable = true; bootstrapUrl = "ftp://nowhere"; }; }"#,
    );
    let out = check_as_systemd(&evaluated["peerix"], credentials.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--bootstrap-url"));

    let tracker_db = TempDir::new().unwrap();
    let evaluated = evaluate(
        &lib,
        package.path(),
        &format!(
            r#"{{ services.peerix-tracker = {{ enable = true; dbPath = "{}/t.redb"; }}; }}"#,
            tracker_db.path().display()
        ),
    );
    let out = check_as_systemd(&evaluated["tracker"], credentials.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !tracker_db.path().join("t.redb").exists(),
        "the check wrote"
    );
}
