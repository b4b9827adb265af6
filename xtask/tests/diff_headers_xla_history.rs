//! diff-headers against real XLA history: for every PJRT minor-version bump
//! since 2024, the symbols `xla/pjrt/c/CHANGELOG.md` names for that version
//! must show up in the diff of the bump commit against its parent.
//!
//! Needs `XLA_REPO` (a clone of openxla/xla, bare or not). Outside CI a
//! missing one skips; under `CI=true` it fails unless
//! `PJRTPKGS_SKIP_XLA_HISTORY` gives the reason it may be skipped.

mod support;

use std::collections::BTreeSet;

use git2::{Oid, Repository};
use xtask::header_diff;

/// Commits of the default branch that changed `#define PJRT_API_MINOR`,
/// newest first, committed on or after `since` (YYYY-MM-DD).
fn minor_bumps(repo: &std::path::Path, branch: &str, since: &str) -> Vec<Oid> {
    let log = support::git(
        repo,
        &["log", "--first-parent", "--format=%H %cs", "-G#define PJRT_API_MINOR", branch, "--", "xla/pjrt/c/pjrt_c_api.h"],
    );
    log.lines().filter_map(|l| l.split_once(' ')).filter(|(_, date)| *date >= since).map(|(sha, _)| Oid::from_str(sha).unwrap()).collect()
}

fn read(repo: &Repository, commit: Oid, path: &str) -> Option<String> {
    let entry = repo.find_commit(commit).ok()?.tree().ok()?.get_path(std::path::Path::new(path)).ok()?;
    Some(String::from_utf8_lossy(repo.find_blob(entry.id()).ok()?.content()).into_owned())
}

/// The body of `## 0.<minor>` in CHANGELOG.md.
fn changelog_section(changelog: &str, version: &str) -> Option<String> {
    let heading = format!("## {version}");
    let start = changelog.lines().position(|l| l.trim() == heading)?;
    Some(changelog.lines().skip(start + 1).take_while(|l| !l.starts_with("## ")).collect::<Vec<_>>().join("\n"))
}

/// Identifiers a CHANGELOG entry names: words with an underscore, inner
/// capitals (`GetMemorySpaceKindIds`) or capitals with digits (`F6E2M3FN`).
fn identifiers(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.len() > 2 && !w.starts_with(|c: char| c.is_ascii_digit()))
        .filter(|w| {
            let inner_capital = w.chars().skip(1).any(|c| c.is_ascii_uppercase()) && w.chars().any(|c| c.is_ascii_lowercase());
            let caps_digits = w.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit()) && w.chars().any(|c| c.is_ascii_digit());
            (w.contains('_') && w.trim_matches('_').len() > 1) || inner_capital || caps_digits
        })
        .map(str::to_string)
        .collect()
}

fn public_header_text(repo: &Repository, commit: Oid) -> String {
    xtask::xla_headers::public_headers(repo, commit)
        .map(|hs| hs.into_iter().map(|h| String::from_utf8_lossy(&h.contents).into_owned()).collect::<Vec<_>>().join("\n"))
        .unwrap_or_default()
}

