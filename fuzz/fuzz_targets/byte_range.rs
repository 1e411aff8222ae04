//! `ByteRange::parse` + `resolve(size)`: no panics, and a resolved span satisfies
//! `start < end <= size`. Input: 8 bytes of little-endian body size, then the header text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use peerix_http::ByteRange;

fuzz_target!(|data: &[u8]| {
    let (size, header) = data.split_at(data.len().min(8));
    let mut size_bytes = [0u8; 8];
    size_bytes[..size.len()].copy_from_slice(size);
    let size = u64::from_le_bytes(size_bytes);
    let Ok(header) = std::str::from_utf8(header) else {
        return;
    };
    let Some(range) = ByteRange::parse(header) else {
        return;
    };
    if let Some((start, end)) = range.resolve(size) {
        assert!(
            start < end && end <= size,
            "{header:?} on {size} bytes resolved to {start}..{end}"
        );
    }
});
