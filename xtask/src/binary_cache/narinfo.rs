//! The `.narinfo` files of a Nix binary cache, and the ed25519 signatures
//! over them, checked here without Nix so `cache verify` is an independent
//! second opinion.
//!
//! A signature covers the fingerprint
//! `1;<store path>;sha256:<nix32 nar hash>;<nar size>;<sorted reference paths, comma-joined>`
//! and is written `Sig: <key name>:<base64 of 64 bytes>`. Keys are written
//! `<key name>:<base64>`: 32 bytes for a public key, 64 (seed + public) for a
//! secret one.
//!
//! A narinfo comes from an untrusted cache, and only part of it is signed
//! (`URL`, `Compression`, `FileHash` and `FileSize` are not). The parser is
//! therefore strict where Nix 2.8's (`src/libstore/nar-info.cc`) is loose:
//! every line is `Key: value` and ends with a newline (so a narinfo cut
//! short is refused, never read as a shorter one), no field but `Sig`
//! appears twice, every store path is one Nix would accept, and `URL` names
//! a file below the cache root.

use std::borrow::Cow;
use std::collections::BTreeSet;

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine as _;
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::hashing::NarHash;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// The most a narinfo may take. Nix writes a few hundred bytes; a path with
/// thousands of references takes tens of KiB.
pub const MAX_NARINFO_BYTES: usize = 1 << 20;

/// The longest `URL:` accepted (Nix writes `nar/<52 chars>.nar.<ext>`).
const MAX_URL_LEN: usize = 1024;

/// One parsed `.narinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NarInfo {
    pub store_path: String,
    /// Relative to the cache root, e.g. `nar/<filehash>.nar.zst`; checked by
    /// [`check_url`].
    pub url: String,
    /// `none`, `xz`, `zstd`, `bzip2`, ...; `bzip2` when absent or empty, as in Nix.
    pub compression: String,
    pub file_hash: Option<NarHash>,
    pub file_size: Option<u64>,
    pub nar_hash: NarHash,
    pub nar_size: u64,
    /// Base names (`<hash>-<name>`), sorted and without duplicates (Nix keeps
    /// them in a set, and signs them in that order).
    pub references: Vec<String>,
    /// `(key name, signature)`, as written.
    pub sigs: Vec<(String, String)>,
    /// `CA:`, the content address of a content-addressed path.
    pub ca: Option<ContentAddress>,
}

/// A narinfo's `CA:` field (Nix 2.8's `parseContentAddress`): `text:sha256:<hash>`,
/// `fixed:sha256:<hash>` (flat) or `fixed:r:sha256:<hash>` (recursive), with
/// md5, sha1, sha256 or sha512 for `fixed`, the hash in nix32 or hex.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentAddress {
    /// `text`, `fixed` or `fixed:r`: what the hash is of.
    pub method: &'static str,
    pub algorithm: &'static str,
    pub digest: Vec<u8>,
}

impl ContentAddress {
    pub fn parse(text: &str) -> Result<ContentAddress> {
        let (method, rest) = if let Some(rest) = text.strip_prefix("text:") {
            ("text", rest)
        } else if let Some(rest) = text.strip_prefix("fixed:r:") {
            ("fixed:r", rest)
        } else if let Some(rest) = text.strip_prefix("fixed:") {
            ("fixed", rest)
        } else {
            bail!("`CA: {}` is not `text:...` or `fixed:...`", shown(text));
        };
        let (algorithm, encoded) = rest.split_once(':').ok_or_else(|| anyhow!("`CA: {}` has no `<algorithm>:<hash>`", shown(text)))?;
        let (algorithm, len) = match algorithm {
            "md5" => ("md5", 16),
            "sha1" => ("sha1", 20),
            "sha256" => ("sha256", 32),
            "sha512" => ("sha512", 64),
            _ => bail!("`CA: {}` names an unknown hash algorithm", shown(text)),
        };
        if method == "text" && algorithm != "sha256" {
            bail!("`CA: {}`: text content addresses are sha256", shown(text));
        }
        let digest = if encoded.len() == 2 * len { hex::decode(encoded).ok() } else { crate::hashing::nix32::decode(encoded, len).ok() }
            .ok_or_else(|| anyhow!("`CA: {}` holds no {algorithm} hash in nix32 or hex", shown(text)))?;
        Ok(ContentAddress { method, algorithm, digest })
    }

