//! The NixOS modules (`nixos/peerix.nix`, `nixos/peerix-tracker.nix`) evaluated by the real module
//! system: Nixpkgs' `lib.evalModules` from `NIXPKGS_LIB` (default `../shared/nixpkgs-lib/lib`),
//! through `tests/nixos/eval.nix`, with Debian's `nix-instantiate`. Checked: every option maps to
//! its flag and every `peerix serve` and `peerix tracker` flag has an option; the firewall opens
//! what each mode listens on; the assertions and warnings say what they should; Nix's settings
//! gain only the substituter and keys; the generated command lines are real `peerix` command
//! lines (`tests/nixos_units.rs` runs them).

mod common;

use std::collections::BTreeSet;
use std::process::Command;

use common::nixos::{command_words, evaluate, nixpkgs_lib, package, words};
use common::NixKey;

/// The long flags `peerix <command> --help` lists.
fn help_flags(command: &str) -> BTreeSet<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_peerix"))
        .args([command, "--help"])
        .output()
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|line| {
            // An option's own line; its description's lines are indented further.
            let text = line.trim_start();
            if line.len() - text.len() > 6 {
                return None;
            }
            let text = text.split_once(", ").map_or(text, |(_, long)| long);
            let flag = text.strip_prefix("--")?;
            let end = flag
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
                .unwrap_or(flag.len());
            Some(format!("--{}", &flag[..end]))
        })
        .collect()
}

fn flags_in(words: &[String]) -> BTreeSet<String> {
    words
        .iter()
        .filter(|w| w.starts_with("--"))
        .cloned()
        .collect()
}

/// A configuration that sets every option of `services.peerix`.
const EVERYTHING: &str = r#"{
  services.peerix = {
    enable = true;
    openFirewall = true;
    listen = "0.0.0.0";
    port = 12400;
    priority = 30;
    mode = "both";
    user = "peerix";
    group = "peerix";
    privateKeyFile = "/run/keys/peerix-secret";
    publicKey = "@KEY1@";
    trustedPublicKeys = [ "@KEY2@" ];
    noDefaultTrustedKeys = true;
    trustedPeers = [ "QmNnooDu7bfjPFoTZYxMNLWUQJyrVwtbZg5gBMjTezGAJN" ];
    globalCacheTTL = 300;
    trackerUrl = "http://tracker.example:12305";
    announceAddr = "203.0.113.7";
    identityFile = "/var/lib/peerix/identity.key";
    upstreamCache = "https://cache.example";
    noVerify = true;
    noFilter = false;
    noDefaultFilters = true;
    filterPatterns = [ "*-secret-*" ];
    bootstrapUrl = "http://bootstrap.example:12304/bootstrap";
    bootstrapPeers = [ "/ip4/192.0.2.1/tcp/13304/p2p/QmNnooDu7bfjPFoTZYxMNLWUQJyrVwtbZg5gBMjTezGAJN" ];
    relayServers = [ "/ip4/192.0.2.2/tcp/13304/p2p/QmNnooDu7bfjPFoTZYxMNLWUQJyrVwtbZg5gBMjTezGAJN" ];
    networkId = "office";
    listenAddrs = [ "/ip4/0.0.0.0/tcp/14000" "/ip4/0.0.0.0/udp/14001/quic-v1" ];
    scanInterval = 600;
    bandwidthLimit = "20MiB";
    ipfsApi = "http://127.0.0.1:5001";
    relayServer = true;
    relayLimits = { maxCircuits = 8; maxCircuitBytes = "1MiB"; maxCircuitDuration = "2m"; };
    allowRelayedTransfers = true;
    announceRate = 20;
    cacheSize = "1GiB";
    pullThrough = true;
    timeout = 300;
    extraHosts = [ "192.0.2.9" ];
    disableBroadcast = true;
    lanPort = 12410;
    allowedHosts = [ "peerix.lan" ];
    maxAddSize = "64MiB";
    headerTimeout = 20;
    maxConnections = 512;
    offline = false;
    storeRoot = "/";
    verbosity = 1;
    addSubstituter = true;
    ipfs.enable = true;
    ipfs.configureKubo = true;
    ipfs.lowBandwidth = false;
    ipfs.routingType = "dhtserver";
    ipfs.enableQUIC = true;
    ipfs.acceleratedDHTClient = true;
    ipfs.connMgr = { lowWater = 100; highWater = 200; };
    ipfs.resourceMgr = { connsInbound = 150; connsOutbound = 120; };
  };
}"#;

