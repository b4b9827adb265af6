//! `cargo xtask hash`: Nix-exact SHA-256 NAR hashes of a path, of an
//! unpacked archive and of a git commit's tree, without Nix.
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
use std::path::PathBuf;
use std::process::ExitCode;

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

const AFTER_HELP: &str = "\
Examples:
  cargo xtask hash path ./vendor/xla               # sha256-... as `nix hash path` prints it
  cargo xtask hash path --base32 ./result          # as `nix hash path --base32`
  cargo xtask hash tarball https://github.com/openxla/xla/archive/<commit>.tar.gz
  cargo xtask hash git 964a0a45a0c3090cd484a3c51e8f9d05ed10b968 --repo ~/src/xla
  cargo xtask hash git main --json                 # uses XLA_REPO or the cached clone

Exit status: 0 the hash was printed, 1 it could not be computed (the error says why).";

/// How to print a hash.
#[derive(Debug, Clone, clap::Args)]
pub struct OutputArgs {
    /// Print Nix's base-32 form (what `nix hash path --base32` and
    /// `nix-prefetch-url` print) instead of SRI.
    #[arg(long, alias = "nix32", conflicts_with_all = ["hex", "json"])]
    pub base32: bool,
    /// Print lower-case hexadecimal (`nix hash path --base16`) instead of SRI.
    #[arg(long, alias = "base16", conflicts_with = "json")]
    pub hex: bool,
    /// Print a JSON object with every form: {"sri", "nix32", "hex", ...}.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Subcommand)]
#[command(after_help = AFTER_HELP)]
pub enum Command {
    /// NAR hash of a file or directory tree, identical to `nix hash path`.
    #[command(
        long_about = "NAR hash of a file or directory tree, byte for byte what `nix hash path` prints.\n\n\
Symlinks are hashed as links, never followed (PATH itself included); a file is executable when its \
owner-execute bit is set; other permission bits, owners and times do not count. Sockets, fifos and \
devices are refused, as Nix refuses them.",
        after_help = AFTER_HELP
    )]
    Path {
        /// The file, directory or symlink to hash.
        path: PathBuf,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Hash of an unpacked tar/tar.gz/tar.xz/zip archive, identical to `nix-prefetch-url --unpack`.
    #[command(
        long_about = "Hash of an archive once unpacked, identical to `nix-prefetch-url --unpack` (printed in SRI form; \
--base32 prints what nix-prefetch-url prints) and to the `hash` of fetchzip / fetchFromGitHub for the same URL.\n\n\
The archive is read as a stream and never unpacked to disk. Formats are recognised by content: tar, \
gzip- or xz-compressed tar, zip. When the archive holds a single top-level entry (the usual \
`project-1.0/` directory, or a single file) that entry is hashed; with several top-level entries the \
whole unpacked directory is, as nix-prefetch-url does (fetchzip refuses such archives). A pax global \
header (GitHub's `comment=<commit>`) is not a file. Later entries replace earlier ones of the same \
name and hard links share their target's contents, as Nix's extraction (libarchive) does.",
        after_help = AFTER_HELP
    )]
    Tarball {
        /// An archive file, or a file://, http:// or https:// URL.
        #[arg(value_name = "FILE-OR-URL")]
        source: String,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Hash of a commit's tree, identical to `fetchFromGitHub { rev = COMMIT; }`.
    #[command(
        long_about = "Hash of a commit's tree as fetchFromGitHub pins it (the NAR hash of `git archive COMMIT` \
unpacked), read straight from git objects: nothing is checked out or extracted.\n\n\
Mode 100755 is an executable file, 120000 a symlink, 160000 (a submodule) an empty directory, and \
trees with no file below them are left out, as in `git archive` and GitHub's archive. A commit whose objects are not all in the repository is an error naming the \
missing object and its path, never a wrong hash. Commits whose .gitattributes use export-ignore or \
export-subst are refused (GitHub's archive differs from the tree there).",
        after_help = AFTER_HELP
    )]
    Git {
        /// The commit: a full or short id, a tag or a branch.
        commit: String,
        /// The repository: a work tree or a bare git directory (`--xla-repo` and
        /// XLA_REPO work too). Without it, pjrtpkgs' cached clone of upstream XLA
        /// is used and the commit fetched when missing.
        #[arg(long, alias = "xla-repo", env = "XLA_REPO", value_name = "DIR")]
        repo: Option<PathBuf>,
        #[command(flatten)]
        output: OutputArgs,
    },
}

pub fn run(cmd: Command) -> Result<ExitCode> {
    match cmd {
        Command::Path { path, output } => {
            let hash = nar::hash_path(&path)?;
            print(&output, hash, &[("path", path.display().to_string())])?;
        }
        Command::Tarball { source, output } => {
            let hash = tarball::hash_archive(&source)?;
            print(&output, hash, &[("source", source)])?;
        }
        Command::Git { commit, repo, output } => {
            let arg = crate::xla_repo::XlaRepoArg { xla_repo: repo };
            let repository = crate::xla_repo::open_for(&arg, &[&commit])?;
            let id = crate::xla_repo::resolve_commit(&repository, &commit)?;
            let hash = git::hash_commit(&repository, id)?;
            print(&output, hash, &[("commit", id.to_string()), ("repo", repository.path().display().to_string())])?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print(output: &OutputArgs, hash: NarHash, context: &[(&str, String)]) -> Result<()> {
    let line = if output.json {
        let mut object = serde_json::Map::new();
        for (key, value) in context {
            object.insert((*key).into(), value.clone().into());
        }
        object.insert("sri".into(), hash.to_sri().into());
        object.insert("nix32".into(), hash.to_nix32().into());
        object.insert("hex".into(), hash.to_hex().into());
        serde_json::Value::Object(object).to_string()
    } else if output.base32 {
        hash.to_nix32()
    } else if output.hex {
        hash.to_hex()
    } else {
        hash.to_sri()
    };
    crate::cli::emit_line(&line)
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
