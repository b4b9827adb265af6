//! `cache push`: build, sign and upload closures to a binary cache.
//!
//! The upload is `nix copy --to 'URL?secret-key=KEY'`, which signs every
//! narinfo as it writes it, without touching the local store's signatures
//! (so a user who is not trusted by the Nix daemon can push too). Paths that
//! were already in the cache are skipped by `nix copy`; `nix store sign
//! --store URL` then adds our signature to those as well. Finally the
//! narinfos are read back and their signatures checked by us.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};

use super::narinfo::{public_of_secret, NarInfo, PublicKey};
use super::remote::BinaryCache;
use crate::nix::{self, Nix};

#[derive(Debug, clap::Args)]
#[command(
    about = "Build, sign and upload closures to a Nix binary cache",
    long_about = "Build the chosen flake outputs (or take store paths as given), then sign their whole closures \
with KEY and copy them to the binary cache at STORE-URL with `nix copy`. Any store URL Nix accepts works: \
file:///dir (serve it with any static HTTP server), s3://bucket?endpoint=...&region=..., \
http(s)://host (servers that accept PUT, e.g. nginx WebDAV), ssh://host.\n\n\
Targets: a store path (/nix/store/...), an installable (FLAKE#ATTR), or a bare NAME meaning \
FLAKE#NAME. Without targets, every packages.<system> output of the flake is built and pushed.\n\n\
Nix reads its usual configuration; NIX_CONFIG can add settings (substituters, sandbox paths).",
    after_help = "Examples:\n  cargo xtask cache push file:///srv/nix-cache --key ~/.cache/pjrtpkgs/keys/pjrtpkgs-1.secret\n  \
cargo xtask cache push 's3://pjrt-cache?endpoint=minio.example.org&region=us-east-1' --key key.secret pjrt-cpu\n  \
cargo xtask cache push file:///srv/nix-cache --key key.secret /nix/store/...-pjrt-cpu --json\n\n\
Exit status: 0 pushed and signatures read back, 1 failed."
)]
pub struct Args {
    /// The binary cache, as a Nix store URL.
    #[arg(value_name = "STORE-URL")]
    pub store_url: String,
    /// Targets: flake output names, FLAKE#ATTR installables or store paths [default: all packages of the flake]
    #[arg(value_name = "OUTPUT-or-STORE-PATH")]
    pub targets: Vec<String>,
    /// Secret signing key file (from `cache keygen`).
    #[arg(long, value_name = "FILE", env = "PJRTPKGS_CACHE_KEY_FILE", required_unless_present = "unsigned")]
    pub key: Option<PathBuf>,
    /// Push without signing (clients will refuse the paths unless they are content-addressed).
    #[arg(long, conflicts_with = "key")]
    pub unsigned: bool,
    /// NAR compression, unless STORE-URL already sets `compression=`: zstd is fast on large closures, xz is
    /// smaller and slow, none is for caches on a local disk.
    #[arg(long, default_value = "zstd", value_parser = ["zstd", "xz", "none", "bzip2", "br", "gzip"])]
    pub compression: String,
    /// The store to build in and copy from (`--store` of nix) [default: Nix's default store]
    #[arg(long, value_name = "STORE")]
    pub store: Option<String>,
    /// The flake whose outputs are pushed [default: the project root]
    #[arg(long, value_name = "FLAKE")]
    pub flake: Option<String>,
    /// Print a JSON report on stdout.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let nix = Nix { store: args.store.clone() };
    let key = args.key.as_deref().map(read_key).transpose()?;
    let flake = match &args.flake {
        Some(f) => f.clone(),
        None => crate::project::root()?.display().to_string(),
    };

    eprintln!("[1/4] building the targets");
    let targets = if args.targets.is_empty() { nix::all_packages(&nix, &flake)? } else { nix::parse_targets(&args.targets, &flake) };
    let roots = nix::build(&nix, &targets)?;
    let closure = nix.closure(&roots)?;
    let nar_bytes: u64 = closure.iter().map(|(_, size)| size).sum();
    eprintln!("      {} root path(s), closure of {} path(s), {}", roots.len(), closure.len(), human_bytes(nar_bytes));

    eprintln!("[2/4] copying to {}", args.store_url);
    let url = upload_url(&args.store_url, &args.compression, key.as_ref().map(|k| &k.file));
    let mut copy = vec!["copy", "--to", &url];
    copy.extend(roots.iter().map(String::as_str));
    nix.run(&copy, &format!("copying to {}", args.store_url))?;