    /// `<algorithm>:<hex>`, as Nix hashes it into store paths.
    fn typed_hex(&self) -> String {
        format!("{}:{}", self.algorithm, hex::encode(&self.digest))
    }
}

/// What a narinfo's `CA:` says about its path, for a client that holds no
/// signature: Nix 2.8 accepts an unsigned path whose content address gives
/// exactly its store path (`ValidPathInfo::isContentAddressed`), and checks
/// the content against the address once unpacked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContentAddressVerdict {
    /// No `CA:` field.
    None,
    /// The address gives this store path, and it is a recursive sha256 of
    /// the NAR itself, equal to NarHash: checking the NAR against NarHash
    /// checks the content against the address.
    Verified,
    /// The address gives this store path, but this tool cannot check the
    /// content against it (flat or text content, or a self-reference).
    Unchecked(String),
    /// The address does not give this store path.
    Mismatch(String),
}

impl NarInfo {
    /// The store path `self.ca` makes for this name and these references
    /// (Nix 2.8's `makeTextPath` / `makeFixedOutputPath`), and whether the
    /// path refers to itself.
    fn content_addressed_path(&self, ca: &ContentAddress) -> Option<String> {
        let (_, base) = split_store_path(&self.store_path).ok()?;
        let name = &base[33..];
        let dir = self.store_dir();
        let self_reference = self.references.iter().any(|r| r == base);
        let others: Vec<String> = self.reference_paths().into_iter().filter(|r| !r.ends_with(&format!("/{base}"))).collect();
        let (kind, hash) = match ca.method {
            "text" => (["text".to_owned()].into_iter().chain(self.reference_paths()).collect::<Vec<_>>().join(":"), ca.typed_hex()),
            "fixed:r" if ca.algorithm == "sha256" => {
                let mut kind = ["source".to_owned()].into_iter().chain(others).collect::<Vec<_>>().join(":");
                if self_reference {
                    kind += ":self";
                }
                (kind, ca.typed_hex())
            }
            _ if !self.references.is_empty() => return None, // Nix asserts there are none
            method => {
                let prefix = if method == "fixed:r" { "r:" } else { "" };
                let inner = Sha256::digest(format!("fixed:out:{prefix}{}:", ca.typed_hex()));
                ("output:out".to_owned(), format!("sha256:{}", hex::encode(inner)))
            }
        };
        let digest = Sha256::digest(format!("{kind}:{hash}:{dir}:{name}"));
        let mut compressed = [0u8; 20];
        for (i, byte) in digest.iter().enumerate() {
            compressed[i % 20] ^= byte;
        }
        Some(format!("{dir}/{}-{name}", crate::hashing::nix32::encode(&compressed)))
    }

    pub fn content_address_verdict(&self) -> ContentAddressVerdict {
        let Some(ca) = &self.ca else { return ContentAddressVerdict::None };
        let written = format!("{}:{}:{}", ca.method, ca.algorithm, crate::hashing::nix32::encode(&ca.digest));
        if self.content_addressed_path(ca).as_deref() != Some(self.store_path.as_str()) {
            return ContentAddressVerdict::Mismatch(format!(
                "it claims the content address {written}, which does not give this store path"
            ));
        }
        let self_reference = self.references.iter().any(|r| self.store_path.ends_with(&format!("/{r}")));
        if ca.method == "fixed:r" && ca.algorithm == "sha256" && !self_reference {
            if ca.digest[..] == self.nar_hash.0[..] {
                ContentAddressVerdict::Verified
            } else {
                ContentAddressVerdict::Mismatch(format!("its content address {written} differs from its NarHash"))
            }
        } else {
            ContentAddressVerdict::Unchecked(format!(
                "it is content-addressed ({written}), but this tool checks only recursive sha256 addresses without \
                 self-references; `--with-nix` lets Nix check it"
            ))
        }
    }
}

