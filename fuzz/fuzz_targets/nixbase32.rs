//! `nixbase32::decode::<20>` / `::<32>` on arbitrary text (accepted text must re-encode to itself),
//! and `encode` -> `decode` on arbitrary bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use peerix_http::nixbase32::{decode, encode, encoded_len, is_valid_text};

fn text_round_trip<const N: usize>(text: &str) {
    if let Ok(bytes) = decode::<N>(text) {
        assert!(is_valid_text(text.as_bytes()));
        assert_eq!(
            encode(&bytes),
            text,
            "decoded text does not re-encode to itself"
        );
    }
}

fn bytes_round_trip<const N: usize>(data: &[u8]) {
    if let Some(bytes) = data.get(..N) {
        let text = encode(bytes);
        assert_eq!(decode::<N>(&text).as_ref().map(|b| &b[..]), Ok(bytes));
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        text_round_trip::<20>(text);
        text_round_trip::<32>(text);
    }
    bytes_round_trip::<20>(data);
    bytes_round_trip::<32>(data);
    let text = encode(data);
    assert_eq!(text.len(), encoded_len(data.len()));
    assert!(is_valid_text(text.as_bytes()));
});
