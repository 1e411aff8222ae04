//! `peerix why`'s argument (`store_hash_of`): no panics on any text; an accepted argument names
//! a hash it contains, and a hash, its basename and its store path all name the same one.
#![no_main]

use libfuzzer_sys::fuzz_target;
use peerix::why::store_hash_of;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(hash) = store_hash_of(text) else {
        return;
    };
    assert!(text.contains(hash.as_str()));
    for form in [
        hash.to_string(),
        format!("{hash}-name"),
        format!("/nix/store/{hash}-name/bin/x"),
    ] {
        assert_eq!(store_hash_of(&form).ok(), Some(hash), "{form}");
    }
});
