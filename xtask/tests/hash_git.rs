//! `hash git` against `git archive COMMIT | tar -x` hashed by `nix hash path`,
//! on generated repositories and on real XLA history (XLA_REPO).

mod support;

use std::path::Path;
use std::process::{Command, Stdio};

use support::hash::{git_archive_tree, nix_hash_path, run_xtask, write};
use support::{git, require_command, require_nix, xla_repo};
use xtask::hashing::git::hash_commit;

/// A repository exercising every git mode and the git/NAR order difference.
fn make_repo(dir: &Path) -> String {
    let work = dir.join("work");
    support::hash::edge_case_tree(&work);
    git(&work, &["init", "-q"]);
    git(&work, &["add", "-A"]);
    // A submodule entry (gitlink) without a .gitmodules: git archive writes
    // an empty directory for it.
    git(&work, &["update-index", "--add", "--cacheinfo", "160000,1111111111111111111111111111111111111111,vendor/sub"]);
    git(&work, &["commit", "-q", "-m", "edge cases"]);
    // Empty trees, nested (git cannot stage them; built by hand): git
    // archive leaves them out.
    let head_tree = git(&work, &["rev-parse", "HEAD^{tree}"]);
    let empty = git(&work, &["hash-object", "-t", "tree", "-w", "/dev/null"]);
    let listing = git(&work, &["ls-tree", &head_tree]);
    let nested = mktree(&work, &format!("040000 tree {empty}\tinner\n"));
    let with_empty = format!("{listing}\n040000 tree {empty}\tzz-empty-tree\n040000 tree {nested}\tzz-nested-empty\n");
    let tree = mktree(&work, &with_empty);
    git(&work, &["commit-tree", &tree, "-p", "HEAD", "-m", "with an empty tree"])
}

fn mktree(work: &Path, listing: &str) -> String {
    let mut child = Command::new("git").arg("-C").arg(work).arg("mktree").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(listing.as_bytes()).unwrap();
    String::from_utf8(child.wait_with_output().unwrap().stdout).unwrap().trim().to_string()
}

#[test]
fn generated_repo_matches_git_archive_hashed_by_nix() {
    if !require_nix() || !require_command("git") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let commit = make_repo(tmp.path());
    let work = tmp.path().join("work");
    let expected = nix_hash_path(&git_archive_tree(&work, &commit, tmp.path()), None);

    let repo = git2::Repository::open(&work).unwrap();
    let oid = git2::Oid::from_str(&commit).unwrap();
    assert_eq!(hash_commit(&repo, oid).unwrap().to_sri(), expected, "work tree");

    // A bare clone, through the CLI, with each spelling of the option.
    let bare = tmp.path().join("bare.git");
    let status = Command::new("git").args(["clone", "-q", "--bare"]).arg(&work).arg(&bare).status().unwrap();
    assert!(status.success());
    git(&work, &["push", "-q", bare.to_str().unwrap(), &format!("{commit}:refs/heads/edge")]);
    let bare_s = bare.to_str().unwrap();
    assert_eq!(run_xtask(["hash", "git", &commit, "--repo", bare_s]).unwrap(), expected);
    assert_eq!(run_xtask(["hash", "git", "edge", "--xla-repo", bare_s]).unwrap(), expected);
    let short = &commit[..12];
    let json: serde_json::Value = serde_json::from_str(&run_xtask(["hash", "git", short, "--repo", bare_s, "--json"]).unwrap()).unwrap();
    assert_eq!(json["sri"], expected.as_str());
    assert_eq!(json["commit"], commit.as_str());
    assert_eq!(
        run_xtask(["hash", "git", &commit, "--repo", bare_s, "--base32"]).unwrap(),
        nix_hash_path(&git_archive_tree(&bare, &commit, tmp.path()), Some("--base32"))
    );
}

#[test]
fn missing_blob_is_named_with_its_path() {
    if !require_command("git") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().join("work");
    write(&work.join("kept.txt"), b"kept\n", 0o644);
    write(&work.join("dir/lost.bin"), b"this blob will be deleted\n", 0o644);
    git(&work, &["init", "-q"]);
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-q", "-m", "one"]);
    let commit = git(&work, &["rev-parse", "HEAD"]);
    let blob = git(&work, &["rev-parse", "HEAD:dir/lost.bin"]);
    std::fs::remove_file(work.join(".git/objects").join(&blob[..2]).join(&blob[2..])).unwrap();

    let err = run_xtask(["hash", "git", &commit, "--repo", work.to_str().unwrap()]).unwrap_err();
    assert!(err.contains(&blob), "error does not name the missing blob: {err}");
    assert!(err.contains("dir/lost.bin"), "error does not name the path: {err}");
    assert!(err.contains("missing"), "{err}");

    let repo = git2::Repository::open(&work).unwrap();
    assert!(hash_commit(&repo, git2::Oid::from_str(&commit).unwrap()).is_err());
}

#[test]
fn export_attributes_are_refused() {
    if !require_command("git") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().join("work");
    write(&work.join(".gitattributes"), b"secret export-ignore\n", 0o644);
    write(&work.join("secret"), b"not in archives\n", 0o644);
    git(&work, &["init", "-q"]);
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-q", "-m", "one"]);
    let err = run_xtask(["hash", "git", "HEAD", "--repo", work.to_str().unwrap()]).unwrap_err();
    assert!(err.contains("export-ignore"), "{err}");
}

/// A complete early-2024 XLA commit (every object present in the mirror).
const XLA_COMPLETE: &str = "5ce09776d0765b188e9a4cffcaf874df1b4dcd66";
/// A 2026 XLA commit whose mirror copy lacks large blobs.
const XLA_INCOMPLETE: &str = "84938591e04575f91e13bef13eb736bf475b7cd2";

#[test]
fn xla_complete_commit_matches_git_archive_hashed_by_nix() {
    let Some(xla) = xla_repo() else { return };
    if !require_nix() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let repo = xtask::xla_repo::open(&xla).unwrap();
    let expected = nix_hash_path(&git_archive_tree(repo.path(), XLA_COMPLETE, tmp.path()), None);
    let got = hash_commit(&repo, git2::Oid::from_str(XLA_COMPLETE).unwrap()).unwrap();
    assert_eq!(got.to_sri(), expected);
}

#[test]
fn xla_incomplete_commit_names_a_really_missing_object() {
    let Some(xla) = xla_repo() else { return };
    let err = run_xtask(["hash", "git", XLA_INCOMPLETE, "--repo", xla.to_str().unwrap()]).unwrap_err();
    assert!(err.contains("missing"), "{err}");
    // The object named must really be absent (git agrees), and its path real.
    let id = err
        .split_whitespace()
        .find(|w| w.len() == 40 && w.bytes().all(|b| b.is_ascii_hexdigit()))
        .unwrap_or_else(|| panic!("no object id in: {err}"));
    let check = Command::new("git").arg("-C").arg(&xla).args(["cat-file", "-e", id]).status().unwrap();
    assert!(!check.success(), "git has {id}, which we called missing");
    let path = err.split('`').nth(1).unwrap_or_else(|| panic!("no path in: {err}"));
    let listed = git(&xla, &["rev-parse", &format!("{XLA_INCOMPLETE}:{path}")]);
    assert_eq!(listed, id, "{path} is not {id} in {XLA_INCOMPLETE}");
}
