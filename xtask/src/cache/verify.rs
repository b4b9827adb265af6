//! `cache verify`: is every output, with its whole closure, in the cache,
//! signed by a key we trust, and is each NAR what its narinfo says?
//!
//! Checked here without Nix (narinfo parsing, ed25519 over the fingerprint,
//! download, decompression, sha256 of the file and of the NAR), so the
//! verdict does not depend on the Nix version at hand; `--with-nix` adds
//! `nix store verify` as a second opinion and is the only check for schemes
//! this tool cannot read (s3://, ssh://).

use std::collections::{BTreeMap, VecDeque};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::binary_cache::decode::{self, Failure};
use crate::binary_cache::narinfo::{shown, split_store_path, ContentAddressVerdict, NarInfo, PublicKey};
use crate::binary_cache::remote::{redacted, BinaryCache, FetchError};
use crate::nix::{self, Nix};

#[derive(Debug, clap::Args)]
#[command(
    about = "Check that a binary cache holds every output, signed and intact",
    long_about = "For every output of the flake (without building anything: output paths come from evaluation), \
or for the store paths given, and for their whole closures as the cache's narinfos describe them, check that:\n  \
- the narinfo exists (else: missing), is a regular file of at most 1 MiB and parses strictly (else: invalid; \
its URL must name a file below the cache root);\n  \
- it carries a valid ed25519 signature, over Nix's fingerprint, by one of the trusted keys (else: unsigned, \
untrusted or bad-signature; then nothing more is read for that path: neither its NAR nor its references), \
unless, as Nix allows, its content address (CA:) gives its store path;\n  \
- the NAR file exists as a regular file below the cache, its size and sha256 match FileSize/FileHash, and once \
decompressed (zstd, xz, none, bzip2, br or gzip: what `cache push` writes) its size and sha256 match \
NarSize/NarHash (else: corrupt). Reading stops past FileSize (or what NarSize can compress to) and decoding \
past NarSize, so a huge file or a decompression bomb costs no more than the narinfo claims.\n\n\
A path whose files could not be read (timeout, HTTP error, I/O error) is unreadable; one whose compression \
this tool does not decode, or an unsigned one whose content address it cannot check (flat or text), is \
unverified. file:// and http(s):// caches are read directly; for other schemes pass --with-nix, which runs \
`nix store verify --store STORE-URL` with the same trusted keys. \
HTTP waits at most PJRTPKGS_HTTP_TIMEOUT seconds (default 30) to connect and for each read, a narinfo \
must arrive whole within twice that, and from the cache's own host (a redirect elsewhere is refused).\n\n\
At least one trusted key (--trusted-key or --trusted-key-file) is required.",
    after_help = "Examples:\n  cargo xtask cache verify https://cache.example.org --trusted-key 'pjrtpkgs-1:AbC...='\n  \
cargo xtask cache verify file:///srv/nix-cache --trusted-key-file keys/pjrtpkgs-1.public /nix/store/...-pjrt-cpu --json\n\n\
Statuses: ok, missing, invalid, unsigned, untrusted, bad-signature, corrupt, unreadable, unverified.\n\n\
Exit status: 0 every path is present, trusted and intact; 2 some are not (listed); 1 the check could not run \
(bad arguments, no nix-cache-info, the cache did not answer)."
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
    /// `ok`, `missing`, `invalid`, `unsigned`, `untrusted`, `bad-signature`, `corrupt`, `unreadable` or
    /// `unverified`: the first problem found.
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
    /// Trusted for its content address (which gives its store path), not a signature.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub content_addressed: bool,
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
        let text = super::read_key_file(file, "public key file")?;
        trusted.push(text.parse().with_context(|| format!("{} holds no public key", file.display()))?);
    }
    if trusted.is_empty() {
        bail!("no trusted key: pass --trusted-key NAME:BASE64 or --trusted-key-file NAME.public (the key clients trust)");
    }
    let cache = BinaryCache::open(&args.store_url)?;
    if cache.is_none() && !args.with_nix {
        bail!(
            "{} is neither file:// nor http(s)://, which this tool reads itself; add --with-nix to let `nix store verify` check it, \
or point at the cache's HTTP endpoint",
            shown(&redacted(&args.store_url))
        );
    }
    let nix = Nix { store: None };
    let flake = match &args.flake {
        Some(f) => f.clone(),
        None => crate::project::root()?.display().to_string(),
    };
    let targets = if args.targets.is_empty() { nix::all_packages(&nix, &flake)? } else { nix::parse_targets(&args.targets, &flake) };
    let roots = nix::evaluate(&nix, &targets)?;

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
        eprintln!("running nix store verify on {}", redacted(&args.store_url));
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
                content_addressed: false,
            })
            .collect();
    }
    let problems = paths.iter().filter(|p| p.status != "ok").count();
    let report = Report {
        store_url: redacted(&args.store_url),
        ok: problems == 0 && nix_verdict != Some(false),
        checked: paths.len(),
        problems,
        paths,
        nix_store_verify: nix_verdict,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        // Paths given on the command line are shown as typed: escape what a terminal would obey.
        for p in &report.paths {
            let via = p.needed_by.as_ref().map(|r| format!(" (needed by {})", shown(r))).unwrap_or_default();
            println!("{:<13} {}{via}", p.status, shown(&p.path));
            for problem in &p.problems {
                println!("              {}", shown_whole(problem));
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
/// cache's own narinfos describe it. Only narinfos signed by a trusted key
/// are acted on: their NARs fetched, their references followed. Whatever one
/// path's narinfo or NAR holds becomes that path's status; only a cache that
/// cannot be read at all (no `nix-cache-info`) ends the run.
pub fn check_cache(cache: &BinaryCache, roots: &[String], trusted: &[PublicKey], closure: bool) -> Result<Vec<PathReport>> {
    let info_text = match cache.get_text("nix-cache-info") {
        Ok(Some(text)) => text,
        Ok(None) => bail!("{} does not exist: this is not a Nix binary cache (or not its root)", cache.describe("nix-cache-info")),
        Err(e) => bail!("cannot read the cache's nix-cache-info: {e}"),
    };
    let store_dir = match info_text.lines().find_map(|l| l.strip_prefix("StoreDir:")).map(str::trim) {
        None => "/nix/store".to_owned(),
        Some(dir)
            if dir.starts_with('/') && !dir.contains("//") && dir.chars().all(|c| c.is_ascii_alphanumeric() || "/._+-".contains(c)) =>
        {
            dir.trim_end_matches('/').to_owned()
        }
        Some(dir) => bail!("{} names `StoreDir: {}`, not an absolute directory", cache.describe("nix-cache-info"), shown(dir)),
    };

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
            content_addressed: false,
        };
        let info = check_narinfo(cache, &store_dir, &path, trusted, &mut report);
        if let (Some(info), true) = (&info, closure) {
            let root = needed_by.clone().unwrap_or_else(|| path.clone());
            for reference in info.reference_paths() {
                queue.push_back((reference, Some(root.clone())));
            }
        }
        reports.insert(path, (report, info));
    }
    spinner.finish_and_clear();

    // Pass 2: download and hash the NARs of the trusted narinfos.
    let total: u64 =
        reports.values().filter_map(|(_, i)| i.as_ref()).map(|i| i.file_size.unwrap_or(i.nar_size)).fold(0, u64::saturating_add);
    let bar = crate::progress::bytes_bar("checking NARs".to_owned(), Some(total));
    for (report, info) in reports.values_mut() {
        if let Some(info) = info {
            check_nar(cache, info, report, &bar);
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

/// A message with any control character escaped, at full length.
fn shown_whole(text: &str) -> std::borrow::Cow<'_, str> {
    if text.chars().any(char::is_control) {
        text.chars().flat_map(char::escape_debug).collect::<String>().into()
    } else {
        text.into()
    }
}

fn problem(report: &mut PathReport, status: &'static str, text: String) {
    if report.status == "ok" {
        report.status = status;
    }
    report.problems.push(text);
}

/// The narinfo of `path` if it exists, parses and carries a valid signature
/// by a trusted key; anything else is recorded in `report`.
fn check_narinfo(cache: &BinaryCache, store_dir: &str, path: &str, trusted: &[PublicKey], report: &mut PathReport) -> Option<NarInfo> {
    let rel = match split_store_path(path) {
        Ok((dir, _)) if dir == store_dir => crate::binary_cache::narinfo_name(path).expect("a checked store path has a narinfo name"),
        Ok(_) => {
            problem(report, "invalid", format!("not a path in the cache's store directory {store_dir}"));
            return None;
        }
        Err(e) => {
            problem(report, "invalid", format!("not a store path: {e:#}"));
            return None;
        }
    };
    let text = match cache.get_text(&rel) {
        Ok(Some(text)) => text,
        Ok(None) => {
            problem(report, "missing", format!("{} does not exist", cache.describe(&rel)));
            return None;
        }
        Err(FetchError::Refused(e)) => {
            problem(report, "invalid", e);
            return None;
        }
        Err(FetchError::Unreadable(e)) => {
            problem(report, "unreadable", e);
            return None;
        }
    };
    let info = match NarInfo::parse(&text) {
        Ok(info) if info.store_path == path => info,
        Ok(info) => {
            problem(report, "invalid", format!("{} describes {}, not this path", cache.describe(&rel), info.store_path));
            return None;
        }
        Err(e) => {
            problem(report, "invalid", format!("{} is not a valid narinfo: {e:#}", cache.describe(&rel)));
            return None;
        }
    };
    report.nar_size = Some(info.nar_size);
    report.compression = Some(info.compression.clone());
    let verdict = info.check_signatures(trusted);
    report.signed_by = verdict.valid.clone();
    if !verdict.valid.is_empty() {
        return Some(info);
    }
    // Without a trusted signature, Nix still accepts a path whose content
    // address gives its store path (the NAR is then checked against it).
    let ca_note = match info.content_address_verdict() {
        ContentAddressVerdict::Verified => {
            report.content_addressed = true;
            return Some(info);
        }
        ContentAddressVerdict::Unchecked(note) => {
            problem(report, "unverified", note);
            None
        }
        ContentAddressVerdict::Mismatch(note) => Some(note),
        ContentAddressVerdict::None => None,
    };
    let names = |names: &[String]| names.iter().map(|n| shown(n).into_owned()).collect::<Vec<_>>().join(", ");
    if !verdict.invalid.is_empty() {
        problem(
            report,
            "bad-signature",
            format!("the signature by {} does not match the narinfo (forged or altered)", names(&verdict.invalid)),
        );
    } else if !verdict.untrusted.is_empty() {
        problem(report, "untrusted", format!("signed only by keys not trusted here: {}", names(&verdict.untrusted)));
    } else {
        problem(report, "unsigned", "no signature at all".to_owned());
    }
    report.problems.extend(ca_note);
    // Nothing is read on the word of a narinfo nobody trusted.
    report.problems.push("its NAR and references were not fetched: only a narinfo signed by a trusted key is acted on".to_owned());
    None
}

/// Downloads the NAR and compares its sizes and hashes with the narinfo,
/// reading no more than the narinfo allows.
fn check_nar(cache: &BinaryCache, info: &NarInfo, report: &mut PathReport, bar: &indicatif::ProgressBar) {
    let compression = shown(&info.compression);
    if !decode::is_supported(&info.compression) {
        problem(
            report,
            "unverified",
            format!(
                "`Compression: {compression}` is not one this tool decodes ({}); `--with-nix` lets Nix check it",
                decode::COMPRESSIONS.join(", ")
            ),
        );
        return;
    }
    let file = match cache.get(&info.url) {
        Ok(Some(file)) => file,
        Ok(None) => return problem(report, "corrupt", format!("the NAR {} does not exist", cache.describe(&info.url))),
        Err(FetchError::Refused(e)) => return problem(report, "corrupt", format!("the NAR {e}")),
        Err(FetchError::Unreadable(e)) => return problem(report, "unreadable", e),
    };
    let by_nar_size = decode::max_file_size(info.nar_size);
    let file_limit = info.file_size.map_or(by_nar_size, |f| f.min(by_nar_size));
    let decoded = match decode::decode(bar.wrap_read(file), &info.compression, file_limit, info.nar_size) {
        Ok(decoded) => decoded,
        Err(Failure::FileTooLarge { limit }) if Some(limit) == info.file_size => {
            return problem(report, "corrupt", format!("the NAR file is larger than its FileSize {limit}; stopped reading there"))
        }
        Err(Failure::FileTooLarge { limit }) => {
            return problem(
                report,
                "corrupt",
                format!(
                    "the NAR file is larger than {limit} bytes, more than any {compression} compression of NarSize {} bytes takes; \
                     stopped reading there",
                    info.nar_size
                ),
            )
        }
        Err(Failure::NarTooLarge { limit }) => {
            return problem(report, "corrupt", format!("the NAR decompresses to more than NarSize {limit} bytes; stopped decoding there"))
        }
        Err(Failure::Undecodable(e)) => {
            return problem(report, "corrupt", format!("cannot decompress the NAR {} ({compression}): {e}", cache.describe(&info.url)))
        }
        Err(Failure::Unreadable(e)) => {
            return problem(report, "unreadable", format!("cannot read the NAR {}: {e}", cache.describe(&info.url)))
        }
    };
    if let Some(expected) = info.file_size.filter(|s| *s != decoded.file_size) {
        problem(report, "corrupt", format!("the NAR file is {} bytes, the narinfo says FileSize {expected}", decoded.file_size));
    }
    if let Some(expected) = info.file_hash.filter(|h| *h != decoded.file_hash) {
        problem(
            report,
            "corrupt",
            format!(
                "the NAR file hashes to sha256:{}, the narinfo says FileHash sha256:{}",
                decoded.file_hash.to_nix32(),
                expected.to_nix32()
            ),
        );
    }
    if decoded.nar_size != info.nar_size {
        problem(report, "corrupt", format!("the NAR is {} bytes, the narinfo says NarSize {}", decoded.nar_size, info.nar_size));
    }
    if decoded.nar_hash != info.nar_hash {
        problem(
            report,
            "corrupt",
            format!(
                "the NAR hashes to sha256:{}, the narinfo says NarHash sha256:{}",
                decoded.nar_hash.to_nix32(),
                info.nar_hash.to_nix32()
            ),
        );
    }
}
