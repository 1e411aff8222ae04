//! `StoreHash::parse`, `StorePathName::parse` and `from_absolute`: no panics, and accepted values
//! keep their text and survive `to_absolute` -> `from_absolute`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use peerix_http::{StoreHash, StorePathName};

fn check(name: &StorePathName) {
    let basename = name.basename();
    assert_eq!(name.hash().as_str(), &basename[..32]);
    assert_eq!(format!("{}-{}", name.hash(), name.name()), basename);
    assert_eq!(name.to_string(), basename);
    assert_eq!(StorePathName::parse(basename).as_ref(), Ok(name));
    assert_eq!(
        StorePathName::from_absolute(&name.to_absolute()).as_ref(),
        Ok(name)
    );
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(hash) = StoreHash::parse(text) {
        assert_eq!(hash.as_str(), text);
        assert_eq!(hash.to_string(), text);
    }
    if let Ok(name) = StorePathName::parse(text) {
        assert_eq!(name.basename(), text);
        check(&name);
    }
    if let Ok(name) = StorePathName::from_absolute(text) {
        assert_eq!(name.to_absolute(), text);
        check(&name);
    }
});
