//! `parse_foreign_identity` on arbitrary bytes (an identity file another program left) never
//! panics, and what it accepts is an ed25519 keypair the node can write in its own format.
#![no_main]

use libfuzzer_sys::fuzz_target;
use peerix_node::parse_foreign_identity;

fuzz_target!(|data: &[u8]| {
    if let Ok(found) = parse_foreign_identity(data) {
        assert!(found.keypair.try_into_ed25519().is_ok());
    }
});
