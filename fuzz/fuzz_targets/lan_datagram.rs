//! The old program's LAN datagrams parse or are refused, never panic, and what parses encodes
//! back to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use peerix::wire::lan::LanDatagram;

fuzz_target!(|data: &[u8]| {
    if let Ok(datagram) = LanDatagram::parse(data) {
        assert_eq!(datagram.encode(), data);
    }
});