#[test]
fn changelog_symbols_appear_in_bump_diffs() {
    let Some(dir) = support::xla_repo() else { return };
    if !support::require_libclang() {
        return;
    }
    let repo = Repository::open(&dir).expect("XLA_REPO opens");
    // Upstream's main branch when the clone has it (HEAD may be elsewhere).
    let branch = ["refs/heads/main", "refs/remotes/origin/main"].into_iter().find(|r| repo.find_reference(r).is_ok()).unwrap_or("HEAD");
    let git_dir = repo.path().to_path_buf();
    let bumps = minor_bumps(&git_dir, branch, "2024-01-01");
    assert!(!bumps.is_empty(), "no PJRT_API_MINOR bump since 2024 in {}", dir.display());
    let (mut checked, mut matched, mut failures) = (0, 0, Vec::new());
    let mut explained = Vec::new();
    for bump in bumps {
        let parent = repo.find_commit(bump).unwrap().parent_id(0).unwrap();
        let report = match header_diff::diff_commits(&repo, parent, bump) {
            Ok(report) => report,
            Err(e) => {
                failures.push(format!("{bump}: diff failed: {e:#}"));
                continue;
            }
        };
        let (Some(old), Some(new)) = (report.old_api_version(), report.new_api_version()) else {
            failures.push(format!("{bump}: no API version found"));
            continue;
        };
        let minor = |v: &str| v.split('.').nth(1).and_then(|m| m.parse::<u32>().ok()).unwrap_or(0);
        if minor(&new) <= minor(&old) {
            explained.push(format!("{bump}: {old} -> {new} is not a bump (revert or merge), skipped"));
            continue;
        }
        let Some(section) = read(&repo, bump, "xla/pjrt/c/CHANGELOG.md").and_then(|c| changelog_section(&c, &new)) else {
            explained.push(format!("{bump}: CHANGELOG.md has no section for {new}"));
            continue;
        };
        checked += 1;
        let haystack: String = report.changes.iter().map(|c| format!("{} {} {}\n", c.header, c.name, c.detail)).collect();
        let (old_text, new_text) = (public_header_text(&repo, parent), public_header_text(&repo, bump));
        let missing: Vec<String> = identifiers(&section).into_iter().filter(|id| !haystack.contains(id.as_str())).collect();
        if missing.is_empty() {
            matched += 1;
            continue;
        }
        // A named symbol that is new in the headers' text must be in the
        // diff; one that is not new was not added by this commit (the entry
        // describes C++ API, prose, or a change that landed separately).
        let really_missed: Vec<&String> =
            missing.iter().filter(|id| new_text.contains(id.as_str()) && !old_text.contains(id.as_str())).collect();
        if really_missed.is_empty() {
            explained
                .push(format!("{bump} ({new}): CHANGELOG names {missing:?}, none of which is new in the public headers of this commit"));
        } else {
            failures.push(format!("{bump} ({new}): {really_missed:?} are new in the headers but not in the diff:\n{}", report.to_text()));
        }
    }
    println!(
        "PJRT minor bumps on {branch} since 2024: {checked} checked against CHANGELOG.md, {matched} with every named symbol in the diff"
    );
    for e in &explained {
        println!("  explained: {e}");
    }
    assert!(failures.is_empty(), "{} failure(s):\n{}", failures.len(), failures.join("\n"));
    assert!(checked > 0);
}

/// PJRT 0.47 -> 0.50 (2024): `PJRT_HostBufferSemantics_kZeroCopy` became
/// `kImmutableZeroCopy` (same value 2) and `PJRT_Memory_Kind_Args`'
/// `memory_kind`/`memory_kind_size` became `kind`/`kind_size` (same offsets
/// and types): renames, source-breaking but ABI-compatible.
#[test]
fn renames_between_0_47_and_0_50_keep_the_abi() {
    let Some(dir) = support::xla_repo() else { return };
    if !support::require_libclang() {
        return;
    }
    const OLD: &str = "3c8260f614901f5cf2dd81530e009db8e6c9789b";
    const NEW: &str = "e715c172bd3fd4421f9e45993c6814e8119c1c20";
    let repo = Repository::open(&dir).expect("XLA_REPO opens");
    let report = header_diff::diff_commits(&repo, Oid::from_str(OLD).unwrap(), Oid::from_str(NEW).unwrap()).expect("0.47 -> 0.50 diffs");
    let renamed: Vec<(Option<&str>, &str)> = report
        .changes
        .iter()
        .filter(|c| c.change == header_diff::ChangeKind::Renamed)
        .map(|c| (c.old_name.as_deref(), c.name.as_str()))
        .collect();
    assert_eq!(
        renamed,
        [
            (
                Some("PJRT_HostBufferSemantics.PJRT_HostBufferSemantics_kZeroCopy"),
                "PJRT_HostBufferSemantics.PJRT_HostBufferSemantics_kImmutableZeroCopy"
            ),
            (Some("PJRT_Memory_Kind_Args.memory_kind"), "PJRT_Memory_Kind_Args.kind"),
            (Some("PJRT_Memory_Kind_Args.memory_kind_size"), "PJRT_Memory_Kind_Args.kind_size"),
        ],
        "{}",
        report.to_text()
    );
    assert!(report.changes.iter().all(|c| c.change != header_diff::ChangeKind::Removed), "{}", report.to_text());
    assert!(report
        .changes
        .iter()
        .filter(|c| c.change == header_diff::ChangeKind::Renamed)
        .all(|c| c.abi == Some(header_diff::Abi::Compatible)));
    assert_eq!(report.verdict(), header_diff::Verdict::Breaking);
    assert_eq!(report.abi_verdict(), header_diff::AbiVerdict::Compatible);
    let text = report.to_text();
    assert!(
        text.contains(
            "renamed memory_kind -> kind (ABI-compatible: same offset/type, const char * at offset 24, 8 bytes; source-breaking)"
        ),
        "{text}"
    );
    assert!(text.contains("breaking for source, ABI-compatible"), "{text}");
}