#[test]
fn every_flag_has_an_option_and_every_option_its_flag() {
    let Some(lib) = nixpkgs_lib() else { return };
    let package = package();
    let (key1, key2) = (NixKey::generate("test-1"), NixKey::generate("test-2"));
    let everything = EVERYTHING
        .replace("@KEY1@", &key1.public)
        .replace("@KEY2@", &key2.public);
    let evaluated = evaluate(&lib, package.path(), &everything);
    assert_eq!(evaluated["failedAssertions"], serde_json::json!([]));
    let serve = words(&evaluated["peerix"]);
    assert_eq!(
        serve[0],
        package.path().join("bin/peerix").to_str().unwrap()
    );
    assert_eq!(serve[1], "serve");
    // And the switches EVERYTHING leaves off, which exclude some of what it sets.
    let alone = evaluate(
        &lib,
        package.path(),
        "{ services.peerix = { enable = true; noFilter = true; offline = true; }; }",
    );
    let mut passed = flags_in(&serve);
    passed.extend(flags_in(&command_words(
        &evaluated["peerix"],
        "ExecStartPre",
    )));
    passed.extend(flags_in(&words(&alone["peerix"])));
    // What the module passes differently: the state directory is systemd's, the help and version
    // flags are not for a service; the log level is given as -v; a kubo RPC fallback without the
    // embedded node is ipfs.enable = false, checked below.
    let not_passed: BTreeSet<String> = ["--help", "--version", "--verbose", "--no-embedded-node"]
        .map(str::to_owned)
        .into();
    let wanted: BTreeSet<String> = help_flags("serve")
        .difference(&not_passed)
        .cloned()
        .collect();
    let missing: Vec<_> = wanted.difference(&passed).collect();
    assert!(missing.is_empty(), "flags with no option: {missing:?}");
    assert!(serve.contains(&"-v".to_owned()), "{serve:?}");

    // Each option's value reaches its flag.
    let after = |flag: &str| -> Vec<&str> {
        serve
            .windows(2)
            .filter(|w| w[0] == flag)
            .map(|w| w[1].as_str())
            .collect()
    };
    assert_eq!(after("--mode"), ["both"]);
    assert_eq!(after("--port"), ["12400"]);
    assert_eq!(after("--private-key"), ["%d/signing-key"]);
    assert_eq!(
        after("--trusted-public-key"),
        [key1.public.as_str(), key2.public.as_str()]
    );
    assert_eq!(after("--listen-addrs").len(), 2);
    assert_eq!(after("--relay-max-circuit-duration"), ["2m"]);
    assert_eq!(after("--timeout"), ["300"]);
    assert_eq!(after("--dht-mode"), ["server"]);
    assert_eq!(after("--quic"), ["on"]);
    assert_eq!(after("--max-peer-connections"), ["200"]);
    assert_eq!(after("--max-inbound-peer-connections"), ["150"]);
    assert_eq!(after("--max-outbound-peer-connections"), ["120"]);
    let unit = &evaluated["peerix"]["serviceConfig"];
    assert_eq!(unit["Type"], "notify");
    assert_eq!(unit["WatchdogSec"], "60s");
    assert_eq!(unit["User"], "peerix");
    assert_eq!(unit["DynamicUser"], false);
    assert_eq!(
        unit["LoadCredential"],
        serde_json::json!(["signing-key:/run/keys/peerix-secret"])
    );

    // Nix gains the substituter and the key, and the TTLs only because they were set.
    let nix = &evaluated["nixSettings"];
    assert_eq!(
        nix["extra-substituters"],
        serde_json::json!(["http://127.0.0.1:12400"])
    );
    assert_eq!(
        nix["extra-trusted-public-keys"],
        serde_json::json!([key1.public])
    );
    assert_eq!(nix["narinfo-cache-positive-ttl"], 300);
    let keys: BTreeSet<&str> = nix
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        BTreeSet::from([
            "extra-substituters",
            "extra-trusted-public-keys",
            "narinfo-cache-negative-ttl",
            "narinfo-cache-positive-ttl"
        ])
    );
    // A kubo for it, since ipfsApi names one, with the ipfs options.
    let kubo = &evaluated["kubo"];
    assert_eq!(kubo["enable"], true);
    assert_eq!(kubo["settings"]["Routing"]["Type"], "dhtserver");
    assert_eq!(kubo["settings"]["Swarm"]["ConnMgr"]["LowWater"], 100);
    assert_eq!(evaluated["warnings"], serde_json::json!([]));

    let tracker = evaluate(
        &lib,
        package.path(),
        r#"{ services.peerix-tracker = {
          enable = true; host = "0.0.0.0"; port = 12305; dbPath = "/var/lib/peerix-tracker/t.redb";
          openFirewall = true; trustProxy = [ "10.0.0.0/8" ]; ttl = 300; maxSkew = 60;
          ipRate = 20; ipBurst = 40; peerRate = 5; peerBurst = 10; headerTimeout = 10;
          maxConnections = 256; extraArgs = [ ];
        }; }"#,
    );
    let tracker_words = words(&tracker["tracker"]);
    assert_eq!(tracker_words[1], "tracker");
    let wanted: BTreeSet<String> = help_flags("tracker")
        .difference(&not_passed)
        .cloned()
        .collect();
    let tracker_flags = flags_in(&tracker_words);
    let missing: Vec<_> = wanted.difference(&tracker_flags).collect();
    assert!(
        missing.is_empty(),
        "tracker flags with no option: {missing:?}"
    );
    assert_eq!(tracker["firewall"]["tcp"], serde_json::json!([12305]));
    let tracker_unit = &tracker["tracker"]["serviceConfig"];
    assert_eq!(tracker_unit["DynamicUser"], true);
    assert_eq!(tracker_unit["StateDirectory"], "peerix-tracker");
    assert_eq!(
        tracker_unit["InaccessiblePaths"],
        serde_json::json!(["/nix/var/nix"])
    );
}

