//! `cargo xtask release verify DIR-or-URL`: the consumer's check of a
//! release — the signature of `SHA256SUMS` with the project's public key,
//! bound to the tag the release is served under; then every file
//! `SHA256SUMS` lists, hashed while it streams; nothing else beside them;
//! and `compat.json` read back into its schema.

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use serde::Serialize;

use super::compat::{self, Compat};
use super::fetch::{EntryKind, FetchError, Release};
use super::sign;
use super::sums;
use super::version::ReleaseVersion;

/// Exit status when the release is not what it claims.
pub const EXIT_PROBLEMS: u8 = 2;

/// Caps on what a release's files may weigh. Generous: they are there to
/// refuse an attack (a 2 GB `SHA256SUMS`), not to guess sizes.
pub const MAX_SUMS_BYTES: u64 = 1 << 20;
pub const MAX_SIGNATURE_BYTES: u64 = 64 << 10;
/// compat.json, SBOMs, the notes.
pub const MAX_DOCUMENT_BYTES: u64 = 16 << 20;
/// An archive whose size compat.json does not give (the largest plugin,
/// libtpu, is under 500 MB).
pub const MAX_ARCHIVE_BYTES: u64 = 8 << 30;

#[derive(Debug, clap::Args)]
#[command(
    about = "Check a release: the signature of SHA256SUMS and its tag, every file, compat.json",
    long_about = "Check a release directory (dist/ as `release` wrote it) or its URL (the directory the assets are \
downloaded from, e.g. https://github.com/OWNER/pjrtpkgs/releases/download/v0.93.1/; GitHub's redirects to its asset \
host are followed): verify SHA256SUMS.minisig over SHA256SUMS with the minisign public key (--public-key, else \
[release] minisign_public_key of pins.toml) and that the signed trusted comment names the tag the release is served \
under (from the URL, or --tag: a complete older release, or a .dev pre-release, served under another tag is refused); \
then the sha256 of every file SHA256SUMS lists (hashed while streaming, never kept); in a directory, every other file \
is a problem too (only SHA256SUMS and its signature are not listed); and compat.json must follow its schema and agree \
with SHA256SUMS.\n\n\
Every read is bounded: SHA256SUMS, its signature, compat.json, the SBOMs and the notes have size caps and must arrive \
within 2x --http-timeout; an archive may not exceed the size compat.json gives and must keep moving.\n\n\
The same checks with standard tools: `minisign -Vm SHA256SUMS -P KEY` (then read the trusted comment) and \
`sha256sum -c SHA256SUMS`.",
    after_help = "Examples:\n  cargo xtask release verify dist --tag v0.93.1\n  cargo xtask release verify https://github.com/OWNER/pjrtpkgs/releases/download/v0.93.1/ --json\n  \
cargo xtask release verify dist --public-key ~/.cache/pjrtpkgs/keys/pjrtpkgs-release.pub\n\n\
Exit status: 0 signature, tag, files and compat.json good; 2 problems (each one printed); 1 error (cannot read the \
release, no public key, --tag contradicts the URL)."
)]
pub struct Args {
    /// The release: a directory, or an http(s):// or file:// URL of one.
    #[arg(value_name = "DIR-or-URL")]
    pub source: String,
    /// minisign public key: the base64 line (RW...) or a .pub file [default: pins.toml [release] minisign_public_key]
    #[arg(long, value_name = "KEY")]
    pub public_key: Option<String>,
    /// Check a release made with `release --unsigned` (no signature; the tag is then checked against compat.json).
    #[arg(long, conflicts_with = "public_key")]
    pub unsigned: bool,
    /// The tag the release must be [default: the tag in the URL (…/releases/download/TAG/); none for a directory]
    #[arg(long, value_name = "TAG")]
    pub tag: Option<String>,
    /// Print a JSON report on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub source: String,
    /// The tag the release was checked against (URL or --tag), if any.
    pub expected_tag: Option<String>,
    /// The tag the release says it is (signed trusted comment, else compat.json).
    pub tag: Option<String>,
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

/// The most files a `SHA256SUMS` may list (a release has a few dozen).
pub const MAX_LISTED: usize = 1000;

/// Whether `name` is one a release can have: letters, digits, `.`, `_`,
/// `-`, `+`, not starting with `.`.
pub fn is_release_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name.len() <= 200
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-+".contains(&b))
}

/// What the release URL says about the tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrlTag {
    /// `…/releases/download/TAG/`, or a last segment that is a tag.
    Tag(String),
    /// `…/releases/latest/download/`: GitHub's latest release, never a pre-release.
    Latest,
    None,
}