impl NarInfo {
    pub fn parse(text: &str) -> Result<NarInfo> {
        if text.len() > MAX_NARINFO_BYTES {
            bail!("it is larger than {} MiB, far more than any narinfo Nix writes", MAX_NARINFO_BYTES >> 20);
        }
        if !text.ends_with('\n') {
            bail!("its last line has no newline: the narinfo is cut short (Nix refuses it too)");
        }
        let mut fields = std::collections::HashMap::new();
        let mut sigs = Vec::new();
        for (number, line) in text.split_terminator('\n').enumerate() {
            let number = number + 1;
            if let Some(c) = line.chars().find(|c| c.is_control()) {
                bail!("line {number} holds the control character {:?}", c);
            }
            let (key, value) = line
                .split_once(':')
                .filter(|(_, rest)| rest.starts_with(' '))
                .map(|(key, rest)| (key, &rest[1..]))
                .ok_or_else(|| anyhow!("line {number} `{}` is not `Key: value`", shown(line)))?;
            if key == "Sig" {
                let (name, sig) =
                    value.split_once(':').ok_or_else(|| anyhow!("signature `{}` is not `<key name>:<base64>`", shown(value)))?;
                sigs.push((name.to_owned(), sig.to_owned()));
            } else if fields.insert(key, value).is_some() {
                bail!("the `{}:` field appears twice (which one would a client believe?)", shown(key));
            }
        }
        let take = |key: &str| fields.get(key).copied().ok_or_else(|| anyhow!("the `{key}:` field is missing"));
        let size = |key: &str, v: &str| {
            v.parse::<u64>()
                .ok()
                .filter(|_| v.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| anyhow!("`{key}: {}` is not a size", shown(v)))
        };
        let hash = |key: &str, v: &str| {
            NarHash::parse_typed(v).map_err(|_| anyhow!("`{key}: {}` is not a sha256 hash as Nix writes it (sha256:<nix32>)", shown(v)))
        };
        let store_path = take("StorePath")?;
        split_store_path(store_path).with_context(|| format!("`StorePath: {}`", shown(store_path)))?;
        let url = take("URL")?;
        check_url(url).with_context(|| format!("`URL: {}` does not name a file under the cache", shown(url)))?;
        let nar_size = size("NarSize", take("NarSize")?)?;
        if nar_size == 0 {
            bail!("`NarSize: 0`: no NAR is empty (Nix refuses it too)");
        }
        let mut references = BTreeSet::new();
        for reference in fields.get("References").map(|r| r.split(' ').filter(|r| !r.is_empty())).into_iter().flatten() {
            check_base_name(reference).with_context(|| format!("`References:` holds `{}`, not a store path", shown(reference)))?;
            references.insert(reference.to_owned());
        }
        if let Some(deriver) = fields.get("Deriver").filter(|d| **d != "unknown-deriver") {
            check_base_name(deriver).with_context(|| format!("`Deriver: {}` is not a store path", shown(deriver)))?;
        }
        let compression = match fields.get("Compression") {
            None | Some(&"") => "bzip2",
            Some(c) => c,
        };
        Ok(NarInfo {
            url: url.to_owned(),
            compression: compression.to_owned(),
            file_hash: fields.get("FileHash").map(|h| hash("FileHash", h)).transpose()?,
            file_size: fields.get("FileSize").map(|s| size("FileSize", s)).transpose()?,
            nar_hash: hash("NarHash", take("NarHash")?)?,
            nar_size,
            references: references.into_iter().collect(),
            sigs,
            ca: fields.get("CA").filter(|c| !c.is_empty()).map(|c| ContentAddress::parse(c)).transpose()?,
            store_path: store_path.to_owned(),
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

/// `(store directory, base name)` of a store path as Nix 2.8 accepts it:
/// `/<dir>/<32 nix32 characters>-<name>`, the name at most 211 characters of
/// letters, digits and `+-._?=`.
pub fn split_store_path(path: &str) -> Result<(&str, &str)> {
    let (dir, base) = path.rsplit_once('/').filter(|(dir, _)| dir.starts_with('/')).ok_or_else(|| anyhow!("not an absolute store path"))?;
    check_base_name(base)?;
    Ok((dir, base))
}

/// A store path's last component, `<32 nix32 characters>-<name>`.
pub fn check_base_name(base: &str) -> Result<()> {
    const NIX32: &str = "0123456789abcdfghijklmnpqrsvwxyz";
    let (hash, name) = base.split_at_checked(32).ok_or_else(|| anyhow!("shorter than a 32-character hash and a name"))?;
    if !hash.chars().all(|c| NIX32.contains(c)) {
        bail!("its hash part `{}` is not 32 nix32 characters ({NIX32})", shown(hash));
    }
    let name = name.strip_prefix('-').ok_or_else(|| anyhow!("no `-` after the 32-character hash"))?;
    if name.is_empty() || name.len() > 211 {
        bail!("its name is empty or longer than 211 characters");
    }
    if let Some(c) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || "+-._?=".contains(*c))) {
        bail!("its name holds `{}`, which Nix refuses in store paths", c.escape_debug());
    }
    Ok(())
}

/// A narinfo's `URL:` must name a file strictly below the cache root:
/// relative, `/`-separated, no empty, `.` or `..` component, and only the
/// characters Nix and the common cache servers use (`nar/<hash>.nar.zst`,
/// `nar/<hash>.nar?hash=<path hash>`), so neither a file system nor an HTTP
/// server can resolve it elsewhere (no `%`-escapes, no `\`, no `#`).
pub fn check_url(url: &str) -> Result<()> {
    if url.is_empty() || url.len() > MAX_URL_LEN {
        bail!("it is empty or longer than {MAX_URL_LEN} characters");
    }
    if let Some(c) = url.chars().find(|c| !(c.is_ascii_alphanumeric() || "/._-+=?&~".contains(*c))) {
        bail!("it holds `{}`; a NAR URL is made of letters, digits and `/._-+=?&~`", c.escape_debug());
    }
    if url.starts_with('/') {
        bail!("it is an absolute path; NAR URLs are relative to the cache root");
    }
    if url.split('/').any(|c| c.is_empty() || c == "." || c == "..") {
        bail!("it has an empty, `.` or `..` component; NAR URLs name a file below the cache root");
    }
    Ok(())
}

/// Untrusted text as it may appear in a message: control characters escaped,
/// at most 120 characters.
pub fn shown(text: &str) -> Cow<'_, str> {
    const MAX: usize = 120;
    if text.len() <= MAX && !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    let mut out: String = text.chars().take(MAX).flat_map(|c| c.escape_debug()).collect();
    if text.chars().count() > MAX {
        out.push_str("...");
    }
    Cow::Owned(out)
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
            .ok_or_else(|| anyhow!("public key `{}` is not `<key name>:<base64>` (e.g. `pjrtpkgs-1:AbC...=`)", shown(s)))?;
        let decoded = B64.decode(b64).ok();
        if decoded.as_ref().is_some_and(|b| b.len() == 64) {
            // Never echo it: this is a secret key, given where a public one goes.
            bail!(
                "`{}` is a secret key (64 bytes), not a public one: give its public half (NAME.public from `cache keygen`, \
                 or `nix key convert-secret-to-public`), and keep the secret out of command lines",
                shown(name)
            );
        }
        let bytes: [u8; 32] = decoded
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| anyhow!("public key `{}`: the part after `:` is not 32 base64-encoded bytes", shown(name)))?;
        let key = VerifyingKey::from_bytes(&bytes).with_context(|| format!("public key `{}` is not a valid ed25519 point", shown(name)))?;
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
    let name = shown(name);
    let bytes = B64.decode(b64).map_err(|_| anyhow!("the secret key `{name}` is not base64"))?;
    if bytes.len() == 32 {
        bail!("`{name}` is a public key (32 bytes), not a secret one: pass NAME.secret, made with NAME.public by `cache keygen`");
    }
    let seed: [u8; 32] = bytes
        .get(..32)
        .filter(|_| bytes.len() == 64)
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| anyhow!("the secret key `{name}` is not 64 bytes (seed + public key)"))?;
    let public = ed25519_dalek::SigningKey::from_bytes(&seed).verifying_key();
    if public.as_bytes() != &bytes[32..] {
        bail!("the secret key `{name}` is inconsistent: its public half does not belong to its seed");
    }
    Ok(PublicKey { name: name.into_owned(), key: public })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Cases per property: `PROPTEST_CASES` for a longer run, else `default`.
    fn cases(default: u32) -> u32 {
        std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
    }

    const HASH: &str = "sha256:1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s";

    fn narinfo(references: &str) -> String {
        format!(
            "StorePath: /nix/store/0c5ajvgvsmldw6r7al1cd0iiwd916swc-demo\nURL: nar/x.nar.zst\nCompression: zstd\n\
             FileHash: {HASH}\nFileSize: 10\nNarHash: {HASH}\nNarSize: 20\nReferences: {references}\n\
             Deriver: 1xqzkf950bkxg48zjxrlnk8dbm8fkhi0-demo.drv\nSig: k-1:AAAA\n"
        )
    }

    #[test]
    fn garbage_is_refused_not_panicking() {
        assert!(NarInfo::parse("StorePath: /nix/store/x\nURL: x\nNarHash: md5:abc\nNarSize: 1\n").is_err());
        assert!(NarInfo::parse("StorePath: relative\nURL: x\nNarHash: sha256:x\nNarSize: 1\n").is_err());
        assert!("nocolon".parse::<PublicKey>().is_err());
        assert!("k:AAAA".parse::<PublicKey>().is_err());
        assert!(public_of_secret("k:AAAA").is_err());
    }

    #[test]
    fn what_nix_writes_parses() {
        let info = NarInfo::parse(&narinfo("1xqzkf950bkxg48zjxrlnk8dbm8fkhi0-b 0c5ajvgvsmldw6r7al1cd0iiwd916swc-a")).unwrap();
        assert_eq!(info.references, ["0c5ajvgvsmldw6r7al1cd0iiwd916swc-a", "1xqzkf950bkxg48zjxrlnk8dbm8fkhi0-b"]);
        assert_eq!(info.sigs, [("k-1".to_owned(), "AAAA".to_owned())]);
        assert!(info
            .fingerprint()
            .ends_with(";20;/nix/store/0c5ajvgvsmldw6r7al1cd0iiwd916swc-a,/nix/store/1xqzkf950bkxg48zjxrlnk8dbm8fkhi0-b"));
        // Nix writes `References: ` with nothing after it for a path without any.
        assert!(NarInfo::parse(&narinfo("")).unwrap().references.is_empty());
    }

    /// `builtins.toFile "hello.txt" "hello\n"`, as Nix 2.8 registered it.
    #[test]
    fn text_content_addresses_give_the_path_nix_gives() {
        let text = "StorePath: /nix/store/qa1w9gdfrba6jl2r57mb3c43863gqywp-hello.txt\nURL: nar/x.nar\nCompression: none\n\
                    NarHash: sha256-HDfQGvQL4ugGkd48w99EN3ppmvuxfGjwgJZLL9Bx/BM=\nNarSize: 120\nReferences: \n\
                    CA: text:sha256:00xyyr3fi8l6hb839bv3f7yb86yjv7xi1cgh1xnhipym4asvb4aq\n";
        let info = NarInfo::parse(text).unwrap();
        assert!(matches!(info.content_address_verdict(), ContentAddressVerdict::Unchecked(_)), "{:?}", info.content_address_verdict());
        let other = NarInfo::parse(&text.replace("hello.txt", "hello2.txt")).unwrap();
        assert!(matches!(other.content_address_verdict(), ContentAddressVerdict::Mismatch(_)));
        // sha256 of "hello\n", as the address holds it.
        assert_eq!(hex::encode(&info.ca.unwrap().digest), "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03");
    }

    #[test]
    fn each_fault_is_named() {
        let good = narinfo("");
        let cases: &[(String, &str)] = &[
            (narinfo("abc"), "not a store path"),
            (narinfo("0c5ajvgvsmldw6r7al1cd0iiwd916swc-../x"), "not a store path"),
            (narinfo("eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee-x"), "not a store path"),
            (good.replace("URL: nar/x.nar.zst", "URL: nar/../../../../etc/passwd"), "does not name a file under the cache"),
            (good.replace("URL: nar/x.nar.zst", "URL: /dev/zero"), "does not name a file under the cache"),
            (good.replace("URL: nar/x.nar.zst", "URL: nar/%2e%2e/x"), "does not name a file under the cache"),
            (good.replace("NarSize: 20", "NarSize: 0"), "NarSize: 0"),
            (good.replace("NarSize: 20", "NarSize: +20"), "not a size"),
            (good.clone() + "NarSize: 21\n", "appears twice"),
            (good[..good.len() - 1].to_owned(), "cut short"),
            (good.replace("Compression: zstd\n", "Compression: zstd\n\n"), "not `Key: value`"),
            (good.replace("Compression: zstd", "Compression: zstd\r"), "control character"),
            ("x".repeat(MAX_NARINFO_BYTES + 1), "larger than 1 MiB"),
        ];
        for (text, expected) in cases {
            let err = format!("{:#}", NarInfo::parse(text).unwrap_err());
            assert!(err.contains(expected), "{err:?} should say {expected:?}");
        }
    }

    /// A narinfo's value parts: store-path names, URLs and sizes, half of
    /// them valid, half drawn from what an attacker would try.
    fn base_name() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => "[0-9a-df-np-sv-z]{32}-[a-zA-Z0-9+._?=-]{1,20}",
            1 => ("[0-9a-z]{31,33}", "-?", "[a-zA-Z0-9+._?=/ \\x1b-]{0,12}").prop_map(|(h, d, n)| format!("{h}{d}{n}")),
        ]
    }

    fn narinfo_text() -> impl Strategy<Value = String> {
        (
            base_name(),
            prop_oneof![3 => "nar/[0-9a-z]{52}\\.nar(\\.zst|\\.xz)?", 1 => "[a-z0-9./%?&=~\\\\-]{0,20}"],
            prop::collection::vec(base_name(), 0..4),
            prop_oneof![3 => "[1-9][0-9]{0,6}", 1 => "[0-9+-]{0,21}"],
            prop::option::of("(none|xz|zstd|)"),
            prop::collection::vec(
                prop_oneof![
                    3 => "(System|X-[A-Za-z]{1,8}): [ -~]{0,10}",
                    2 => "CA: (text|fixed|fixed:r|x):(sha256|sha1|md5|sha512|x):[0-9a-z]{0,110}",
                    1 => "[ -~]{0,12}",
                ],
                0..3,
            ),
        )
            .prop_map(|(path, url, refs, nar_size, compression, extra)| {
                let mut text = format!("StorePath: /nix/store/{path}\nURL: {url}\nNarHash: {HASH}\nNarSize: {nar_size}\n");
                text += &format!("References: {}\n", refs.join(" "));
                if let Some(c) = compression {
                    text += &format!("Compression: {c}\n");
                }
                for line in extra {
                    text += &line;
                    text.push('\n');
                }
                text
            })
    }

    /// What the parser accepts is safe to act on: the store path and every
    /// reference are store paths Nix accepts, the URL stays under the cache.
    /// Run by hand to count acceptances: a property that never sees an
    /// accepted narinfo would prove nothing.
    #[test]
    fn accepted_narinfos_are_safe_to_act_on() {
        let total = cases(4096);
        let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig { cases: total, ..ProptestConfig::default() });
        let accepted = std::cell::Cell::new(0u32);
        runner
            .run(&narinfo_text(), |text| {
                if let Ok(info) = NarInfo::parse(&text) {
                    accepted.set(accepted.get() + 1);
                    prop_assert!(split_store_path(&info.store_path).is_ok());
                    for r in info.reference_paths() {
                        prop_assert!(split_store_path(&r).is_ok(), "{r}");
                        prop_assert!(crate::binary_cache::narinfo_name(&r).is_ok());
                    }
                    prop_assert!(!info.url.starts_with('/'));
                    let normal = |c: std::path::Component| matches!(c, std::path::Component::Normal(_));
                    prop_assert!(std::path::Path::new(&info.url).components().all(normal));
                    prop_assert!(!info.url.contains('%') && !info.url.contains('\\'));
                    prop_assert!(info.nar_size > 0);
                    prop_assert!(!info.compression.is_empty());
                    let _ = info.content_address_verdict();
                }
                Ok(())
            })
            .unwrap();
        eprintln!("{} of {total} generated narinfos accepted", accepted.get());
        assert!(accepted.get() > total / 8, "only {} of {total} generated narinfos were accepted", accepted.get());
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: cases(4096), ..ProptestConfig::default() })]

        /// Arbitrary text never panics the parser.
        #[test]
        fn arbitrary_text_never_panics(text in "(?s).{0,400}") {
            let _ = NarInfo::parse(&text);
        }

        /// A narinfo cut anywhere is refused, or (cut at a line end) reads as
        /// a narinfo with fewer fields, never with a made-up value.
        #[test]
        fn a_cut_narinfo_never_invents_a_value(refs in prop::collection::vec("[0-9a-df-np-sv-z]{32}-[a-z]{1,30}", 0..40), cut in 0usize..4000) {
            let text = narinfo(&refs.join(" "));
            let whole = NarInfo::parse(&text).unwrap();
            let cut = cut.min(text.len());
            match NarInfo::parse(&text[..cut]) {
                Err(_) => {}
                Ok(part) => {
                    prop_assert!(text[..cut].ends_with('\n'));
                    prop_assert!(part.references.iter().all(|r| whole.references.contains(r)));
                    prop_assert_eq!(part.store_path, whole.store_path);
                    prop_assert_eq!(part.url, whole.url);
                    prop_assert_eq!(part.nar_size, whole.nar_size);
                }
            }
        }

        /// The URL check and the file system agree: whatever passes resolves
        /// below the root, lexically.
        #[test]
        fn urls_that_pass_stay_below_the_root(url in "[./a-z%?&=~-]{0,16}") {
            if check_url(&url).is_ok() {
                let mut depth = 0i32;
                for c in std::path::Path::new(&url).components() {
                    match c {
                        std::path::Component::Normal(_) => depth += 1,
                        _ => prop_assert!(false, "{url} has {c:?}"),
                    }
                }
                prop_assert!(depth >= 1);
            }
        }

        /// Messages never carry a control character from their input.
        #[test]
        fn shown_text_has_no_control_characters(text in "(?s).{0,300}") {
            prop_assert!(!shown(&text).chars().any(char::is_control));
        }
    }
}
