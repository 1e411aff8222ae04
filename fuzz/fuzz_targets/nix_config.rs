//! `peerix doctor`'s readers of Nix's settings (`nix show-config --json` and `nix.conf` text):
//! no panics on any text, and a URL a parsed `substituters` line names is found in the list.
#![no_main]

use libfuzzer_sys::fuzz_target;
use peerix::doctor::nix_config::{lists, parse_nix_conf, settings_from_json};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = settings_from_json(text);
    let Ok(settings) = parse_nix_conf(&[("input".to_owned(), text)]) else {
        return;
    };
    for url in &settings.substituters {
        assert!(lists(&settings.substituters, url), "{url}");
    }
});
