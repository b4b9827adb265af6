//! `cargo xtask release verify DIR-or-URL`: the consumer's check of a
//! release — the signature of `SHA256SUMS` with the project's public key,
//! then the sha256 of every file it lists, and nothing unlisted beside them.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use serde::Serialize;

use super::sign;
use super::sums;
use crate::binary_cache::remote::BinaryCache;

/// Exit status when the release is not what it claims.
pub const EXIT_PROBLEMS: u8 = 2;

#[derive(Debug, clap::Args)]
#[command(
    about = "Check a release: the signature of SHA256SUMS, then every checksum",
    long_about = "Check a release directory (dist/ as `release` wrote it) or its URL (the directory the assets are \
downloaded from, e.g. https://github.com/OWNER/pjrtpkgs/releases/download/v0.93.1/): verify SHA256SUMS.minisig \
over SHA256SUMS with the minisign public key (--public-key, else [release] minisign_public_key of pins.toml), \
then the sha256 of every file SHA256SUMS lists (downloaded files are hashed while streaming and never kept); \
in a directory, an archive that SHA256SUMS does not list is a problem too.\n\n\
The same checks with standard tools: `sha256sum -c SHA256SUMS` and `minisign -Vm SHA256SUMS -P KEY`.",
    after_help = "Examples:\n  cargo xtask release verify dist\n  cargo xtask release verify https://github.com/OWNER/pjrtpkgs/releases/download/v0.93.1/ --json\n  \
cargo xtask release verify dist --public-key ~/.cache/pjrtpkgs/keys/pjrtpkgs-release.pub\n\n\
Exit status: 0 signature and checksums good, 2 problems (each one printed), 1 error (cannot read the release, no public key)."
)]
pub struct Args {
    /// The release: a directory, or an http(s):// or file:// URL of one.
    #[arg(value_name = "DIR-or-URL")]
    pub source: String,
    /// minisign public key: the base64 line (RW...) or a .pub file [default: pins.toml [release] minisign_public_key]
    #[arg(long, value_name = "KEY")]
    pub public_key: Option<String>,
    /// Check only the checksums of a release made with `release --unsigned`.
    #[arg(long, conflicts_with = "public_key")]
    pub unsigned: bool,
    /// Print a JSON report on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub source: String,
    /// The signed trusted comment (`pjrtpkgs v0.93.1 SHA256SUMS`), when the signature holds.
    pub trusted_comment: Option<String>,
    pub key_id: Option<String>,
    pub files: Vec<FileCheck>,
    pub problems: Vec<String>,
    pub ok: bool,
}

#[derive(Debug, Serialize)]
pub struct FileCheck {
    pub name: String,
    pub sha256: String,
    pub ok: bool,
}

fn open(source: &str) -> Result<BinaryCache> {
    if source.contains("://") {
        return BinaryCache::open(source)?.with_context(|| format!("`{source}`: only http://, https:// and file:// URLs can be read"));
    }
    let dir = PathBuf::from(source);
    if !dir.is_dir() {
        bail!("{source} is not a directory (give dist/ as `release` wrote it, or a URL)");
    }
    BinaryCache::open_dir(dir)
}

pub fn run(args: Args) -> Result<ExitCode> {
    let key = if args.unsigned {
        None
    } else {
        let text = match &args.public_key {
            Some(k) => k.clone(),
            None => {
                let path = crate::project::pins_toml().context(
                    "no public key given: pass --public-key KEY, or run inside a pjrtpkgs checkout whose pins.toml has [release] minisign_public_key",
                )?;
                let pins = crate::pinfile::Pins::load(&path)?;
                pins.release.and_then(|r| r.minisign_public_key).context(
                    "no public key: pins.toml [release] has no minisign_public_key; pass --public-key KEY (or --unsigned for an unsigned release)",
                )?
            }
        };
        Some(sign::load_public_key(&text)?)
    };
    let report = verify(&args.source, key.as_ref())?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        if let Some(comment) = &report.trusted_comment {
            eprintln!("signature: good, key {} ({comment})", report.key_id.as_deref().unwrap_or("?"));
        }
        for f in &report.files {
            eprintln!("{}: {}", f.name, if f.ok { "OK" } else { "FAILED" });
        }
        for p in &report.problems {
            eprintln!("problem: {p}");
        }
        eprintln!("{}: {}", report.source, if report.ok { "verified" } else { "NOT verified" });
    }
    Ok(if report.ok { ExitCode::SUCCESS } else { ExitCode::from(EXIT_PROBLEMS) })
}

/// Checks the release at `source`; `key` None checks the checksums only.
pub fn verify(source: &str, key: Option<&minisign::PublicKey>) -> Result<Report> {
    let release = open(source)?;
    let mut report = Report { source: source.to_owned(), ..Default::default() };
    let mut sums_bytes = Vec::new();
    match release.get(sums::FILE)? {
        Some(mut r) => {
            r.read_to_end(&mut sums_bytes).with_context(|| format!("cannot read {}", release.describe(sums::FILE)))?;
        }
        None => bail!("{} does not exist: not a release", release.describe(sums::FILE)),
    }
    if let Some(key) = key {
        report.key_id = Some(sign::key_id(key));
        let sig_name = sign::signature_name(sums::FILE);
        match release.get_text(&sig_name)? {
            None => report.problems.push(format!("{sig_name} is missing: the release is not signed")),
            Some(sig) => match sign::verify(key, &sig, &sums_bytes) {
                Ok(comment) => report.trusted_comment = Some(comment),
                Err(e) => report.problems.push(format!("{sig_name} does not verify {} with key {}: {e:#}", sums::FILE, sign::key_id(key))),
            },
        }
    }
    let listed = sums::parse(&String::from_utf8_lossy(&sums_bytes))?;
    for (name, want) in &listed {
        let ok = match release.get(name)? {
            None => {
                report.problems.push(format!("{name} is listed in {} but missing", sums::FILE));
                false
            }
            Some(mut reader) => {
                let bar = crate::progress::bytes_bar(format!("checking {name}"), None);
                let mut hashing = crate::hashing::Hashing::new(std::io::sink());
                std::io::copy(&mut bar.wrap_read(&mut reader), &mut hashing)
                    .with_context(|| format!("cannot read {}", release.describe(name)))?;
                bar.finish_and_clear();
                let got = hashing.finish().0.to_hex();
                if &got != want {
                    report.problems.push(format!("{name}: sha256 {got}, but {} says {want}", sums::FILE));
                }
                &got == want
            }
        };
        report.files.push(FileCheck { name: name.clone(), sha256: want.clone(), ok });
    }
    if let BinaryCache::File { dir, .. } = &release {
        let mut unlisted = Vec::new();
        for entry in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
            let name = entry?.file_name().to_string_lossy().into_owned();
            if name.ends_with(".tar.gz") && !listed.iter().any(|(n, _)| *n == name) {
                unlisted.push(name);
            }
        }
        unlisted.sort();
        for name in unlisted {
            report.problems.push(format!("{name} is not listed in {}", sums::FILE));
        }
    }
    report.ok = report.problems.is_empty();
    Ok(report)
}
