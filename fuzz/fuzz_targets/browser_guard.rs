//! `BrowserGuard::check` never panics on any `Host`, `Origin`, `Referer` and `Sec-Fetch-Site`
//! values, and whatever it passes with an `Origin` has `Origin: http://<Host>`. Input: one byte
//! whose low four bits say which headers are present, then their values, separated by `\n`.
#![no_main]

use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use peerix_http::BrowserGuard;

const NAMES: [&str; 4] = ["host", "origin", "referer", "sec-fetch-site"];

fuzz_target!(|data: &[u8]| {
    let Some((&present, values)) = data.split_first() else {
        return;
    };
    let mut headers = HeaderMap::new();
    let mut values = values.split(|&b| b == b'\n');
    for (bit, name) in NAMES.iter().enumerate() {
        if present & (1 << bit) == 0 {
            continue;
        }
        let Some(Ok(value)) = values.next().map(HeaderValue::from_bytes) else {
            continue;
        };
        headers.append(HeaderName::from_static(name), value);
    }
    let guard = BrowserGuard::new(["peerix.test"]);
    if guard.check(&headers).is_ok() {
        if let (Some(origin), Some(host)) = (headers.get("origin"), headers.get("host")) {
            let expected = [b"http://".as_slice(), host.as_bytes()].concat();
            assert!(
                origin.as_bytes().eq_ignore_ascii_case(&expected),
                "{origin:?} passed for {host:?}"
            );
        }
    }
});
