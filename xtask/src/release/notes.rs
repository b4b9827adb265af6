//! Release notes in Markdown: what is in the release, how to check it, the
//! PJRT header diff since the previous release (its verdict first) and the
//! CHANGELOG entries added since then.
//!
//! The previous release is the newest tag `vMAJOR.MINOR.BUILD` of the
//! pjrtpkgs repository older than this one (or `--previous TAG`); its
//! pins.toml gives the XLA commit to diff against, its CHANGELOG.md the
//! entries that were already released.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use git2::Repository;

use super::version::ReleaseVersion;

/// The release before this one, as the pjrtpkgs history records it.
pub struct Previous {
    pub tag: String,
    pub xla_commit: Option<String>,
    pub changelog: String,
}

/// `requested`: `--previous` (a tag, or `none`); else the newest older tag.
pub fn previous(root: &Path, current: &ReleaseVersion, requested: Option<&str>) -> Result<Option<Previous>> {
    if requested == Some("none") {
        return Ok(None);
    }
    let repo = match Repository::open(root) {
        Ok(repo) => repo,
        Err(e) if requested.is_some() => bail!("cannot read the release tags: {} is not a git repository ({e})", root.display()),
        Err(_) => return Ok(None),
    };
    let tag = match requested {
        Some(tag) => tag.to_owned(),
        None => {
            let names = repo.tag_names(Some("v*")).context("cannot list the tags of the pjrtpkgs repository")?;
            let newest = names
                .iter_bytes()
                .filter_map(|t| std::str::from_utf8(t).ok())
                .filter_map(|t| ReleaseVersion::parse_tag(t).map(|v| (v, t.to_owned())))
                .filter(|(v, _)| v.dev.is_none() && (v.major, v.minor, v.build) < (current.major, current.minor, current.build))
                .max_by(|a, b| a.0.order(&b.0));
            match newest {
                Some((_, t)) => t,
                None => return Ok(None),
            }
        }
    };
    let commit = repo
        .revparse_single(&format!("refs/tags/{tag}"))
        .and_then(|o| o.peel_to_commit())
        .map_err(|e| anyhow!("no release tag `{tag}` in {}: {e}", root.display()))?;
    let tree = commit.tree()?;
    let read = |path: &str| -> Result<Option<String>> {
        let Ok(entry) = tree.get_path(Path::new(path)) else { return Ok(None) };
        let blob = repo.find_blob(entry.id()).with_context(|| format!("{path} at {tag} is missing"))?;
        Ok(Some(String::from_utf8_lossy(blob.content()).into_owned()))
    };
    let xla_commit = match read("pins.toml")? {
        Some(text) => {
            let table: toml::Table = text.parse().with_context(|| format!("pins.toml at {tag} is not TOML"))?;
            table.get("xla").and_then(|x| x.get("commit")).and_then(|c| c.as_str()).map(str::to_owned)
        }
        None => None,
    };
    let changelog = read("CHANGELOG.md")?.unwrap_or_default();
    Ok(Some(Previous { tag, xla_commit, changelog }))
}

/// The bullet entries of a keep-a-changelog file: (`### ` heading, entry
/// text with its continuation lines).
fn entries(changelog: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut heading = String::new();
    let mut current: Option<String> = None;
    let flush = |current: &mut Option<String>, heading: &str, out: &mut Vec<(String, String)>| {
        if let Some(entry) = current.take() {
            out.push((heading.to_owned(), entry.trim_end().to_owned()));
        }
    };
    for line in changelog.lines() {
        if let Some(h) = line.strip_prefix("### ") {
            flush(&mut current, &heading, &mut out);
            heading = h.trim().to_owned();
        } else if line.starts_with("## ") || line.starts_with("# ") {
            flush(&mut current, &heading, &mut out);
            heading.clear();
        } else if line.starts_with("- ") || line.starts_with("* ") {
            flush(&mut current, &heading, &mut out);
            current = Some(line.to_owned());
        } else if let Some(entry) = current.as_mut().filter(|_| line.starts_with(' ') && !line.trim().is_empty()) {
            entry.push('\n');
            entry.push_str(line);
        } else if line.trim().is_empty() {
            flush(&mut current, &heading, &mut out);
        }
    }
    flush(&mut current, &heading, &mut out);
    out
}

