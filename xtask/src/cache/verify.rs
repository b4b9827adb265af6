//! `cache verify`: is every output, with its whole closure, in the cache,
//! signed by a key we trust, and is each NAR what its narinfo says?
//!
//! Checked here without Nix (narinfo parsing, ed25519 over the fingerprint,
//! download, decompression, sha256 of the file and of the NAR), so the
//! verdict does not depend on the Nix version at hand; `--with-nix` adds
//! `nix store verify` as a second opinion and is the only check for schemes
//! this tool cannot read (s3://, ssh://).

use std::collections::{BTreeMap, VecDeque};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context, Result};
use serde::Serialize;

use super::narinfo::{NarInfo, PublicKey};
use super::remote::BinaryCache;
use crate::hash::Hashing;
use crate::nix::{self, Nix};

#[derive(Debug, clap::Args)]
#[command(
    about = "Check that a binary cache holds every output, signed and intact",
    long_about = "For every output of the flake (without building anything: output paths come from evaluation), \
or for the store paths given, and for their whole closures as the cache's narinfos describe them, check that:\n  \
- the narinfo exists (else: missing) and parses (else: invalid);\n  \
- it carries a valid ed25519 signature, over Nix's fingerprint, by one of the trusted keys (else: unsigned, \
untrusted or bad-signature);\n  \
- the NAR file exists, its size and sha256 match FileSize/FileHash, and once decompressed (xz, zstd, gzip or none) \
its size and sha256 match NarSize/NarHash (else: corrupt).\n\n\
file:// and http(s):// caches are read directly; for other schemes pass --with-nix, which runs \
`nix store verify --store STORE-URL` with the same trusted keys.\n\n\
At least one trusted key (--trusted-key or --trusted-key-file) is required.",
    after_help = "Examples:\n  cargo xtask cache verify https://cache.example.org --trusted-key 'pjrtpkgs-1:AbC...='\n  \
cargo xtask cache verify file:///srv/nix-cache --trusted-key-file keys/pjrtpkgs-1.public /nix/store/...-pjrt-cpu --json\n\n\
Exit status: 0 every path is present, trusted and intact; 2 some are not (listed); 1 the check could not run."
)]
pub struct Args {
    /// The binary cache, as a Nix store URL.
    #[arg(value_name = "STORE-URL")]
    pub store_url: String,
    /// Targets: flake output names, FLAKE#ATTR installables or store paths [default: all packages of the flake]
    #[arg(value_name = "OUTPUT-or-STORE-PATH")]
    pub targets: Vec<String>,
    /// A public key to trust, `name:base64` (repeatable; at least one key or key file is required).
    #[arg(long = "trusted-key", value_name = "KEY")]
    pub trusted_keys: Vec<String>,
    /// A file holding a public key to trust, e.g. NAME.public from `cache keygen` (repeatable).
    #[arg(long = "trusted-key-file", value_name = "FILE")]
    pub trusted_key_files: Vec<std::path::PathBuf>,
    /// Check only the named paths, not their closures.
    #[arg(long)]
    pub no_closure: bool,
    /// Also run `nix store verify` on the cache (the only check for s3:// and ssh://).
    #[arg(long)]
    pub with_nix: bool,
    /// The flake whose outputs are checked [default: the project root]
    #[arg(long, value_name = "FLAKE")]
    pub flake: Option<String>,
    /// Print a JSON report on stdout.
    #[arg(long)]
    pub json: bool,
}

/// What was found about one store path.
#[derive(Debug, Clone, Serialize)]
pub struct PathReport {
    pub path: String,
    /// `ok`, `missing`, `invalid`, `unsigned`, `untrusted`, `bad-signature` or `corrupt`: the first problem found.
    pub status: &'static str,
    pub problems: Vec<String>,
    /// Trusted keys whose signature checks out.
    pub signed_by: Vec<String>,
    /// The root this path was reached from, when it is a dependency.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub needed_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nar_size: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compression: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub store_url: String,
    pub ok: bool,
    pub checked: usize,
    pub problems: usize,
    pub paths: Vec<PathReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nix_store_verify: Option<bool>,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let mut trusted: Vec<PublicKey> = args.trusted_keys.iter().map(|k| k.parse()).collect::<Result<_>>()?;
    for file in &args.trusted_key_files {
        let text = std::fs::read_to_string(file).with_context(|| format!("cannot read the public key file {}", file.display()))?;
        trusted.push(text.parse().with_context(|| format!("{} holds no public key", file.display()))?);
    }
    if trusted.is_empty() {
        bail!("no trusted key: pass --trusted-key NAME:BASE64 or --trusted-key-file NAME.public (the key clients trust)");
    }
    let nix = Nix { store: None };
    let flake = match &args.flake {
        Some(f) => f.clone(),
        None => crate::project::root()?.display().to_string(),
    };
    let targets = if args.targets.is_empty() { nix::all_packages(&nix, &flake)? } else { nix::parse_targets(&args.targets, &flake) };
    let roots = nix::evaluate(&nix, &targets)?;

