//! `decode_node` and `decode_unixfs` on arbitrary bytes (blocks from peers) never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use peerix_node::unixfs::{decode_node, decode_unixfs};

fuzz_target!(|data: &[u8]| {
    if let Ok(node) = decode_node(data) {
        if let Some(inner) = node.data {
            let _ = decode_unixfs(inner);
        }
    }
    let _ = decode_unixfs(data);
});