/// Entries of `current` that `previous` did not have, in file order.
pub fn new_entries(current: &str, previous: Option<&str>) -> Vec<(String, String)> {
    let known: std::collections::BTreeSet<String> = previous.map(entries).unwrap_or_default().into_iter().map(|(_, e)| e).collect();
    entries(current).into_iter().filter(|(_, e)| !known.contains(e)).collect()
}

/// Where an archive's plugin comes from.
pub enum Made {
    Source,
    /// `package` and `version` come from version_info.json: untrusted text.
    Wheel {
        package: String,
        version: String,
    },
}

/// One archive, as the notes list it.
pub struct ArchiveLine {
    pub file: String,
    pub sha256: String,
    pub backend: String,
    pub system: String,
    pub api_version: String,
    pub origin: Made,
    pub max_glibc: String,
}

/// `text` as plain text inside a Markdown table cell: every character that
/// means something inline in (GitHub) Markdown or HTML is escaped, so no
/// link, autolink, image, emphasis, code span, tag or cell break can be made
/// of it; line breaks (which would end the table and start a heading)
/// become spaces; it is cut at 100 characters.
pub fn escape(text: &str) -> String {
    // GitHub turns `https://x` and `www.x` into links by themselves.
    let lower = text.to_ascii_lowercase();
    let autolink = lower.contains("://") || lower.contains("www.") || lower.contains('@');
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if i == 100 {
            out.push('…');
            break;
        }
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '|' => out.push_str("&#124;"),
            c if c.is_control() || c == '\u{2028}' || c == '\u{2029}' => out.push(' '),
            c if "\\`*_{}[]()!~".contains(c) || (autolink && ".:@".contains(c)) => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

/// The header diff paragraph: verdict first.
pub struct HeaderDiff {
    pub old_commit: String,
    pub verdict: String,
    pub abi: String,
    pub markdown: String,
}

pub struct Notes<'a> {
    pub version: &'a ReleaseVersion,
    pub xla_commit: &'a str,
    pub xla_date: &'a str,
    pub xla_hash: &'a str,
    pub api_version: &'a str,
    pub floor: &'a str,
    pub archives: &'a [ArchiveLine],
    pub signed_by: Option<String>,
    pub previous: Option<&'a Previous>,
    pub header_diff: Option<HeaderDiff>,
    pub changes: Vec<(String, String)>,
}