    let cache = BinaryCache::open(&args.store_url)?;
    if cache.is_none() && !args.with_nix {
        bail!(
            "{} is neither file:// nor http(s)://, which this tool reads itself; add --with-nix to let `nix store verify` check it, \
or point at the cache's HTTP endpoint",
            args.store_url
        );
    }
    let mut paths = match &cache {
        Some(cache) => check_cache(cache, &roots, &trusted, !args.no_closure)?,
        None => Vec::new(),
    };

    let nix_verdict = if args.with_nix {
        let keys = trusted.iter().map(PublicKey::to_string).collect::<Vec<_>>().join(" ");
        let mut cmd = nix.command()?;
        cmd.args(["store", "verify", "--store", &args.store_url, "--trusted-public-keys", &keys]);
        if !args.no_closure {
            cmd.arg("--recursive");
        }
        cmd.args(&roots).stdout(std::process::Stdio::null());
        eprintln!("running nix store verify on {}", args.store_url);
        let status = cmd.status().context("cannot run `nix store verify`: is Nix on PATH?")?;
        Some(status.success())
    } else {
        None
    };

    if cache.is_none() {
        // Only Nix looked: one line per root, its verdict for all.
        let ok = nix_verdict == Some(true);
        paths = roots
            .iter()
            .map(|p| PathReport {
                path: p.clone(),
                status: if ok { "ok" } else { "unverified" },
                problems: if ok { vec![] } else { vec!["`nix store verify` reported problems (see its output above)".into()] },
                signed_by: vec![],
                needed_by: None,
                nar_size: None,
                compression: None,
            })
            .collect();
    }
    let problems = paths.iter().filter(|p| p.status != "ok").count();
    let report = Report {
        store_url: args.store_url.clone(),
        ok: problems == 0 && nix_verdict != Some(false),
        checked: paths.len(),
        problems,
        paths,
        nix_store_verify: nix_verdict,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        for p in &report.paths {
            let via = p.needed_by.as_ref().map(|r| format!(" (needed by {r})")).unwrap_or_default();
            println!("{:<13} {}{via}", p.status, p.path);
            for problem in &p.problems {
                println!("              {problem}");
            }
        }
        if nix_verdict == Some(false) {
            println!("nix store verify: FAILED");
        }
        eprintln!("{} path(s) checked, {} with problems", report.checked, report.problems);
    }
    Ok(if report.ok { ExitCode::SUCCESS } else { ExitCode::from(super::EXIT_PROBLEMS) })
}

/// Checks the roots and (with `closure`) everything they reference, as the
/// cache's own narinfos describe it.
pub fn check_cache(cache: &BinaryCache, roots: &[String], trusted: &[PublicKey], closure: bool) -> Result<Vec<PathReport>> {
    let info_text = cache
        .get_text("nix-cache-info")?
        .ok_or_else(|| anyhow!("{} does not exist: this is not a Nix binary cache (or not its root)", cache.describe("nix-cache-info")))?;
    let store_dir =
        info_text.lines().find_map(|l| l.strip_prefix("StoreDir:")).map(|d| d.trim().to_owned()).unwrap_or_else(|| "/nix/store".to_owned());

    // Pass 1: narinfos and signatures, walking the closure breadth-first.
    let spinner = indicatif::ProgressBar::new_spinner().with_message("reading narinfos");
    let mut reports: BTreeMap<String, (PathReport, Option<NarInfo>)> = BTreeMap::new();
    let mut queue: VecDeque<(String, Option<String>)> = roots.iter().map(|r| (r.clone(), None)).collect();
    while let Some((path, needed_by)) = queue.pop_front() {
        if reports.contains_key(&path) {
            continue;
        }
        spinner.inc(1);
        let mut report = PathReport {
            path: path.clone(),
            status: "ok",
            problems: vec![],
            signed_by: vec![],
            needed_by: needed_by.clone(),
            nar_size: None,
            compression: None,
        };
        let info = check_narinfo(cache, &store_dir, &path, trusted, &mut report)?;
        if let (Some(info), true) = (&info, closure) {
            let root = needed_by.clone().unwrap_or_else(|| path.clone());
            for reference in info.reference_paths() {
                queue.push_back((reference, Some(root.clone())));
            }
        }
        reports.insert(path, (report, info));
    }
    spinner.finish_and_clear();

    // Pass 2: download and hash the NARs.
    let total: u64 = reports.values().filter_map(|(_, i)| i.as_ref()).map(|i| i.file_size.unwrap_or(i.nar_size)).sum();
    let bar = crate::progress::bytes_bar("checking NARs".to_owned(), Some(total));
    for (report, info) in reports.values_mut() {
        if let Some(info) = info {
            check_nar(cache, info, report, &bar)?;
        }
    }
    bar.finish_and_clear();

    // Roots first, in the order given, then dependencies sorted by path.
    let mut out: Vec<PathReport> = Vec::new();
    for root in roots {
        if let Some((r, _)) = reports.remove(root) {
            out.push(r);
        }
    }
    out.extend(reports.into_values().map(|(r, _)| r));
    Ok(out)
}

