//! Length-prefixed Bitswap messages on a libp2p stream.

use std::io;

use futures_util::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::{Message, MAX_MESSAGE_SIZE};

fn invalid(e: impl ToString) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

/// The body of the next message, still to be decoded, or `None` when the peer closed the stream
/// between messages.
pub async fn read_body<R: AsyncRead + Unpin>(stream: &mut R) -> io::Result<Option<Vec<u8>>> {
    let mut len = 0u64;
    let mut ended = false;
    for i in 0..10 {
        let mut byte = [0u8];
        if stream.read(&mut byte).await? == 0 {
            return if i == 0 {
                Ok(None)
            } else {
                Err(io::ErrorKind::UnexpectedEof.into())
            };
        }
        len |= u64::from(byte[0] & 0x7f) << (7 * i);
        if byte[0] & 0x80 == 0 {
            ended = true;
            break;
        }
    }
    if !ended {
        return Err(invalid("message length prefix longer than 10 bytes"));
    }
    let len = usize::try_from(len).unwrap_or(usize::MAX);
    if len > MAX_MESSAGE_SIZE {
        return Err(invalid(format!(
            "message of {len} bytes exceeds {MAX_MESSAGE_SIZE}"
        )));
    }
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).await?;
    Ok(Some(body))
}

pub async fn write_message<W: AsyncWrite + Unpin>(
    stream: &mut W,
    message: &Message,
) -> io::Result<()> {
    stream.write_all(message.encode_delimited().bytes()).await?;
    stream.flush().await
}

#[cfg(test)]
mod tests {
    use futures_util::io::Cursor;

    use super::*;

    #[tokio::test]
    async fn a_body_is_read_behind_its_length() {
        let mut stream = Cursor::new(vec![3, b'a', b'b', b'c']);
        let body = read_body(&mut stream).await.unwrap();
        assert_eq!(body.as_deref(), Some(&b"abc"[..]));
        assert!(read_body(&mut stream).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_length_that_never_ends_is_refused() {
        let mut stream = Cursor::new(vec![0x80; 11]);
        let error = read_body(&mut stream).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
    }
}
