//! `SecretKey::parse`, `PublicKey::parse` and `PublicKey::verify`: no panics; a parsed secret key
//! round-trips through its file text, and its public key verifies its own signatures.
//! Input: up to four lines `secret`, `public`, `fingerprint`, `sig`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use peerix::nix::signing::{PublicKey, SecretKey};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut lines = text.splitn(4, '\n');
    let secret = lines.next().unwrap_or_default();
    let public = lines.next().unwrap_or_default();
    let fingerprint = lines.next().unwrap_or_default();
    let sig = lines.next().unwrap_or_default();

    if let Ok(key) = SecretKey::parse(secret) {
        let again = SecretKey::parse(&key.to_file_text()).expect("secret key file text re-parses");
        assert_eq!(again.name(), key.name());
        assert_eq!(again.public(), key.public());
        let pk = key.public();
        assert_eq!(PublicKey::parse(&pk.to_file_text()), Ok(pk.clone()));
        assert!(pk.verify(fingerprint, &key.sign(fingerprint)));
        let _ = pk.verify(fingerprint, sig);
    }
    if let Ok(pk) = PublicKey::parse(public) {
        assert_eq!(PublicKey::parse(&pk.to_file_text()), Ok(pk.clone()));
        let _ = pk.verify(fingerprint, sig);
    }
});
