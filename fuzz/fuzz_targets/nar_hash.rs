//! `NarHash::parse` on arbitrary text: no panics, and an accepted hash re-parses from both its
//! nixbase32 (`Display`) and its hex spelling.
#![no_main]

use libfuzzer_sys::fuzz_target;
use peerix_http::NarHash;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(hash) = NarHash::parse(text) else {
        return;
    };
    assert_eq!(NarHash::parse(&hash.to_string()), Ok(hash));
    assert_eq!(
        NarHash::parse(&format!("sha256:{}", hash.to_hex())),
        Ok(hash)
    );
    assert_eq!(NarHash::from_base32(&hash.to_base32()), Ok(hash));
});
