//! The checks of `peerix doctor` over `/status` documents and Nix settings made up for them.

use super::*;
use crate::doctor::nix_config::NixSettings;
use serde_json::json;

const API: &str = "http://127.0.0.1:12304";

fn healthy() -> Value {
    json!({
        "scan": {"running": false, "paths_done": 40, "paths_total": 40, "paths_failed": 0,
                 "finished_seconds_ago": 125},
        "indexed_paths": 40,
        "node": {"peer_id": "12D3KooWA", "listen_addrs": ["/ip4/0.0.0.0/tcp/13304"],
                 "nat": {"reachability": "public", "mapping": "unknown",
                         "hole_punching": "not needed (publicly reachable)"},
                 "bandwidth_limit": null,
                 "peers": [{"peer_id": "12D3KooWB", "relayed": false},
                           {"peer_id": "12D3KooWC", "relayed": true}]},
        "tracker": null,
        "lan": null,
        "refusals": {"recent": 0, "latest": null},
    })
}

fn nix(substituters: &[&str], keys: &[&str]) -> Result<NixConfig, NixConfigError> {
    let words = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect();
    Ok(NixConfig {
        settings: NixSettings {
            substituters: words(substituters),
            trusted_substituters: Vec::new(),
            trusted_public_keys: words(keys),
        },
        source: "Nix".to_owned(),
    })
}

#[test]
fn a_healthy_node_passes_every_check() {
    let checks = all(
        API,
        &Ok(healthy()),
        Some(&Ok(())),
        &nix(&["http://127.0.0.1:12304/"], &["k-1:AAAA"]),
    );
    assert_eq!(checks.len(), 10);
    for check in &checks {
        assert_eq!(check.verdict, Verdict::Ok, "{check}");
        assert_eq!(check.hint, None);
    }
    let lines: Vec<String> = checks.iter().map(ToString::to_string).collect();
    assert!(lines[0].contains("peer id 12D3KooWA"), "{lines:?}");
    assert!(
        lines[1].contains("the scan found 40 paths (0 failed), 40 shared"),
        "{lines:?}"
    );
    assert!(
        lines[4].contains("2 peers connected: 1 direct, 1 relayed"),
        "{lines:?}"
    );
    assert!(lines[6].contains("no cap"), "{lines:?}");
    assert!(lines[7].contains("finished 2 min 5 s ago"), "{lines:?}");
}

#[test]
fn a_silent_daemon_fails_the_checks_that_need_it_but_not_nix_s() {
    let down = Err(StatusError::Status {
        url: format!("{API}/status"),
        status: 502,
    });
    let checks = all(API, &down, None, &nix(&[API], &["k-1:AAAA"]));
    assert_eq!(checks[0].verdict, Verdict::Fail);
    assert_eq!(checks[2].verdict, Verdict::Ok, "{}", checks[2]);
    for check in checks.iter().skip(1).filter(|c| c.label != "nix config") {
        assert_eq!(check.verdict, Verdict::Fail);
        assert!(check.what.contains("Peerix does not answer"), "{check}");
    }
}

#[test]
fn nix_s_settings_must_name_peerix_and_trust_keys() {
    let missing = nix_config(API, &nix(&["https://cache.nixos.org/"], &["k-1:AAAA"]));
    assert_eq!(missing.verdict, Verdict::Fail);
    assert!(missing.hint.unwrap().contains("substituters"));
    let no_keys = nix_config(API, &nix(&[API], &[]));
    assert_eq!(no_keys.verdict, Verdict::Fail);
    assert!(no_keys.what.contains("trusted-public-keys is empty"));
    let mut only_trusted = nix(&[], &["k-1:AAAA"]).unwrap();
    only_trusted.settings.trusted_substituters = vec![format!("{API}/")];
    let check = nix_config(API, &Ok(only_trusted));
    assert_eq!(check.verdict, Verdict::Fail);
    assert!(check.what.contains("only in trusted-substituters"));
    let unreadable = nix_config(
        API,
        &Err(NixConfigError::NotJson("expected value".to_owned())),
    );
    assert_eq!(unreadable.verdict, Verdict::Warn);
}

#[test]
fn each_state_worth_a_word_gets_a_warning_or_a_failure() {
    let mut status = healthy();
    status["scan"]["paths_total"] = json!(0);
    assert_eq!(store(&status, &Ok(())).verdict, Verdict::Warn);
    let mut unscanned = healthy();
    unscanned["scan"]["finished_seconds_ago"] = json!(null);
    assert_eq!(store(&unscanned, &Ok(())).verdict, Verdict::Ok);
    unscanned["indexed_paths"] = json!(0);
    assert_eq!(store(&unscanned, &Ok(())).verdict, Verdict::Warn);
    assert_eq!(
        store(&status, &Err(CacheInfoError::Status(500))).verdict,
        Verdict::Fail
    );
    status["scan"]["paths_failed"] = json!(3);
    let scan = last_scan(&status);
    assert_eq!(scan.verdict, Verdict::Warn);
    assert!(
        scan.what.contains("3 paths could not be published"),
        "{scan}"
    );

    status["node"]["peers"] = json!([]);
    assert_eq!(peers(&status).verdict, Verdict::Warn);
    status["node"]["peers"] = json!([{"relayed": true}]);
    assert!(peers(&status).what.contains("all through relays"));
    status["node"]["listen_addrs"] = json!([]);
    assert_eq!(ports(&status).verdict, Verdict::Fail);
    status["node"]["nat"] = json!({"reachability": "private", "mapping": "symmetric",
                                   "hole_punching": "fails"});
    let nat_check = nat(&status);
    assert_eq!(nat_check.verdict, Verdict::Warn);
    assert!(nat_check.what.contains("symmetric"), "{nat_check}");
    status["node"]["bandwidth_limit"] = json!(2 << 20);
    assert!(bandwidth(&status).what.contains("2.0 MiB/s"));

    status["refusals"] = json!({"recent": 2, "latest": {"hash": "abc", "from": "peer P",
        "reason": "wrong NAR: short", "seconds_ago": 4}});
    let refused = refusals(&status);
    assert_eq!(refused.verdict, Verdict::Warn);
    assert!(
        refused.what.contains("abc from peer P: wrong NAR: short"),
        "{refused}"
    );
    assert_eq!(refusals(&json!({})).verdict, Verdict::Ok);

    status["tracker"] = json!({"url": "http://t:12305", "reachable": false,
                               "last_error": "connection refused"});
    assert_eq!(tracker(&status).verdict, Verdict::Fail);
    status["tracker"]["last_error"] = json!(null);
    assert_eq!(tracker(&status).verdict, Verdict::Warn);

    // A node that stopped answering fails every check on it.
    let stopped = json!({"scan": {}, "node": {"error": "stopped"}});
    for check in [ports, peers, nat, bandwidth] {
        assert_eq!(check(&stopped).verdict, Verdict::Fail);
    }
}
