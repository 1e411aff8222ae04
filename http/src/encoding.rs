//! zstd transport compression (`Content-Encoding: zstd`) for NAR bodies.

use std::io::{self, Write as _};

use bytes::Bytes;
use futures_util::StreamExt;

use crate::ByteStream;

/// Level 1: NARs travel over loopback or LANs, where a higher level costs more CPU than it saves.
const LEVEL: i32 = 1;

/// True when the client lists zstd in `Accept-Encoding` with a non-zero quality.
pub fn accepts_zstd(accept_encoding: &str) -> bool {
    accept_encoding.split(',').any(|item| {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or_default().trim();
        let refused = parts.any(|p| {
            p.trim()
                .strip_prefix("q=")
                .and_then(|q| q.trim().parse::<f32>().ok())
                .is_some_and(|q| q <= 0.0)
        });
        coding.eq_ignore_ascii_case("zstd") && !refused
    })
}

/// Compresses a byte stream chunk by chunk; memory stays at one chunk plus zstd's window.
pub fn zstd_stream(input: ByteStream) -> io::Result<ByteStream> {
    let encoder = zstd::stream::write::Encoder::new(Vec::new(), LEVEL)?;
    let state = (input, Some(encoder));
    let stream = futures_util::stream::unfold(state, |(mut input, mut encoder)| async move {
        let active = encoder.as_mut()?;
        let produced = match input.next().await {
            Some(Ok(chunk)) => active
                .write_all(&chunk)
                .and_then(|()| active.flush())
                .map(|()| Bytes::from(std::mem::take(active.get_mut()))),
            Some(Err(e)) => Err(e),
            None => encoder.take()?.finish().map(Bytes::from),
        };
        if produced.is_err() {
            encoder = None;
        }
        Some((produced, (input, encoder)))
    });
    Ok(Box::pin(stream))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_accept_encoding() {
        assert!(accepts_zstd("zstd"));
        assert!(accepts_zstd("gzip, zstd;q=0.5, br"));
        assert!(accepts_zstd("ZSTD"));
        assert!(!accepts_zstd("gzip, br"));
        assert!(!accepts_zstd("zstd;q=0"));
        assert!(!accepts_zstd("zstdx"));
    }

    #[tokio::test]
    async fn compressed_stream_decodes_to_input() {
        let chunks: Vec<io::Result<Bytes>> = (0..50u8)
            .map(|i| Ok(Bytes::from(vec![i; 10_000 + usize::from(i)])))
            .collect();
        let expected: Vec<u8> = chunks
            .iter()
            .flat_map(|c| c.as_ref().unwrap().to_vec())
            .collect();
        let mut out = zstd_stream(Box::pin(futures_util::stream::iter(chunks))).unwrap();
        let mut compressed = Vec::new();
        while let Some(chunk) = out.next().await {
            compressed.extend_from_slice(&chunk.unwrap());
        }
        assert!(compressed.len() < expected.len() / 10);
        assert_eq!(zstd::decode_all(&compressed[..]).unwrap(), expected);
    }
}
