//! `NarValidator` on arbitrary bytes fed in arbitrary chunks, then `finish()`: no panics, and the
//! verdict must match feeding the same bytes in one piece.
//!
//! Input layout: byte 0 mod 9 = number of split points `k`; the next `2k` bytes are `k` little-endian
//! u16 split offsets (taken modulo the NAR length + 1); the rest is the NAR.
#![no_main]

use libfuzzer_sys::fuzz_target;
use peerix::nix::nar::{NarError, NarValidator};

fn validate<'a>(chunks: impl IntoIterator<Item = &'a [u8]>) -> Result<(), NarError> {
    let mut validator = NarValidator::new();
    for chunk in chunks {
        validator.feed(chunk)?;
    }
    validator.finish()
}

fuzz_target!(|data: &[u8]| {
    let Some((&head, rest)) = data.split_first() else {
        return;
    };
    let k = usize::from(head % 9);
    let Some((splits, nar)) = rest.split_at_checked(2 * k) else {
        return;
    };
    let mut points: Vec<usize> = splits
        .chunks_exact(2)
        .map(|p| usize::from(u16::from_le_bytes([p[0], p[1]])) % (nar.len() + 1))
        .collect();
    points.sort_unstable();
    let mut chunks = Vec::with_capacity(k + 1);
    let mut at = 0;
    for p in points {
        chunks.push(&nar[at..p]);
        at = p;
    }
    chunks.push(&nar[at..]);

    let whole = validate([nar]);
    let chunked = validate(chunks.iter().copied());
    assert_eq!(
        whole.is_ok(),
        chunked.is_ok(),
        "whole: {whole:?}, chunked: {chunked:?}, chunk lengths: {:?}",
        chunks.iter().map(|c| c.len()).collect::<Vec<_>>()
    );
});