fn problem(report: &mut PathReport, status: &'static str, text: String) {
    if report.status == "ok" {
        report.status = status;
    }
    report.problems.push(text);
}

/// The narinfo of `path`, if it exists and parses; records signature problems.
fn check_narinfo(
    cache: &BinaryCache,
    store_dir: &str,
    path: &str,
    trusted: &[PublicKey],
    report: &mut PathReport,
) -> Result<Option<NarInfo>> {
    if path.rsplit_once('/').map(|(dir, _)| dir) != Some(store_dir) {
        problem(report, "invalid", format!("not a path in the cache's store directory {store_dir}"));
        return Ok(None);
    }
    let rel = super::narinfo_name(path)?;
    let Some(text) = cache.get_text(&rel)? else {
        problem(report, "missing", format!("{} does not exist", cache.describe(&rel)));
        return Ok(None);
    };
    let info = match NarInfo::parse(&text) {
        Ok(info) if info.store_path == path => info,
        Ok(info) => {
            problem(report, "invalid", format!("{} describes {}, not this path", cache.describe(&rel), info.store_path));
            return Ok(None);
        }
        Err(e) => {
            problem(report, "invalid", format!("{} is not a valid narinfo: {e:#}", cache.describe(&rel)));
            return Ok(None);
        }
    };
    report.nar_size = Some(info.nar_size);
    report.compression = Some(info.compression.clone());
    let verdict = info.check_signatures(trusted);
    report.signed_by = verdict.valid.clone();
    if verdict.valid.is_empty() {
        if !verdict.invalid.is_empty() {
            problem(
                report,
                "bad-signature",
                format!("the signature by {} does not match the narinfo (forged or altered)", verdict.invalid.join(", ")),
            );
        } else if !verdict.untrusted.is_empty() {
            problem(report, "untrusted", format!("signed only by keys not trusted here: {}", verdict.untrusted.join(", ")));
        } else {
            problem(report, "unsigned", "no signature at all".to_owned());
        }
    }
    Ok(Some(info))
}

/// Downloads the NAR and compares its sizes and hashes with the narinfo.
fn check_nar(cache: &BinaryCache, info: &NarInfo, report: &mut PathReport, bar: &indicatif::ProgressBar) -> Result<()> {
    let Some(reader) = cache.get(&info.url)? else {
        problem(report, "corrupt", format!("the NAR {} does not exist", cache.describe(&info.url)));
        return Ok(());
    };
    let mut file = Hashing::new(bar.wrap_read(reader));
    let mut nar = Hashing::new(io::sink());
    if let Err(e) = decompress(&info.compression, &mut file, &mut nar) {
        problem(report, "corrupt", format!("cannot decompress the NAR {} ({}): {e:#}", cache.describe(&info.url), info.compression));
        return Ok(());
    }
    // Whatever follows the compressed stream still counts for FileHash.
    io::copy(&mut file, &mut io::sink()).with_context(|| format!("cannot read {}", cache.describe(&info.url)))?;
    let (file_hash, file_size) = file.finish();
    let (nar_hash, nar_size) = nar.finish();
    if let Some(expected) = info.file_size.filter(|s| *s != file_size) {
        problem(report, "corrupt", format!("the NAR file is {file_size} bytes, the narinfo says FileSize {expected}"));
    }
    if let Some(expected) = info.file_hash.filter(|h| *h != file_hash) {
        problem(
            report,
            "corrupt",
            format!("the NAR file hashes to sha256:{}, the narinfo says FileHash sha256:{}", file_hash.to_nix32(), expected.to_nix32()),
        );
    }
    if nar_size != info.nar_size {
        problem(report, "corrupt", format!("the NAR is {nar_size} bytes, the narinfo says NarSize {}", info.nar_size));
    }
    if nar_hash != info.nar_hash {
        problem(
            report,
            "corrupt",
            format!("the NAR hashes to sha256:{}, the narinfo says NarHash sha256:{}", nar_hash.to_nix32(), info.nar_hash.to_nix32()),
        );
    }
    Ok(())
}

/// Streams the decompressed NAR into `out`, as the narinfo's `Compression:` says.
fn decompress(compression: &str, input: &mut impl Read, out: &mut impl Write) -> Result<()> {
    match compression {
        "none" | "" => {
            io::copy(input, out)?;
        }
        "xz" => {
            io::copy(&mut xz2::read::XzDecoder::new_multi_decoder(input), out)?;
        }
        "gzip" => {
            io::copy(&mut flate2::read::MultiGzDecoder::new(input), out)?;
        }
        "zstd" => {
            // A zstd stream may hold several frames; decode until the input ends.
            let mut input = BufReader::new(input);
            while !input.fill_buf()?.is_empty() {
                let mut frame = ruzstd::decoding::StreamingDecoder::new(&mut input).map_err(|e| anyhow!("not zstd: {e}"))?;
                io::copy(&mut frame, out)?;
            }
        }
        other => bail!("compression `{other}` is not one this tool decodes (none, xz, zstd, gzip); use --with-nix"),
    }
    Ok(())
}
