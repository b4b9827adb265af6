//! Nix-exact SHA-256 NAR hashes of a path, of an unpacked archive and of a
//! git commit's tree, without Nix (the `hash` verb prints them; the cache,
//! release, pins and upgrade code compute them here).
//!
//! [`nar`] holds the NAR serialiser every verb shares; [`unpack`] models the
//! tree Nix's archive extraction produces; [`tarball`] and [`git`] feed it.

pub mod git;
pub mod nar;
pub mod nix32;
pub mod tarball;
pub mod unpack;

use std::fmt;
use std::io::{self, Read, Write};

use anyhow::{bail, Context, Result};
use base64::Engine;
use sha2::{Digest, Sha256};

/// A SHA-256 NAR hash (what Nix calls the `narHash` / fixed-output
/// recursive hash of a path).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct NarHash(pub [u8; 32]);

impl NarHash {
    /// `sha256-<base64>`, the form `nix hash path` prints and `hash =` takes.
    pub fn to_sri(&self) -> String {
        format!("sha256-{}", base64::engine::general_purpose::STANDARD.encode(self.0))
    }

    /// Nix's base-32 (`nix hash path --base32`, `nix-prefetch-url`).
    pub fn to_nix32(&self) -> String {
        nix32::encode(&self.0)
    }

    /// Lower-case hexadecimal (`nix hash path --base16`).
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses `sha256-<base64>`.
    pub fn from_sri(s: &str) -> Result<NarHash> {
        let Some(b64) = s.strip_prefix("sha256-") else {
            bail!("`{s}` is not an SRI sha256 hash (expected `sha256-` followed by base64)");
        };
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .with_context(|| format!("`{s}` is not an SRI sha256 hash: invalid base64"))?;
        let bytes: [u8; 32] =
            bytes.try_into().map_err(|b: Vec<u8>| anyhow::anyhow!("`{s}` holds {} bytes, a sha256 hash has 32", b.len()))?;
        Ok(NarHash(bytes))
    }

    /// Parses Nix's base-32 form (52 characters).
    pub fn from_nix32(s: &str) -> Result<NarHash> {
        let bytes = nix32::decode(s, 32).context("not a sha256 hash")?;
        Ok(NarHash(bytes.try_into().expect("decoded 32 bytes")))
    }

    /// Parses 64 hexadecimal digits.
    pub fn from_hex(s: &str) -> Result<NarHash> {
        let bytes: [u8; 32] = hex::decode(s)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| anyhow::anyhow!("`{s}` is not a hexadecimal sha256 hash (expected 64 hex digits)"))?;
        Ok(NarHash(bytes))
    }

    /// Any of the forms Nix prints for sha256: SRI, nix32 or hex.
    pub fn parse(s: &str) -> Result<NarHash> {
        if s.starts_with("sha256-") {
            Self::from_sri(s)
        } else if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
            Self::from_hex(s)
        } else {
            Self::from_nix32(s)
        }
    }

    /// A sha256 as Nix writes it with its type: `sha256:<nix32>`,
    /// `sha256:<hex>` (narinfos, old Nix's messages) or SRI `sha256-<base64>`.
    pub fn parse_typed(s: &str) -> Result<NarHash> {
        let parsed = match s.strip_prefix("sha256:") {
            Some(digest) if digest.len() == nix32::encoded_len(32) => Self::from_nix32(digest),
            Some(digest) if digest.len() == 64 => Self::from_hex(digest),
            Some(_) => Err(anyhow::anyhow!("after `sha256:` come 52 nix32 characters or 64 hex digits")),
            None => Self::from_sri(s),
        };
        parsed.with_context(|| format!("`{s}` is not a sha256 hash in a form Nix writes (sha256:<nix32>, sha256:<hex>, sha256-<base64>)"))
    }
}

impl fmt::Display for NarHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_sri())
    }
}

impl std::str::FromStr for NarHash {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

/// Passes bytes through (as a [`Read`] or a [`Write`]) while SHA-256-hashing
/// and counting them; over [`io::sink`] it is a plain hasher.
#[derive(Default)]
pub struct Hashing<T> {
    inner: T,
    hasher: Sha256,
    size: u64,
}

impl<T> Hashing<T> {
    pub fn new(inner: T) -> Self {
        Hashing { inner, hasher: Sha256::new(), size: 0 }
    }

    /// The SHA-256 of the bytes passed through, and how many there were.
    pub fn finish(self) -> (NarHash, u64) {
        (NarHash(self.hasher.finalize().into()), self.size)
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings_round_trip() {
        let mut bytes = [0u8; 32];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(37).wrapping_add(11);
        }
        let hash = NarHash(bytes);
        assert_eq!(NarHash::from_sri(&hash.to_sri()).unwrap(), hash);
        assert_eq!(NarHash::from_nix32(&hash.to_nix32()).unwrap(), hash);
        assert_eq!(NarHash::parse(&hash.to_hex()).unwrap(), hash);
        assert_eq!(hash.to_nix32().len(), 52);
    }

    #[test]
    fn bad_hashes_are_errors() {
        assert!(NarHash::from_sri("sha256-abc").is_err());
        assert!(NarHash::from_sri("sha512-AAAA").is_err());
        assert!(NarHash::from_nix32("e").is_err());
        assert!(NarHash::parse("zzzz").is_err());
    }
}
