//! The `.narinfo` files of a Nix binary cache, and the ed25519 signatures
//! over them, checked here without Nix so `cache verify` is an independent
//! second opinion.
//!
//! A signature covers the fingerprint
//! `1;<store path>;sha256:<nix32 nar hash>;<nar size>;<full reference paths, comma-joined>`
//! and is written `Sig: <key name>:<base64 of 64 bytes>`. Keys are written
//! `<key name>:<base64>`: 32 bytes for a public key, 64 (seed + public) for a
//! secret one.

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine as _;
use ed25519_dalek::{Signature, Verifier, VerifyingKey};

use crate::hash::NarHash;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// One parsed `.narinfo`.
#[derive(Debug, Clone)]
pub struct NarInfo {
    pub store_path: String,
    /// Relative to the cache root, e.g. `nar/<filehash>.nar.zst`.
    pub url: String,
    /// `none`, `xz`, `zstd`, `bzip2`, ...; Nix assumes bzip2 when absent.
    pub compression: String,
    pub file_hash: Option<NarHash>,
    pub file_size: Option<u64>,
    pub nar_hash: NarHash,
    pub nar_size: u64,
    /// Base names (`<hash>-<name>`), as the narinfo lists them.
    pub references: Vec<String>,
    /// `(key name, signature)`, as written.
    pub sigs: Vec<(String, String)>,
}

impl NarInfo {
    pub fn parse(text: &str) -> Result<NarInfo> {
        let mut fields = std::collections::HashMap::new();
        let mut sigs = Vec::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let (key, value) =
                line.split_once(": ").or_else(|| line.split_once(':')).ok_or_else(|| anyhow!("line `{line}` is not `Key: value`"))?;
            if key == "Sig" {
                let (name, sig) = value.split_once(':').ok_or_else(|| anyhow!("signature `{value}` is not `<key name>:<base64>`"))?;
                sigs.push((name.to_owned(), sig.to_owned()));
            } else {
                fields.insert(key.to_owned(), value.to_owned());
            }
        }
        let take = |key: &str| fields.get(key).cloned().ok_or_else(|| anyhow!("the `{key}:` field is missing"));
        let size = |key: &str, v: &str| v.parse::<u64>().map_err(|_| anyhow!("`{key}: {v}` is not a size"));
        let store_path = take("StorePath")?;
        if !store_path.starts_with('/') {
            bail!("`StorePath: {store_path}` is not an absolute store path");
        }
        let nar_size = take("NarSize")?;
        Ok(NarInfo {
            url: take("URL")?,
            compression: fields.get("Compression").cloned().unwrap_or_else(|| "bzip2".to_owned()),
            file_hash: fields.get("FileHash").map(|h| NarHash::parse_typed(h)).transpose()?,
            file_size: fields.get("FileSize").map(|s| size("FileSize", s)).transpose()?,
            nar_hash: NarHash::parse_typed(&take("NarHash")?)?,
            nar_size: size("NarSize", &nar_size)?,
            references: fields.get("References").map(|r| r.split_whitespace().map(str::to_owned).collect()).unwrap_or_default(),
            sigs,
            store_path,
        })
    }

    /// The store directory the path lives in (`/nix/store`).
    pub fn store_dir(&self) -> &str {
        self.store_path.rsplit_once('/').map_or("", |(dir, _)| dir)
    }

    pub fn reference_paths(&self) -> Vec<String> {
        self.references.iter().map(|r| format!("{}/{r}", self.store_dir())).collect()
    }

    /// What the signatures sign.
    pub fn fingerprint(&self) -> String {
        format!("1;{};sha256:{};{};{}", self.store_path, self.nar_hash.to_nix32(), self.nar_size, self.reference_paths().join(","))
    }

    /// Checks every signature against the trusted keys.
    pub fn check_signatures(&self, trusted: &[PublicKey]) -> SignatureVerdict {
        let fingerprint = self.fingerprint();
        let mut verdict = SignatureVerdict::default();
        for (name, sig) in &self.sigs {
            let Some(key) = trusted.iter().find(|k| &k.name == name) else {
                verdict.untrusted.push(name.clone());
                continue;
            };
            let valid = B64
                .decode(sig)
                .ok()
                .and_then(|b| Signature::from_slice(&b).ok())
                .is_some_and(|s| key.key.verify(fingerprint.as_bytes(), &s).is_ok());
            if valid {
                verdict.valid.push(name.clone())
            } else {
                verdict.invalid.push(name.clone())
            }
        }
        verdict
    }
}

/// Signature key names, sorted by what checking them found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SignatureVerdict {
    /// Trusted key, signature checks out.
    pub valid: Vec<String>,
    /// Trusted key name, but the signature does not match the fingerprint.
    pub invalid: Vec<String>,
    /// Signed by keys nobody said to trust.
    pub untrusted: Vec<String>,
}

/// A public signing key, `name:base64(32 bytes)`.
#[derive(Debug, Clone)]
pub struct PublicKey {
    pub name: String,
    pub key: VerifyingKey,
}

impl std::str::FromStr for PublicKey {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<PublicKey> {
        let s = s.trim();
        let (name, b64) = s
            .split_once(':')
            .filter(|(n, _)| !n.is_empty())
            .ok_or_else(|| anyhow!("public key `{s}` is not `<key name>:<base64>` (e.g. `pjrtpkgs-1:AbC...=`)"))?;
        let bytes: [u8; 32] = B64
            .decode(b64)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| anyhow!("public key `{name}`: the part after `:` is not 32 base64-encoded bytes"))?;
        let key = VerifyingKey::from_bytes(&bytes).with_context(|| format!("public key `{name}` is not a valid ed25519 point"))?;
        Ok(PublicKey { name: name.to_owned(), key })
    }
}

/// `name:base64`, as [`FromStr`](std::str::FromStr) reads it.
impl std::fmt::Display for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.name, B64.encode(self.key.as_bytes()))
    }
}

/// The public half of a Nix secret key (`name:base64(seed ‖ public)`),
/// derived from the seed so a truncated or mismatched file is caught.
pub fn public_of_secret(secret: &str) -> Result<PublicKey> {
    let (name, b64) = secret.trim().split_once(':').ok_or_else(|| anyhow!("the secret key is not `<key name>:<base64>`"))?;
    let bytes = B64.decode(b64).map_err(|_| anyhow!("the secret key `{name}` is not base64"))?;
    let seed: [u8; 32] = bytes
        .get(..32)
        .filter(|_| bytes.len() == 64)
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| anyhow!("the secret key `{name}` is not 64 bytes (seed + public key)"))?;
    let public = ed25519_dalek::SigningKey::from_bytes(&seed).verifying_key();
    if public.as_bytes() != &bytes[32..] {
        bail!("the secret key `{name}` is inconsistent: its public half does not belong to its seed");
    }
    Ok(PublicKey { name: name.to_owned(), key: public })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_refused_not_panicking() {
        assert!(NarInfo::parse("StorePath: /nix/store/x\nURL: x\nNarHash: md5:abc\nNarSize: 1").is_err());
        assert!(NarInfo::parse("StorePath: relative\nURL: x\nNarHash: sha256:x\nNarSize: 1").is_err());
        assert!("nocolon".parse::<PublicKey>().is_err());
        assert!("k:AAAA".parse::<PublicKey>().is_err());
        assert!(public_of_secret("k:AAAA").is_err());
    }
}
