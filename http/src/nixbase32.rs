//! Nix's base-32 encoding: its own alphabet (no e, o, u, t) and its own bit order
//! (the last character holds the lowest bits), so no general base32 crate fits.

use thiserror::Error;

const ALPHABET: &[u8; 32] = b"0123456789abcdfghijklmnpqrsvwxyz";

/// Value of each ASCII byte in the alphabet, 0xFF when it is not part of it.
const DECODE: [u8; 256] = {
    let mut table = [0xFF; 256];
    let mut i = 0;
    while i < 32 {
        table[ALPHABET[i] as usize] = i as u8;
        i += 1;
    }
    table
};

#[derive(Debug, Error, PartialEq, Eq)]
pub enum Base32Error {
    #[error("nixbase32: length {0} is not the encoding of {1} bytes")]
    Length(usize, usize),
    #[error("nixbase32: invalid character {0:?}")]
    Character(char),
    #[error("nixbase32: non-zero padding bits")]
    Padding,
}

/// Number of characters that encode `bytes` bytes.
pub const fn encoded_len(bytes: usize) -> usize {
    (bytes * 8).div_ceil(5)
}

/// True when every byte of `s` is in the nixbase32 alphabet.
pub fn is_valid_text(s: &[u8]) -> bool {
    s.iter().all(|&c| DECODE[c as usize] != 0xFF)
}

pub fn encode(bytes: &[u8]) -> String {
    let len = encoded_len(bytes.len());
    let mut out = String::with_capacity(len);
    for n in (0..len).rev() {
        let bit = n * 5;
        let (i, j) = (bit / 8, bit % 8);
        let low = u16::from(bytes[i]) >> j;
        let high = bytes.get(i + 1).map_or(0, |&b| u16::from(b) << (8 - j));
        out.push(ALPHABET[usize::from((low | high) & 0x1f)] as char);
    }
    out
}

/// Decodes into exactly `N` bytes.
pub fn decode<const N: usize>(text: &str) -> Result<[u8; N], Base32Error> {
    let text = text.as_bytes();
    if text.len() != encoded_len(N) {
        return Err(Base32Error::Length(text.len(), N));
    }
    let mut out = [0u8; N];
    for (n, &c) in text.iter().rev().enumerate() {
        let digit = DECODE[c as usize];
        if digit == 0xFF {
            return Err(Base32Error::Character(c as char));
        }
        let bit = n * 5;
        let (i, j) = (bit / 8, bit % 8);
        out[i] |= digit << j;
        let carry = u16::from(digit) >> (8 - j);
        if carry != 0 {
            match out.get_mut(i + 1) {
                Some(next) => *next |= carry as u8,
                None => return Err(Base32Error::Padding),
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_of_empty_string_matches_nix() {
        // `nix hash to-base32 sha256:e3b0c442...b855` prints this.
        let digest: [u8; 32] = [
            0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f,
            0xb9, 0x24, 0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b,
            0x78, 0x52, 0xb8, 0x55,
        ];
        let text = "0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73";
        assert_eq!(encode(&digest), text);
        assert_eq!(decode::<32>(text).unwrap(), digest);
    }

    #[test]
    fn round_trips_every_length() {
        for len in 0..40usize {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            let text = encode(&bytes);
            assert_eq!(text.len(), encoded_len(len));
            if len == 20 {
                assert_eq!(decode::<20>(&text).unwrap().to_vec(), bytes);
            }
        }
    }

    #[test]
    fn rejects_bad_text() {
        assert_eq!(decode::<20>("e"), Err(Base32Error::Length(1, 20)));
        let bad = "e".repeat(32);
        assert_eq!(decode::<20>(&bad), Err(Base32Error::Character('e')));
        // 32 chars carry 160 bits exactly; 52 chars carry 260 bits for 256: top bits must be 0.
        let overflow = format!("z{}", "0".repeat(51));
        assert_eq!(decode::<32>(&overflow), Err(Base32Error::Padding));
    }
}
