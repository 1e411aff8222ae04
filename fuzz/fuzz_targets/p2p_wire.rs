//! The parsers of Peerix's own protocols never panic on what peers send; what decodes re-encodes
//! to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use peerix::wire::{
    decode_nar_answer, decode_narinfo_request, encode_nar_answer, frame_len, IndexUpdate,
    NarRequest, NarinfoAnswer,
};
use peerix::wire::swarm::{Fetching, SwarmAnswer};

fuzz_target!(|data: &[u8]| {
    if let Ok(update) = IndexUpdate::decode(data) {
        assert_eq!(update.encode(), data);
    }
    if let Ok(request) = NarRequest::decode(data) {
        assert_eq!(request.encode(), data);
    }
    if let Ok(answer) = decode_nar_answer(data) {
        assert_eq!(encode_nar_answer(answer), data);
    }
    if let Ok(answer) = NarinfoAnswer::decode(data) {
        assert_eq!(answer.encode(), data);
    }
    if let Ok(notice) = Fetching::decode(data) {
        assert_eq!(notice.encode(), data);
    }
    if let Ok(answer) = SwarmAnswer::decode(data) {
        assert_eq!(answer.encode(), data);
    }
    let _ = decode_narinfo_request(data);
    if let Some(header) = data.first_chunk::<4>() {
        let _ = frame_len(*header);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = peerix::discovery::parse_bootstrap_answer(text, "default");
    }
});