pub fn render(n: &Notes) -> String {
    let mut md = String::new();
    let tag = n.version.tag();
    let _ = writeln!(md, "# pjrtpkgs {tag}\n");
    if n.version.dev.is_some() {
        let _ = writeln!(md, "A pre-release of build {}; not for production.\n", n.version.build);
    }
    let _ = writeln!(
        md,
        "PJRT plugins as plain archives, for everyone who does not use Nix. Built from XLA \
         [`{}`](https://github.com/openxla/xla/commit/{}) ({}, source hash `{}`), PJRT C API {}. Every plugin was checked \
         to need nothing newer than {} (glibc, libstdc++) and nothing outside the archive but the libraries such a system has.\n",
        &n.xla_commit[..12.min(n.xla_commit.len())],
        n.xla_commit,
        n.xla_date,
        n.xla_hash,
        n.api_version,
        n.floor
    );
    let _ = writeln!(md, "| archive | backend | platform | PJRT API | plugin from | needs at most | sha256 |");
    let _ = writeln!(md, "|---|---|---|---|---|---|---|");
    for a in n.archives {
        let origin = match &a.origin {
            Made::Source => "XLA source".to_owned(),
            Made::Wheel { package, version } => format!("wheel {} {}", escape(package), escape(version)),
        };
        let _ = writeln!(
            md,
            "| `{}` | {} | {} | {} | {origin} | {} | `{}` |",
            a.file,
            escape(&a.backend),
            escape(&a.system),
            escape(&a.api_version),
            escape(&a.max_glibc),
            a.sha256
        );
    }
    let _ = writeln!(
        md,
        "\nEach archive has a CycloneDX SBOM beside it (`<archive>.cdx.json`); `compat.json` describes every archive for \
         bindings (PJRT API version and struct size, extensions, StableHLO versions, conformance, what it needs to load). \
         `SHA256SUMS` lists every file, these notes included."
    );
    let _ = writeln!(md, "\n## Check before use\n");
    let _ = writeln!(md, "```sh\nsha256sum -c SHA256SUMS");
    match &n.signed_by {
        Some(key) => {
            let _ = writeln!(md, "minisign -Vm SHA256SUMS -P {key} | grep -Fx 'Trusted comment: pjrtpkgs {tag} SHA256SUMS'");
            let _ = writeln!(md, "gh attestation verify <archive> --repo <owner>/pjrtpkgs   # build provenance");
        }
        None => {
            let _ = writeln!(md, "# this release is not signed");
        }
    }
    let _ = writeln!(md, "# or both at once, from a checkout of pjrtpkgs:\ncargo xtask release verify https://github.com/<owner>/pjrtpkgs/releases/download/{tag}/\n```\n");

    let _ = writeln!(md, "## PJRT headers\n");
    match (&n.previous, &n.header_diff) {
        (None, _) => {
            let _ = writeln!(md, "First release: no previous release to compare with.\n");
        }
        (Some(p), None) => {
            let _ = writeln!(md, "Same XLA commit as {}: the headers are unchanged.\n", p.tag);
        }
        (Some(p), Some(d)) => {
            let _ = writeln!(
                md,
                "Since {} (XLA `{}`): **{}** (ABI: {}).\n\n<details><summary>The full diff</summary>\n\n{}\n</details>\n",
                p.tag,
                &d.old_commit[..12.min(d.old_commit.len())],
                d.verdict,
                d.abi,
                d.markdown.trim_end()
            );
        }
    }

    let _ = writeln!(md, "## Changes\n");
    if n.changes.is_empty() {
        let _ = writeln!(md, "No CHANGELOG entries since {}.", n.previous.map_or("the start", |p| p.tag.as_str()));
    } else {
        let mut last: Option<&str> = None;
        for (heading, entry) in &n.changes {
            if last != Some(heading.as_str()) {
                let _ =
                    writeln!(md, "{}### {}\n", if last.is_some() { "\n" } else { "" }, if heading.is_empty() { "Other" } else { heading });
                last = Some(heading);
            }
            let _ = writeln!(md, "{entry}");
        }
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaped_text_makes_no_markdown() {
        let hostile = "x](https://evil.example) | ![i](u)\n# H <script>`c`</script> *e* _u_ ~s~ 1. a\\b";
        let e = escape(hostile);
        assert!(!e.contains('\n') && !e.contains("](") && !e.contains('<') && !e.contains(" | ") && !e.contains("\n#"), "{e}");
        assert_eq!(escape("jax-cuda12-pjrt 0.12.0.1"), "jax-cuda12-pjrt 0.12.0.1");
        assert!(!escape("see https://evil.example").contains("https://"));
        assert_eq!(escape(&"a".repeat(200)).chars().count(), 101);
    }

    #[test]
    fn changelog_entries_since() {
        let old = "# Changelog\n\n## Unreleased\n\n### Added\n- a thing\n  over two lines\n- b\n";
        let new = "# Changelog\n\n## Unreleased\n\n### Fixed\n- c fixed\n\n### Added\n- a thing\n  over two lines\n- b\n- d\n  more\n";
        let got = new_entries(new, Some(old));
        assert_eq!(got, vec![("Fixed".to_owned(), "- c fixed".to_owned()), ("Added".to_owned(), "- d\n  more".to_owned())]);
        assert_eq!(new_entries(new, None).len(), 4);
    }
}
