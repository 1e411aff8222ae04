//! A node parses the tracker's answers without panicking, whatever the tracker sends.
#![no_main]

use libfuzzer_sys::fuzz_target;
use peerix::wire::tracker::{
    parse_answer, CidsAnswer, ErrorAnswer, FindAnswer, MembershipAnswer, PeersAnswer,
    ReputationAnswer, StatusAnswer, TransferAnswer, WriteAnswer,
};

fuzz_target!(|data: &[u8]| {
    let _ = parse_answer::<FindAnswer>(data);
    let _ = parse_answer::<MembershipAnswer>(data);
    let _ = parse_answer::<PeersAnswer>(data);
    let _ = parse_answer::<StatusAnswer>(data);
    let _ = parse_answer::<CidsAnswer>(data);
    let _ = parse_answer::<ReputationAnswer>(data);
    let _ = parse_answer::<WriteAnswer>(data);
    let _ = parse_answer::<TransferAnswer>(data);
    let _ = parse_answer::<ErrorAnswer>(data);
});
