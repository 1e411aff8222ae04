//! `POST /batch-narinfo` bodies parse into at most 100 store hashes or are refused, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use peerix::batch_narinfo::{parse_request, MAX_HASHES};

fuzz_target!(|data: &[u8]| {
    if let Ok(hashes) = parse_request(data) {
        assert!(hashes.len() <= MAX_HASHES);
    }
});