#[test]
fn the_firewall_opens_what_each_mode_listens_on() {
    let Some(lib) = nixpkgs_lib() else { return };
    let package = package();
    let ports = |settings: &str| {
        let evaluated = evaluate(
            &lib,
            package.path(),
            &format!("{{ services.peerix = {{ enable = true; {settings} }}; }}"),
        );
        (
            evaluated["firewall"]["tcp"].clone(),
            evaluated["firewall"]["udp"].clone(),
        )
    };
    let json = |v: &[u16]| serde_json::json!(v);
    // libp2p (TCP and QUIC on port + 1000) and mDNS; the front stays on loopback.
    assert_eq!(ports(""), (json(&[13304]), json(&[13304, 5353])));
    assert_eq!(
        ports(r#"mode = "libp2p";"#),
        (json(&[13304]), json(&[13304, 5353]))
    );
    // The tracker alone finds peers: no mDNS.
    assert_eq!(
        ports(r#"mode = "wan"; trackerUrl = "http://t:12305";"#),
        (json(&[13304]), json(&[13304]))
    );
    // The LAN protocol's UDP port and the /local listener too.
    assert_eq!(
        ports(r#"mode = "lan";"#),
        (json(&[13304, 12306]), json(&[13304, 5353, 12304]))
    );
    assert_eq!(
        ports(r#"mode = "both"; trackerUrl = "http://t:12305"; port = 9000; lanPort = 9100;"#),
        (json(&[10000, 9100]), json(&[10000, 5353, 9000]))
    );
    // The front only when it listens beyond loopback; listenAddrs' own ports.
    assert_eq!(
        ports(r#"listen = "0.0.0.0"; listenAddrs = [ "/ip4/0.0.0.0/tcp/4001" ];"#),
        (json(&[4001, 12304]), json(&[5353]))
    );
    assert_eq!(ports("offline = true;"), (json(&[]), json(&[])));
    assert_eq!(ports("openFirewall = false;"), (json(&[]), json(&[])));
}

#[test]
fn the_assertions_and_warnings_say_what_to_fix() {
    let Some(lib) = nixpkgs_lib() else { return };
    let package = package();
    let check = |settings: &str| {
        evaluate(
            &lib,
            package.path(),
            &format!("{{ services.peerix = {{ enable = true; {settings} }}; }}"),
        )
    };
    let failed = |settings: &str| check(settings)["failedAssertions"].to_string();
    for mode in ["wan", "hybrid", "both"] {
        let text = failed(&format!("mode = \"{mode}\";"));
        assert!(
            text.contains("set services.peerix.trackerUrl"),
            "{mode}: {text}"
        );
    }
    assert!(failed("noVerify = true;").contains("trustedPeers"));
    assert!(failed(r#"pullThrough = true; upstreamCache = "";"#)
        .contains("set services.peerix.upstreamCache"));
    assert_eq!(
        check("pullThrough = true;")["failedAssertions"],
        serde_json::json!([])
    );
    assert!(failed(r#"noFilter = true; filterPatterns = [ "x" ];"#).contains("noFilter"));
    assert!(failed(
        r#"bandwidthLimit = "1M"; ipfs.rateLimit = { enable = true; totalBandwidth = 100; };"#
    )
    .contains("set one"));
    let ignored = check("ipfs.rateLimit.totalBandwidth = 100;")["warnings"].to_string();
    assert!(
        ignored.contains("without ipfs.rateLimit.enable"),
        "{ignored}"
    );
    // IPv6 and wildcard addresses make URLs Nix can use.
    let v6 = check(r#"listen = "::1";"#);
    assert_eq!(
        v6["nixSettings"]["extra-substituters"],
        serde_json::json!(["http://[::1]:12304"])
    );
    let anywhere = check(r#"listen = "::";"#);
    assert_eq!(
        anywhere["nixSettings"]["extra-substituters"],
        serde_json::json!(["http://127.0.0.1:12304"])
    );
    assert_eq!(
        anywhere["peerix"]["serviceConfig"]["RestartPreventExitStatus"],
        2
    );
    assert!(failed(r#"group = "g";"#).contains("needs services.peerix.user"));
    assert_eq!(check("")["failedAssertions"], serde_json::json!([]));
    let warned = check(r#"peerId = "QmOld";"#)["warnings"].to_string();
    assert!(warned.contains("peerId has no effect"), "{warned}");

    // The old program's configuration, as its README wrote it, evaluates as it is.
    let old = check(
        r#"mode = "lan"; openFirewall = true; user = "nobody"; group = "nobody";
           globalCacheTTL = 60; ipfs.enable = true; ipfs.lowBandwidth = true;"#,
    );
    assert_eq!(old["failedAssertions"], serde_json::json!([]));
    // lowBandwidth's preset: the old 3 MiB/s cap.
    let old_words = words(&old["peerix"]);
    let cap = old_words
        .iter()
        .position(|w| w == "--bandwidth-limit")
        .unwrap();
    assert_eq!(old_words[cap + 1], "3072KiB");
    let next =
        |flag: &str| old_words[old_words.iter().position(|w| w == flag).unwrap() + 1].clone();
    assert_eq!(next("--quic"), "off");
    assert_eq!(next("--max-peer-connections"), "10");
    assert_eq!(next("--dht-mode"), "client");
    // Without QUIC, no UDP port for libp2p; mDNS and the LAN protocol still.
    assert_eq!(old["firewall"]["udp"], serde_json::json!([5353, 12304]));
    let unused = check("ipfs.acceleratedDHTClient = true; ipfs.connMgr.lowWater = 5;")["warnings"]
        .to_string();
    assert!(
        unused.contains("acceleratedDHTClient has no effect")
            && unused.contains("lowWater has no effect"),
        "{unused}"
    );
}
