//! The slice of the protobuf wire format that dag-pb, UnixFS and Bitswap use: varints and
//! length-delimited fields. Hand-written because the messages are few and small, and a decoder
//! of peers' bytes must bound everything it reads.

use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum WireError {
    #[error("protobuf: truncated input")]
    Truncated,
    #[error("protobuf: varint longer than 10 bytes")]
    Varint,
    #[error("protobuf: unsupported wire type {0}")]
    WireType(u64),
    #[error("protobuf: field {field} has wire type {found}, expected {expected}")]
    FieldType {
        field: u64,
        found: u64,
        expected: u64,
    },
}

pub const VARINT: u64 = 0;
pub const LEN: u64 = 2;

pub fn write_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

pub fn write_bytes(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    write_bytes_header(out, field, bytes.len());
    out.extend_from_slice(bytes);
}

/// The tag and length of a bytes field whose `len` bytes the caller writes next.
pub fn write_bytes_header(out: &mut Vec<u8>, field: u64, len: usize) {
    write_varint(out, (field << 3) | LEN);
    write_varint(out, len as u64);
}

pub fn write_uint(out: &mut Vec<u8>, field: u64, value: u64) {
    write_varint(out, (field << 3) | VARINT);
    write_varint(out, value);
}

/// Reads an unsigned varint from the front of `input`, returning it and the bytes it took.
pub fn read_varint(input: &[u8]) -> Result<(u64, usize), WireError> {
    let mut value = 0u64;
    for (i, &byte) in input.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok((value, i + 1));
        }
    }
    Err(if input.len() < 10 {
        WireError::Truncated
    } else {
        WireError::Varint
    })
}

/// One field of a message.
#[derive(Debug, PartialEq, Eq)]
pub enum Value<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
}

/// Iterates over the fields of one message, in order.
pub struct Fields<'a> {
    rest: &'a [u8],
}

impl<'a> Fields<'a> {
    pub fn new(message: &'a [u8]) -> Self {
        Self { rest: message }
    }

    fn varint(&mut self) -> Result<u64, WireError> {
        let (value, used) = read_varint(self.rest)?;
        self.rest = &self.rest[used..];
        Ok(value)
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u64, Value<'a>), WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let field = (|| {
            let key = self.varint()?;
            let (number, wire_type) = (key >> 3, key & 7);
            let value = match wire_type {
                VARINT => Value::Varint(self.varint()?),
                LEN => {
                    let len = self.varint()?;
                    let len = usize::try_from(len).map_err(|_| WireError::Truncated)?;
                    if len > self.rest.len() {
                        return Err(WireError::Truncated);
                    }
                    let (bytes, rest) = self.rest.split_at(len);
                    self.rest = rest;
                    Value::Bytes(bytes)
                }
                other => return Err(WireError::WireType(other)),
            };
            Ok((number, value))
        })();
        if field.is_err() {
            // Stop after the first error: the rest cannot be framed.
            self.rest = &[];
        }
        Some(field)
    }
}

impl<'a> Value<'a> {
    pub fn bytes(self, field: u64) -> Result<&'a [u8], WireError> {
        match self {
            Value::Bytes(b) => Ok(b),
            Value::Varint(_) => Err(WireError::FieldType {
                field,
                found: VARINT,
                expected: LEN,
            }),
        }
    }

    pub fn varint(self, field: u64) -> Result<u64, WireError> {
        match self {
            Value::Varint(v) => Ok(v),
            Value::Bytes(_) => Err(WireError::FieldType {
                field,
                found: LEN,
                expected: VARINT,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_fields() {
        let mut out = Vec::new();
        write_uint(&mut out, 1, 300);
        write_bytes(&mut out, 2, b"abc");
        write_uint(&mut out, 3, u64::MAX);
        let fields: Vec<_> = Fields::new(&out).collect::<Result<_, _>>().unwrap();
        assert_eq!(
            fields,
            vec![
                (1, Value::Varint(300)),
                (2, Value::Bytes(b"abc")),
                (3, Value::Varint(u64::MAX))
            ]
        );
    }

    #[test]
    fn rejects_malformed_input() {
        assert_eq!(read_varint(&[0x80]), Err(WireError::Truncated));
        assert_eq!(read_varint(&[0xff; 11]), Err(WireError::Varint));
        let truncated = [0x12, 0x05, b'a'];
        assert_eq!(
            Fields::new(&truncated).next(),
            Some(Err(WireError::Truncated))
        );
        let fixed64 = [0x09, 0, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            Fields::new(&fixed64).next(),
            Some(Err(WireError::WireType(1)))
        );
        let mut after_error = Fields::new(&truncated);
        after_error.next();
        assert_eq!(after_error.next(), None);
    }
}
