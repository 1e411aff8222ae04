//! `NarInfo::parse` on arbitrary text must not panic, and whatever parses must survive
//! `render` -> `parse` unchanged. Rendering spells out defaults and adds a space after each key,
//! so an input just under the size bound may render just over it: that alone is no failure.
#![no_main]

use libfuzzer_sys::fuzz_target;
use peerix_http::NarInfo;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(info) = NarInfo::parse(text) else {
        return;
    };
    let rendered = info.render();
    if rendered.len() > peerix_http::narinfo::MAX_NARINFO_LEN {
        return;
    }
    match NarInfo::parse(&rendered) {
        Ok(again) => assert_eq!(again, info, "round trip changed the value:\n{rendered}"),
        Err(e) => panic!("rendered narinfo does not parse ({e}):\n{rendered}"),
    }
});
