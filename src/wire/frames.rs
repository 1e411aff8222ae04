//! Length-prefixed frames on a libp2p stream (see [`super`] for their contents).

use std::io;

use futures_util::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::{frame_header, frame_len};

fn invalid(e: impl ToString) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

/// The next frame, or `None` when the peer closed the stream between frames.
pub async fn read_frame<R: AsyncRead + Unpin>(stream: &mut R) -> io::Result<Option<Vec<u8>>> {
    let mut header = [0u8; 4];
    let mut filled = 0;
    while filled < header.len() {
        match stream.read(&mut header[filled..]).await? {
            0 if filled == 0 => return Ok(None),
            0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            n => filled += n,
        }
    }
    let len = frame_len(header).map_err(invalid)?;
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).await?;
    Ok(Some(body))
}

/// The next frame; the stream ending first is an error.
pub async fn expect_frame<R: AsyncRead + Unpin>(stream: &mut R) -> io::Result<Vec<u8>> {
    read_frame(stream)
        .await?
        .ok_or_else(|| io::ErrorKind::UnexpectedEof.into())
}

pub async fn write_frame<W: AsyncWrite + Unpin>(stream: &mut W, body: &[u8]) -> io::Result<()> {
    let header = frame_header(body.len()).map_err(invalid)?;
    // One write, so that a small frame travels in one multiplexer frame.
    let mut frame = Vec::with_capacity(header.len() + body.len());
    frame.extend_from_slice(&header);
    frame.extend_from_slice(body);
    stream.write_all(&frame).await?;
    stream.flush().await
}
