//! Nix's base-32 ("nix32"): the encoding of `nix hash path --base32`,
//! `nix-prefetch-url`, store path hashes and `.narinfo` files. Bits are
//! taken in 5-bit groups from the last byte first, in an alphabet without
//! e, o, u and t.

use anyhow::{bail, Result};

const ALPHABET: &[u8; 32] = b"0123456789abcdfghijklmnpqrsvwxyz";

/// How many characters `len` bytes encode to.
pub const fn encoded_len(len: usize) -> usize {
    (len * 8).div_ceil(5)
}

pub fn encode(bytes: &[u8]) -> String {
    (0..encoded_len(bytes.len()))
        .rev()
        .map(|n| {
            let bit = n * 5;
            let (i, j) = (bit / 8, bit % 8);
            let high = if i + 1 < bytes.len() { u16::from(bytes[i + 1]) << 8 } else { 0 };
            let word = (u16::from(bytes[i]) | high) >> j;
            ALPHABET[usize::from(word & 0x1f)] as char
        })
        .collect()
}

/// Inverse of [`encode`] for `len` bytes: an error for a wrong length, a
/// character outside the alphabet, or bits that do not fit `len` bytes.
pub fn decode(s: &str, len: usize) -> Result<Vec<u8>> {
    if s.len() != encoded_len(len) {
        bail!("`{s}` is not nix32 of {len} bytes (expected {} characters, got {})", encoded_len(len), s.len());
    }
    let mut out = vec![0u8; len];
    for (n, c) in s.bytes().rev().enumerate() {
        let Some(digit) = ALPHABET.iter().position(|&a| a == c) else {
            bail!("`{s}` is not nix32: `{}` is not in Nix's base-32 alphabet", c.escape_ascii());
        };
        let digit = digit as u16;
        let bit = n * 5;
        let (i, j) = (bit / 8, bit % 8);
        out[i] |= (digit << j) as u8;
        let carry = digit >> (8 - j);
        if i + 1 < len {
            out[i + 1] |= carry as u8;
        } else if carry != 0 {
            bail!("`{s}` is not nix32 of {len} bytes: it overflows {} bits", len * 8);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn round_trips(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let text = encode(&bytes);
            prop_assert_eq!(text.len(), encoded_len(bytes.len()));
            prop_assert_eq!(decode(&text, bytes.len()).unwrap(), bytes);
        }
    }

    #[test]
    fn zero_bytes_are_zeros() {
        assert_eq!(decode(&"0".repeat(52), 32).unwrap(), vec![0u8; 32]);
        assert_eq!(encode(&[0u8; 20]), "0".repeat(32));
    }

    #[test]
    fn garbage_is_refused_not_panicking() {
        assert!(decode("e", 1).is_err());
        assert!(decode("00", 1).is_ok());
        assert!(decode("0e", 1).is_err());
        // 'z' (31) in the top group sets bits above the 8 of one byte.
        assert!(decode("z0", 1).is_err());
        assert!(decode(&"0".repeat(51), 32).is_err());
        assert!(decode("\u{e9}", 1).is_err());
    }
}
