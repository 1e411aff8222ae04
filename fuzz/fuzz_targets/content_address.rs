//! `ContentAddress::parse` (a narinfo's `CA:` field, from peers) never panics on arbitrary text,
//! nor does computing a store path from what parses, with any name and references.
#![no_main]

use libfuzzer_sys::fuzz_target;
use peerix::nix::ca::{reproduces, ContentAddress};
use peerix_http::StorePathName;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // The CA field, then (after a newline) a path and its references, as a narinfo gives them.
    let (ca, rest) = text.split_once('\n').unwrap_or((text, ""));
    let mut names = rest.split(' ').filter_map(|n| StorePathName::parse(n).ok());
    let path = names.next();
    let references: Vec<StorePathName> = names.collect();
    if let Ok(address) = ContentAddress::parse(ca) {
        let name = path.as_ref().map_or("x", StorePathName::name);
        let _ = address.store_path(name, &references, path.as_ref());
    }
    if let Some(path) = &path {
        let _ = reproduces(ca, path, &references);
    }
});
