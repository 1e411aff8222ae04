//! Rate limits: token buckets per client IP (every request) and per peer or other key, in maps
//! of bounded size.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

/// Requests per second a key may make on average, and at once after a pause.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateLimit {
    pub per_second: f64,
    pub burst: f64,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

pub struct Buckets<K> {
    limit: RateLimit,
    max_keys: usize,
    buckets: Mutex<HashMap<K, Bucket>>,
}

impl<K: Hash + Eq> Buckets<K> {
    pub fn new(limit: RateLimit, max_keys: usize) -> Self {
        Self {
            limit,
            max_keys: max_keys.max(1),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token of `key`'s bucket, or says after how many seconds one is there.
    pub fn take(&self, key: K, now: Instant) -> Result<(), u64> {
        let RateLimit { per_second, burst } = self.limit;
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= self.max_keys && !buckets.contains_key(&key) {
            // Buckets that refilled are as good as absent; if none did, every key starts over
            // (once per max_keys new keys): the map stays bounded either way.
            buckets.retain(|_, b| b.tokens + per_second * (now - b.at).as_secs_f64() < burst);
            if buckets.len() >= self.max_keys {
                buckets.clear();
            }
        }
        let bucket = buckets.entry(key).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        bucket.tokens = (bucket.tokens + per_second * (now - bucket.at).as_secs_f64()).min(burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Ok(());
        }
        Err(((1.0 - bucket.tokens) / per_second).ceil().max(1.0) as u64)
    }
}

/// The key of a client's bucket: its IPv4 address, or its IPv6 /64 (one site's block).
pub fn ip_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(bits.into())
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_bucket_refuses_past_its_burst_and_refills() {
        let buckets = Buckets::new(
            RateLimit {
                per_second: 2.0,
                burst: 3.0,
            },
            2,
        );
        let t = Instant::now();
        for _ in 0..3 {
            buckets.take(1, t).unwrap();
        }
        assert_eq!(buckets.take(1, t), Err(1));
        buckets.take(2, t).unwrap();
        buckets.take(1, t + Duration::from_millis(500)).unwrap();
        // A third key in a map of two: key 2's bucket refilled, so it makes room; key 1's
        // (empty) stays, still refusing.
        buckets.take(3, t + Duration::from_millis(500)).unwrap();
        assert_eq!(buckets.buckets.lock().unwrap().len(), 2);
        assert_eq!(buckets.take(1, t + Duration::from_millis(500)), Err(1));
    }
}
