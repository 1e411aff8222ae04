//! A minimal HTTP/1.1 keep-alive client: GET only, Content-Length framed responses only.

use std::io;
use std::net::SocketAddr;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const READ_BUFFER: usize = 256 * 1024;

/// One keep-alive HTTP/1.1 connection. Only GET, only Content-Length framed responses.
pub(crate) struct HttpConnection {
    stream: BufReader<TcpStream>,
    line: Vec<u8>,
}

struct ResponseHead {
    status: u16,
    content_length: u64,
}

pub(crate) struct TextResponse {
    pub(crate) status: u16,
    pub(crate) body: String,
}

impl HttpConnection {
    pub(crate) async fn connect(addr: SocketAddr) -> io::Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream: BufReader::with_capacity(READ_BUFFER, stream),
            line: Vec::with_capacity(256),
        })
    }

    /// GET `target`, reading and dropping the body; returns the status and body length.
    pub(crate) async fn get_discarding(&mut self, target: &str) -> io::Result<(u16, u64)> {
        let head = self.send_get(target).await?;
        let mut body = (&mut self.stream).take(head.content_length);
        let read = tokio::io::copy_buf(&mut body, &mut tokio::io::sink()).await?;
        expect_full_body(read, head.content_length)?;
        Ok((head.status, read))
    }

    pub(crate) async fn get_text(&mut self, target: &str) -> io::Result<TextResponse> {
        let head = self.send_get(target).await?;
        let mut body = Vec::new();
        let read = (&mut self.stream)
            .take(head.content_length)
            .read_to_end(&mut body)
            .await?;
        expect_full_body(read as u64, head.content_length)?;
        let body = String::from_utf8(body).map_err(|e| invalid(e.to_string()))?;
        Ok(TextResponse {
            status: head.status,
            body,
        })
    }

    async fn send_get(&mut self, target: &str) -> io::Result<ResponseHead> {
        let request = format!("GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
        self.stream.get_mut().write_all(request.as_bytes()).await?;
        let status = parse_status_line(self.read_line().await?)?;
        let mut content_length = None;
        loop {
            let line = self.read_line().await?;
            if line.is_empty() {
                break;
            }
            if let Some(length) = parse_content_length(line)? {
                content_length = Some(length);
            }
        }
        let content_length =
            content_length.ok_or_else(|| invalid("response without Content-Length".into()))?;
        Ok(ResponseHead {
            status,
            content_length,
        })
    }

    /// The next header line without its CRLF.
    async fn read_line(&mut self) -> io::Result<&[u8]> {
        self.line.clear();
        if self.stream.read_until(b'\n', &mut self.line).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let text = self.line.strip_suffix(b"\n").unwrap_or(&self.line);
        Ok(text.strip_suffix(b"\r").unwrap_or(text))
    }
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

fn expect_full_body(read: u64, expected: u64) -> io::Result<()> {
    if read == expected {
        Ok(())
    } else {
        Err(invalid(format!(
            "body ended after {read} of {expected} bytes"
        )))
    }
}

/// `HTTP/1.1 200 OK` -> 200.
fn parse_status_line(line: &[u8]) -> io::Result<u16> {
    let text = std::str::from_utf8(line).map_err(|e| invalid(e.to_string()))?;
    text.strip_prefix("HTTP/1.")
        .and_then(|rest| rest.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| invalid(format!("bad status line {text:?}")))
}

/// `Some(length)` for a Content-Length header; chunked bodies are not supported.
fn parse_content_length(line: &[u8]) -> io::Result<Option<u64>> {
    let text = std::str::from_utf8(line).map_err(|e| invalid(e.to_string()))?;
    let Some((name, value)) = text.split_once(':') else {
        return Err(invalid(format!("bad header line {text:?}")));
    };
    if name.eq_ignore_ascii_case("transfer-encoding") {
        return Err(invalid(format!("unsupported Transfer-Encoding:{value}")));
    }
    if !name.eq_ignore_ascii_case("content-length") {
        return Ok(None);
    }
    let length = value
        .trim()
        .parse()
        .map_err(|_| invalid(format!("bad {text:?}")))?;
    Ok(Some(length))
}