/// The tag in a release URL's path segments.
pub fn url_tag(segments: &[String]) -> UrlTag {
    if let Some(i) = segments.iter().position(|s| s == "releases") {
        match (segments.get(i + 1).map(String::as_str), segments.get(i + 2)) {
            (Some("download"), Some(tag)) => return UrlTag::Tag(tag.clone()),
            (Some("latest"), _) => return UrlTag::Latest,
            _ => {}
        }
    }
    match segments.last() {
        Some(last) if ReleaseVersion::parse_tag(last).is_some() => UrlTag::Tag(last.clone()),
        _ => UrlTag::None,
    }
}

/// The tag a trusted comment signs: `pjrtpkgs <tag> SHA256SUMS`.
pub fn signed_tag(comment: &str) -> Option<String> {
    let mut words = comment.split(' ');
    match (words.next(), words.next(), words.next(), words.next()) {
        (Some("pjrtpkgs"), Some(tag), Some(file), None) if file == sums::FILE && ReleaseVersion::parse_tag(tag).is_some() => {
            Some(tag.to_owned())
        }
        _ => None,
    }
}

/// The public key `verify` uses: `--public-key`, else pins.toml's.
pub fn public_key(given: Option<&str>) -> Result<minisign::PublicKey> {
    let text = match given {
        Some(k) => k.to_owned(),
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
    sign::load_public_key(&text)
}

pub fn run(args: Args) -> Result<ExitCode> {
    let key = if args.unsigned { None } else { Some(public_key(args.public_key.as_deref())?) };
    let report = verify(&args.source, key.as_ref(), args.tag.as_deref())?;
    if args.json {
        crate::output::emit(&format!("{}\n", serde_json::to_string_pretty(&report)?))?;
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
        if let (Some(tag), None, true) = (&report.tag, &report.expected_tag, report.ok) {
            eprintln!("note: this is release {tag}; pass --tag {tag} to refuse anything else (a directory does not say which tag it is)");
        }
        let as_tag = report.tag.as_deref().map(|t| format!(" as {t}")).unwrap_or_default();
        eprintln!("{}: {}", report.source, if report.ok { format!("verified{as_tag}") } else { "NOT verified".to_owned() });
    }
    Ok(if report.ok { ExitCode::SUCCESS } else { ExitCode::from(EXIT_PROBLEMS) })
}

/// Checks the release at `source`; `key` None checks an unsigned release
/// (its tag then from compat.json); `tag` is the tag it must be (else the
/// URL's, if it names one).
pub fn verify(source: &str, key: Option<&minisign::PublicKey>, tag: Option<&str>) -> Result<Report> {
    let release = Release::open(source)?;
    let mut report = Report { source: release.location(), ..Default::default() };
    let from_url = url_tag(&release.url_segments());
    let expected = match (tag, &from_url) {
        (Some(t), UrlTag::Tag(u)) if t != u => bail!("--tag {t} contradicts the URL, which names {u}"),
        (Some(t), _) => Some(t.to_owned()),
        (None, UrlTag::Tag(u)) => Some(u.clone()),
        (None, _) => None,
    };
    if let Some(t) = &expected {
        if ReleaseVersion::parse_tag(t).is_none() {
            bail!("`{t}` is not a release tag (v<major>.<minor>.<build>, or ….devYYYYMMDD)");
        }
    }
    report.expected_tag = expected.clone();
    let done = |mut report: Report| {
        report.ok = report.problems.is_empty();
        Ok(report)
    };

    // SHA256SUMS: everything else hangs on it.
    let sums_bytes = match release.read_small(sums::FILE, MAX_SUMS_BYTES) {
        Ok(Some(b)) => b,
        Ok(None) => bail!("{} does not exist: not a release", release.describe(sums::FILE)),
        Err(FetchError::Refused(m)) => {
            report.problems.push(m);
            return done(report);
        }
        Err(FetchError::Failed(e)) => return Err(e),
    };
    let listed = match std::str::from_utf8(&sums_bytes).map_err(|_| anyhow::anyhow!("is not UTF-8 text")).and_then(sums::parse) {
        Ok(l) => l,
        Err(e) => {
            report.problems.push(format!("{}: {e:#}", release.describe(sums::FILE)));
            return done(report);
        }
    };
    if listed.len() > MAX_LISTED {
        report.problems.push(format!("{} lists {} files; a release has at most {MAX_LISTED}: refused", sums::FILE, listed.len()));
        return done(report);
    }
    let listed_map: BTreeMap<String, String> = listed.iter().cloned().collect();
    if listed_map.len() != listed.len() {
        report.problems.push(format!("{} lists a file twice", sums::FILE));
    }
    // Names become URLs and paths: only the characters release names use.
    let (listed, odd): (Vec<_>, Vec<_>) = listed.into_iter().partition(|(name, _)| is_release_name(name));
    for (name, _) in odd {
        report.problems.push(format!("{} lists `{}`, which is not a release file name", sums::FILE, super::fetch::shown(&name)));
    }

    // The signature, and the tag it binds.
    let sig_name = sign::signature_name(sums::FILE);
    if let Some(key) = key {
        report.key_id = Some(sign::key_id(key));
        match release.read_small(&sig_name, MAX_SIGNATURE_BYTES) {
            Ok(None) => report.problems.push(format!("{sig_name} is missing: the release is not signed")),
            Err(FetchError::Refused(m)) => report.problems.push(m),
            Err(FetchError::Failed(e)) => return Err(e),
            Ok(Some(sig)) => match sign::verify(key, &String::from_utf8_lossy(&sig), &sums_bytes) {
                Err(e) => report.problems.push(format!("{sig_name} does not verify {} with key {}: {e:#}", sums::FILE, sign::key_id(key))),
                Ok(comment) => {
                    match signed_tag(&comment) {
                        None => report.problems.push(format!(
                            "the signed trusted comment `{}` does not name a release (`pjrtpkgs <tag> {}`)",
                            super::fetch::shown(&comment),
                            sums::FILE
                        )),
                        Some(signed) => {
                            tag_problems(&mut report.problems, &signed, expected.as_deref(), &from_url, "the signature");
                            report.tag = Some(signed);
                        }
                    }
                    report.trusted_comment = Some(comment);
                }
            },
        }
    }

    // Every listed file, compat.json first: it gives the archives' sizes.
    let mut compat: Option<Compat> = None;
    let mut order: Vec<&(String, String)> = listed.iter().collect();
    order.sort_by_key(|(name, _)| name != compat::FILE);
    for (name, want) in order {
        if name == &sig_name || name == sums::FILE {
            report.problems.push(format!("{} lists {name}, which cannot be listed in itself", sums::FILE));
            continue;
        }
        let (got, bytes) = match hash_file(&release, name, compat.as_ref()) {
            Ok(Some(found)) => found,
            Ok(None) => {
                report.problems.push(format!("{name} is listed in {} but missing", sums::FILE));
                report.files.push(FileCheck { name: name.clone(), sha256: want.clone(), ok: false });
                continue;
            }
            Err(FetchError::Refused(m)) => {
                report.problems.push(m);
                report.files.push(FileCheck { name: name.clone(), sha256: want.clone(), ok: false });
                continue;
            }
            Err(FetchError::Failed(e)) => return Err(e),
        };
        let ok = &got == want;
        if !ok {
            report.problems.push(format!("{name}: sha256 {got}, but {} says {want}", sums::FILE));
        } else if name == compat::FILE {
            match Compat::parse(&bytes.unwrap_or_default()) {
                Ok(c) => compat = Some(c),
                Err(e) => report.problems.push(format!("{} {e}", release.describe(name))),
            }
        }
        report.files.push(FileCheck { name: name.clone(), sha256: want.clone(), ok });
    }
    report.files.sort_by(|a, b| a.name.cmp(&b.name));

    // The feed: present, and in agreement with SHA256SUMS and the tag.
    match &compat {
        Some(c) => {
            // Signed: compat.json must name the signed tag. Unsigned: its tag
            // is what the release says it is, checked against the expected one.
            report.problems.extend(c.problems(&listed_map, if key.is_some() { report.tag.as_deref() } else { None }));
            if key.is_none() {
                tag_problems(&mut report.problems, &c.release.tag, expected.as_deref(), &from_url, compat::FILE);
                report.tag = Some(c.release.tag.clone());
            }
        }
        None if !listed_map.contains_key(compat::FILE) => {
            report.problems.push(format!("{} does not list {}: a release carries its compatibility feed", sums::FILE, compat::FILE))
        }
        None => {}
    }
    if !listed_map.contains_key(super::NOTES_FILE) {
        report.problems.push(format!(
            "{} does not list {}: the notes carry instructions and checksums, and must be signed",
            sums::FILE,
            super::NOTES_FILE
        ));
    }

    // A directory holds nothing else.
    if let Some(entries) = release.entries() {
        for (name, kind) in entries? {
            let is_signature = name == sig_name;
            if name == sums::FILE
                || (is_signature && kind == EntryKind::File)
                || (listed_map.contains_key(&name) && kind == EntryKind::File)
            {
                continue;
            }
            match kind {
                // Listed but not a file: already a problem above.
                EntryKind::Other(_) if listed_map.contains_key(&name) || is_signature => {}
                EntryKind::Other(what) => {
                    report.problems.push(format!("{} is {what} that {} does not list", release.describe(&name), sums::FILE))
                }
                EntryKind::File => report.problems.push(format!(
                    "{} is not listed in {}: nothing signs it (a release holds only what SHA256SUMS lists, SHA256SUMS and its signature)",
                    release.describe(&name),
                    sums::FILE
                )),
            }
        }
    }
    done(report)
}

/// Problems of the tag a release says it is (`said`, by `by`) against what
/// it was expected to be.
fn tag_problems(problems: &mut Vec<String>, said: &str, expected: Option<&str>, from_url: &UrlTag, by: &str) {
    if let Some(expected) = expected.filter(|e| *e != said) {
        let dev = ReleaseVersion::parse_tag(said).is_some_and(|v| v.dev.is_some());
        problems.push(format!(
            "{by} is for release {said}, but it is served as {expected}{}: refused (a release replayed under another tag)",
            if dev { " (a pre-release)" } else { "" }
        ));
    }
    if *from_url == UrlTag::Latest && ReleaseVersion::parse_tag(said).is_some_and(|v| v.dev.is_some()) {
        problems.push(format!("{by} is for the pre-release {said}, served as the latest release"));
    }
}

/// A file as read: its sha256, and its bytes when it is a small document
/// (kept for compat.json).
type Hashed = (String, Option<Vec<u8>>);

/// The sha256 of `name` as read (see [`Hashed`]).
fn hash_file(release: &Release, name: &str, compat: Option<&Compat>) -> Result<Option<Hashed>, FetchError> {
    if !name.ends_with(".tar.gz") {
        let Some(bytes) = release.read_small(name, MAX_DOCUMENT_BYTES)? else { return Ok(None) };
        let mut hashing = crate::hashing::Hashing::new(std::io::sink());
        std::io::Write::write_all(&mut hashing, &bytes).expect("a sink does not fail");
        return Ok(Some((hashing.finish().0.to_hex(), Some(bytes))));
    }
    let cap = compat.and_then(|c| c.archives.iter().find(|a| a.file == name)).map_or(MAX_ARCHIVE_BYTES, |a| a.size);
    let Some(mut reader) = release.stream(name, cap)? else { return Ok(None) };
    let bar = crate::progress::bytes_bar(format!("checking {name}"), None);
    let mut hashing = crate::hashing::Hashing::new(std::io::sink());
    let copied = std::io::copy(&mut bar.wrap_read(&mut reader), &mut hashing);
    bar.finish_and_clear();
    copied.map_err(|e| release.read_failure(name, e, false))?;
    Ok(Some((hashing.finish().0.to_hex(), None)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_in_urls_and_comments() {
        let seg = |url: &str| url.split('/').filter(|s| !s.is_empty()).map(str::to_owned).collect::<Vec<_>>();
        assert_eq!(url_tag(&seg("o/pjrtpkgs/releases/download/v0.93.1")), UrlTag::Tag("v0.93.1".into()));
        assert_eq!(url_tag(&seg("o/pjrtpkgs/releases/latest/download")), UrlTag::Latest);
        assert_eq!(url_tag(&seg("mirror/v0.93.2.dev20260301")), UrlTag::Tag("v0.93.2.dev20260301".into()));
        assert_eq!(url_tag(&seg("mirror/files")), UrlTag::None);
        assert_eq!(signed_tag("pjrtpkgs v0.93.1 SHA256SUMS").as_deref(), Some("v0.93.1"));
        assert!(is_release_name("pjrt-cpu-linux-x86_64-v0.93.1.tar.gz") && is_release_name("compat.json"));
        for bad in ["", ".hidden", "a?b", "a#b", "a%2e", "a b", "a\nb", "ä"] {
            assert!(!is_release_name(bad), "{bad:?}");
        }
        for bad in ["pjrtpkgs v0.93.1 SHA256SUMS extra", "other v0.93.1 SHA256SUMS", "pjrtpkgs 0.93.1 SHA256SUMS", "timestamp:1 file:x"] {
            assert_eq!(signed_tag(bad), None, "{bad}");
        }
    }
}