    if let Some(key) = &key {
        eprintln!("[3/4] signing paths that were already in the cache");
        let file = key.file.to_string_lossy();
        let mut sign = vec!["store", "sign", "--store", &args.store_url, "--key-file", &file, "--recursive"];
        sign.extend(roots.iter().map(String::as_str));
        // Our own `--store` (the source) must not reach this call: the cache is the store here.
        Nix { store: None }.run(&sign, &format!("signing in {}", args.store_url))?;
    } else {
        eprintln!("[3/4] not signing (--unsigned)");
    }

    eprintln!("[4/4] reading the narinfos back");
    let checked = read_back(&args.store_url, &closure, key.as_ref().map(|k| &k.public))?;

    if args.json {
        let report = serde_json::json!({
            "store_url": args.store_url,
            "roots": roots,
            "closure": closure.iter().map(|(p, s)| serde_json::json!({"path": p, "nar_size": s})).collect::<Vec<_>>(),
            "nar_bytes": nar_bytes,
            "signed_by": key.as_ref().map(|k| k.public.name.clone()),
            "read_back": checked,
        });
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        for root in &roots {
            println!("{root}");
        }
        eprintln!(
            "pushed {} path(s) ({}) to {}{}",
            closure.len(),
            human_bytes(nar_bytes),
            args.store_url,
            key.as_ref().map(|k| format!(", signed by {}", k.public.name)).unwrap_or_default()
        );
    }
    Ok(ExitCode::SUCCESS)
}

struct Key {
    file: PathBuf,
    public: PublicKey,
}

fn read_key(file: &std::path::Path) -> Result<Key> {
    let file = std::path::absolute(file).with_context(|| format!("cannot resolve {}", file.display()))?;
    let meta = std::fs::metadata(&file).with_context(|| format!("cannot read the signing key {}", file.display()))?;
    if meta.permissions().mode() & 0o077 != 0 {
        eprintln!(
            "warning: the signing key {} is readable by other users (mode {:o}); `chmod 600` it",
            file.display(),
            meta.permissions().mode() & 0o777
        );
    }
    let secret = std::fs::read_to_string(&file).with_context(|| format!("cannot read the signing key {}", file.display()))?;
    let public = public_of_secret(&secret)
        .with_context(|| format!("{} is not a Nix secret key; make one with `cargo xtask cache keygen NAME`", file.display()))?;
    Ok(Key { file, public })
}

/// STORE-URL with the compression and, when signing, the secret key added as
/// store parameters; parameters already in the URL win.
fn upload_url(url: &str, compression: &str, key: Option<&PathBuf>) -> String {
    let mut out = url.to_owned();
    let has = |name: &str| url.split_once('?').is_some_and(|(_, q)| q.split('&').any(|kv| kv.split('=').next() == Some(name)));
    let mut add = |name: &str, value: &str| {
        if !has(name) {
            out.push(if out.contains('?') { '&' } else { '?' });
            out.push_str(&format!("{name}={value}"));
        }
    };
    add("compression", compression);
    if let Some(key) = key {
        add("secret-key", &key.to_string_lossy());
    }
    out
}

/// Checks each pushed path has a narinfo, signed by `key` when given. Only for
/// caches this tool can read (file://, http(s)://); returns how many it checked.
fn read_back(store_url: &str, closure: &[(String, u64)], key: Option<&PublicKey>) -> Result<usize> {
    let Some(cache) = BinaryCache::open(store_url)? else {
        eprintln!("      (not read back: {store_url} is checked by `cargo xtask cache verify --with-nix`)");
        return Ok(0);
    };
    for (path, _) in closure {
        let rel = super::narinfo_name(path)?;
        let text = cache.get_text(&rel)?.with_context(|| {
            format!("{path} was pushed but {} does not exist; is STORE-URL the place clients read from?", cache.describe(&rel))
        })?;
        let info = NarInfo::parse(&text).with_context(|| format!("{} is not a valid narinfo", cache.describe(&rel)))?;
        if let Some(key) = key {
            if info.check_signatures(std::slice::from_ref(key)).valid.is_empty() {
                bail!("{path} is in the cache but not signed by {}; run the push again, or check who else writes there", key.name);
            }
        }
    }
    Ok(closure.len())
}

pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_parameters_in_the_url_win() {
        let key = PathBuf::from("/k.secret");
        assert_eq!(upload_url("file:///c", "zstd", Some(&key)), "file:///c?compression=zstd&secret-key=/k.secret");
        assert_eq!(upload_url("s3://b?region=x&compression=xz", "zstd", None), "s3://b?region=x&compression=xz");
    }
}
