//! What the old LAN protocol brings in: its datagrams parse or are refused, never panic, and
//! what parses encodes back to the same bytes; a NAR URL an old peer's narinfo names becomes a
//! request target on the same server or nothing; `--extra-hosts` values parse or are refused.
#![no_main]

use libfuzzer_sys::fuzz_target;
use peerix::lan::old_peer_http::nar_target;
use peerix::lan::ExtraHost;
use peerix::wire::lan::LanDatagram;

fuzz_target!(|data: &[u8]| {
    if let Ok(datagram) = LanDatagram::parse(data) {
        assert_eq!(datagram.encode(), data);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Some(target) = nar_target(text) {
            let mut parts = target.split('/');
            assert_eq!(parts.next(), Some(""), "{target:?} starts with /");
            assert!(
                parts.all(|part| !part.is_empty() && part != "." && part != ".."),
                "{target:?} stays below the server's root"
            );
        }
        let _ = text.parse::<ExtraHost>();
    }
});
