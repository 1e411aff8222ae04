//! The tracker's write envelope never panics on what clients send; what parses re-encodes to a
//! body that parses to the same write.
#![no_main]

use libfuzzer_sys::fuzz_target;
use peerix::wire::tracker::SignedWrite;

fuzz_target!(|data: &[u8]| {
    let Ok(write) = SignedWrite::parse(data) else {
        return;
    };
    let _ = write.verify(write.payload().route(), 1_800_000_000, 30);
    let _ = write.verify("/announce", u64::MAX, u64::MAX);
    assert_eq!(SignedWrite::parse(&write.to_json()), Ok(write));
});
