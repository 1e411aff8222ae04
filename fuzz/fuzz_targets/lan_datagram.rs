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
            assert!(target.starts_with('/') && !target.contains("..") && !target.contains("//"));
        }
        let _ = text.parse::<ExtraHost>();
    }
});
