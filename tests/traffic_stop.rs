//! The emergency stop: `POST /p2p/stop` closes every peer-to-peer connection at once and lets
//! none be made again (a peer that dials is refused), `POST /p2p/start` lets them be made again;
//! `/status` and `/metrics` tell which. A web page cannot press it.

mod common;

use std::time::Duration;

use common::control::{connect, peer_count, press};
use common::{curl, eventually, hash_part, ChrootStore, Fixture, NixKey, Peerix};

#[test]
fn the_stop_button_cuts_peers_off_and_start_lets_them_back() {
    let f = Fixture::get();
    let key = NixKey::generate("stop-test-1");
    let a_store = ChrootStore::signed(&key, &[&f.lib]);
    let a = Peerix::serve(a_store.root(), &[]);
    let a_addr = a.p2p_addr();
    let b_store = ChrootStore::empty();
    let b = Peerix::serve(
        b_store.root(),
        &[
            "--bootstrap-peers",
            &a_addr,
            "--trusted-public-key",
            &key.public,
        ],
    );
    b.wait_for_narinfo(&f.lib, Duration::from_secs(30));

    let from_a_page = curl(
        &format!("{}/p2p/stop", a.url()),
        &["-X", "POST", "-H", "Origin: http://evil.example"],
    );
    assert_eq!(from_a_page.status, 403);
    assert_eq!(peer_count(&a), 1);

    assert_eq!(press(&a, "/p2p/stop")["traffic_stopped"], true);
    eventually(Duration::from_secs(10), "B still sees A", || {
        peer_count(&b) == 0
    });
    assert_eq!(peer_count(&a), 0);
    assert_eq!(a.status()["node"]["traffic_stopped"], true);
    let metrics = String::from_utf8(curl(&format!("{}/metrics", a.url()), &[]).body).unwrap();
    assert!(metrics.contains("peerix_p2p_stopped 1"), "{metrics}");
    // B dials again and is refused; what A holds is no longer B's to get.
    assert!(!connect(&b, &a_addr), "a stopped node took a connection");
    let narinfo = format!("/{}.narinfo", hash_part(&f.lib));
    eventually(Duration::from_secs(10), "B still serves A's path", || {
        b.get(&narinfo).0 == 404
    });

    assert_eq!(press(&a, "/p2p/start")["traffic_stopped"], false);
    assert!(connect(&b, &a_addr), "a started node refused a connection");
    b.wait_for_narinfo(&f.lib, Duration::from_secs(30));
    assert_eq!(a.status()["node"]["traffic_stopped"], false);
}
