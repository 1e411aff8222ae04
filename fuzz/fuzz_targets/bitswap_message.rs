//! `Message::decode` on arbitrary bytes never panics; whatever decodes re-encodes to bytes that
//! decode to the same message, and every block is filed under the CID of its own bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use peerix_node::bitswap::Message;
use peerix_node::block::verify;

fuzz_target!(|data: &[u8]| {
    let Ok(message) = Message::decode(data) else {
        return;
    };
    for (cid, block) in &message.blocks {
        assert_eq!(verify(cid, block), Ok(()), "block filed under a CID it does not have");
    }
    let again = Message::decode(&message.encode()).expect("re-encoded message decodes");
    assert_eq!(again, message);
});
