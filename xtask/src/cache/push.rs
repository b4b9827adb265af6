//! `cache push`: build, sign and upload closures to a binary cache.
//!
//! The upload is `nix copy --to 'URL?secret-key=KEY'`, which signs every
//! narinfo as it writes it, without touching the local store's signatures
//! (so a user who is not trusted by the Nix daemon can push too). Paths that
//! were already in the cache are skipped by `nix copy`; `nix store sign
//! --store URL` then adds our signature to those as well. Finally the
//! narinfos are read back and their signatures checked by us.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context, Result};

use crate::binary_cache::decode::COMPRESSIONS;
use crate::binary_cache::narinfo::{public_of_secret, shown, NarInfo, PublicKey};
use crate::binary_cache::remote::{redacted, BinaryCache, Location};
use crate::nix::{self, Nix};

#[derive(Debug, clap::Args)]
#[command(
    about = "Build, sign and upload closures to a Nix binary cache",
    long_about = "Build the chosen flake outputs (or take store paths as given), then sign their whole closures \
with KEY (--key, or PJRTPKGS_CACHE_KEY_FILE; --unsigned to push without) and copy them to the binary cache at \
STORE-URL with `nix copy`. Any store URL Nix accepts works: file:///absolute/dir (three slashes; serve it with \
any static HTTP server), s3://bucket?endpoint=...&region=..., http(s)://host (servers that accept PUT, e.g. \
nginx WebDAV), ssh://host. The compression (--compression, or compression= in STORE-URL) is one `cache verify` \
decodes: zstd, xz, none, bzip2, br or gzip.\n\n\
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
    /// Secret signing key file (from `cache keygen`); required unless --unsigned.
    #[arg(long, value_name = "FILE", env = "PJRTPKGS_CACHE_KEY_FILE")]
    pub key: Option<PathBuf>,
    /// Push without signing (clients will refuse the paths unless they are content-addressed).
    #[arg(long, conflicts_with = "key")]
    pub unsigned: bool,
    /// NAR compression, unless STORE-URL already sets `compression=`: zstd is fast on large closures, xz is
    /// smaller and slow, none is for caches on a local disk.
    #[arg(long, default_value = "zstd", value_parser = clap::builder::PossibleValuesParser::new(COMPRESSIONS))]
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
    // Everything the user typed is checked before the (long) build.
    if args.key.is_none() && !args.unsigned {
        bail!(
            "no signing key: pass --key FILE (or set PJRTPKGS_CACHE_KEY_FILE) with a secret key from \
             `cargo xtask cache keygen NAME`, or --unsigned to push without signing (clients then refuse \
             input-addressed paths unless they trust the cache otherwise)"
        );
    }
    Location::parse(&args.store_url)?;
    if let Some(compression) = store_parameter(&args.store_url, "compression").filter(|c| !COMPRESSIONS.contains(&c.as_str())) {
        bail!(
            "{} sets compression={}, which `cache verify` cannot check; use one of {} (or --compression)",
            shown(&redacted(&args.store_url)),
            shown(&compression),
            COMPRESSIONS.join(", ")
        );
    }
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

    let shown_url = redacted(&args.store_url);
    eprintln!("[2/4] copying to {shown_url}");
    let url = upload_url(&args.store_url, &args.compression, key.as_ref().map(|k| k.file.as_path()));
    let mut copy = vec!["copy", "--to", &url];
    copy.extend(roots.iter().map(String::as_str));
    nix.run(&copy, &format!("copying to {shown_url}"))?;

    if let Some(key) = &key {
        eprintln!("[3/4] signing paths that were already in the cache");
        let file = key.file.to_string_lossy();
        let mut sign = vec!["store", "sign", "--store", &args.store_url, "--key-file", &file, "--recursive"];
        sign.extend(roots.iter().map(String::as_str));
        // Our own `--store` (the source) must not reach this call: the cache is the store here.
        Nix { store: None }.run(&sign, &format!("signing in {shown_url}"))?;
    } else {
        eprintln!("[3/4] not signing (--unsigned)");
    }

    eprintln!("[4/4] reading the narinfos back");
    let checked = read_back(&args.store_url, &closure, key.as_ref().map(|k| &k.public))?;

    if args.json {
        let report = serde_json::json!({
            "store_url": shown_url,
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
            shown_url,
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
    let secret = super::read_key_file(&file, "signing key")?;
    let meta = std::fs::metadata(&file).with_context(|| format!("cannot read the signing key {}", file.display()))?;
    if meta.permissions().mode() & 0o077 != 0 {
        eprintln!(
            "warning: the signing key {} is readable by other users (mode {:o}); `chmod 600` it",
            file.display(),
            meta.permissions().mode() & 0o777
        );
    }
    let public = public_of_secret(&secret)
        .with_context(|| format!("{} is not a Nix secret key; make one with `cargo xtask cache keygen NAME`", file.display()))?;
    Ok(Key { file, public })
}

/// The value of a store parameter (`?name=value`) in a store URL, as Nix
/// decodes it.
fn store_parameter(url: &str, name: &str) -> Option<String> {
    let (_, query) = url.split_once('?')?;
    query.split('&').find_map(|kv| kv.split_once('=').filter(|(k, _)| *k == name).map(|(_, v)| percent_decode(v)))
}

/// STORE-URL with the compression and, when signing, the secret key added as
/// store parameters; parameters already in the URL win. Values are
/// percent-encoded: Nix decodes them (`&`, `%`, `#` or a space in the key's
/// path would otherwise cut it or change it).
fn upload_url(url: &str, compression: &str, key: Option<&Path>) -> String {
    let mut out = url.to_owned();
    let mut add = |name: &str, value: &str| {
        if store_parameter(url, name).is_none() {
            out.push(if out.contains('?') { '&' } else { '?' });
            out.push_str(&format!("{name}={}", percent_encode(value)));
        }
    };
    add("compression", compression);
    if let Some(key) = key {
        add("secret-key", &key.to_string_lossy());
    }
    out
}

fn percent_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match (bytes[i], value.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Checks each pushed path has a narinfo, signed by `key` when given. Only for
/// caches this tool can read (file://, http(s)://); returns how many it checked.
fn read_back(store_url: &str, closure: &[(String, u64)], key: Option<&PublicKey>) -> Result<usize> {
    let Some(cache) = BinaryCache::open(store_url)? else {
        eprintln!("      (not read back: {} is checked by `cargo xtask cache verify --with-nix`)", redacted(store_url));
        return Ok(0);
    };
    for (path, _) in closure {
        let rel = crate::binary_cache::narinfo_name(path)?;
        let text = cache.get_text(&rel).map_err(|e| anyhow!("{path} was pushed but cannot be read back: {e}"))?.with_context(|| {
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
        let key = Path::new("/k.secret");
        assert_eq!(upload_url("file:///c", "zstd", Some(key)), "file:///c?compression=zstd&secret-key=/k.secret");
        assert_eq!(upload_url("s3://b?region=x&compression=xz", "zstd", None), "s3://b?region=x&compression=xz");
        assert_eq!(store_parameter("s3://b?region=x&compression=x%7Az", "compression").as_deref(), Some("xzz"));
    }

    #[test]
    fn key_paths_survive_nix_s_decoding() {
        let key = Path::new("/keys/a&b %41#c?.secret");
        let url = upload_url("file:///c", "zstd", Some(key));
        assert_eq!(url, "file:///c?compression=zstd&secret-key=/keys/a%26b%20%2541%23c%3F.secret");
        assert_eq!(store_parameter(&url, "secret-key").as_deref(), Some("/keys/a&b %41#c?.secret"));
    }
}
