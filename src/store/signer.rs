//! Signs narinfos with Peerix's key, remembering signatures: a path's fingerprint never changes,
//! and a fleet asks for the same paths over and over, so each is signed once, not per request.

use std::collections::HashMap;
use std::sync::Mutex;

use peerix_http::{NarHash, StoreHash};

use super::PathInfo;
use crate::nix::signing::{fingerprint, SecretKey};

/// About 200 bytes an entry.
const CACHE_CAP: usize = 1 << 18;

pub struct CachingSigner {
    key: SecretKey,
    own_prefix: String,
    signatures: Mutex<HashMap<StoreHash, (NarHash, String)>>,
}

impl CachingSigner {
    pub fn new(key: SecretKey) -> Self {
        Self {
            own_prefix: format!("{}:", key.name()),
            key,
            signatures: Mutex::new(HashMap::new()),
        }
    }

    /// Appends this key's signature unless the path already carries one by the same key name.
    pub fn add_signature(&self, info: &PathInfo, sigs: &mut Vec<String>) {
        if sigs.iter().any(|s| s.starts_with(&self.own_prefix)) {
            return;
        }
        let hash = info.path.hash();
        let cached = self.signatures.lock().ok().and_then(|cache| {
            cache
                .get(&hash)
                .filter(|(nar_hash, _)| *nar_hash == info.nar_hash)
                .map(|(_, sig)| sig.clone())
        });
        let sig = cached.unwrap_or_else(|| {
            let fp = fingerprint(&info.path, &info.nar_hash, info.nar_size, &info.references);
            let sig = self.key.sign(&fp);
            if let Ok(mut cache) = self.signatures.lock() {
                if cache.len() >= CACHE_CAP {
                    cache.clear();
                }
                cache.insert(hash, (info.nar_hash, sig.clone()));
            }
            sig
        });
        sigs.push(sig);
    }

    pub fn name(&self) -> &str {
        self.key.name()
    }
}
