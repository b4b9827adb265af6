//! `cargo xtask hash`: Nix-exact SHA-256 NAR hashes of a path, of an
//! unpacked archive and of a git commit's tree, without Nix. The hashing
//! itself is [`crate::hashing`]'s.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;

use crate::hashing::{git, nar, tarball, NarHash};

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
    crate::output::emit_line(&line)
}
