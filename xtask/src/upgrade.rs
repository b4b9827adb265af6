//! `cargo xtask upgrade-xla COMMIT`: the whole XLA upgrade, all or nothing.
//!
//! Steps: resolve the commit, hash its tree, read the versions it pins,
//! diff the PJRT headers, edit pins.toml, (with `--nix`) refresh the Bazel
//! dependency hashes, regenerate and compile the bindings, write the report
//! and the changelog entry — every write staged in memory and committed
//! together at the end ([`staging`]), so a failure anywhere leaves the
//! project as it was.

mod bazelrc;
mod compile;
mod peers;
mod report;
mod review;
mod staging;
mod versions;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use git2::{Oid, Repository};

use crate::xla_repo::{open_for, resolve_commit, XlaRepoArg};
use peers::XlaPin;
use staging::{Change, Staged};

/// Testing hook: the step at which to inject a failure. Honoured only in
/// debug builds (tests), never in a release build.
pub const FAIL_AT_ENV: &str = "PJRTPKGS_UPGRADE_FAIL_AT";

/// Step names, in order, as `PJRTPKGS_UPGRADE_FAIL_AT` accepts them.
pub const STEPS: &[&str] = &["resolve", "hash", "versions", "diff", "pins", "nix", "bindings", "compile", "report", "commit"];

#[derive(Debug, clap::Args)]
#[command(
    about = "The whole XLA upgrade in one command, all or nothing",
    long_about = "Upgrade the pinned XLA commit, all or nothing.\n\n\
Resolves COMMIT in the XLA repository, computes its source hash from git objects (the hash \
fetchFromGitHub checks), reads the PJRT API version, .bazelversion and the hermetic CUDA / cuDNN / \
NCCL / NVSHMEM versions and ROCm distribution XLA's bazelrc configs pin, diffs the PJRT headers \
(verdict first: a breaking change is a loud warning), updates pins.toml ([xla], and [toolchains.bazel] \
version within the same Bazel major) and marks every Bazel dependency hash stale, regenerates \
crates/pjrt-sys's bindings and compiles them in a staging copy, and writes an upgrade report \
(docs/upgrades/<commit date>-<short sha>.md) and a CHANGELOG.md entry.\n\n\
Values that select a nixpkgs attribute (Bazel major, CUDA major.minor, cuDNN/NCCL/NVSHMEM, \
ROCm distribution, compute capabilities) are never written: they are reported under \"Needs a \
human decision\".\n\n\
Every write is staged and committed together at the end: if any step fails, no project file \
changes. Uncommitted edits to the files it writes stop it before it starts.",
    after_help = "Examples:\n  cargo xtask upgrade-xla 1a2b3c4d --xla-repo ~/src/xla --dry-run\n  \
XLA_REPO=~/src/xla cargo xtask upgrade-xla main\n  cargo xtask upgrade-xla 70fe66213b --nix\n\n\
Exit status: 0 upgraded, dry run shown, or already at COMMIT; 1 error or refusal (downgrade \
without --allow-downgrade, a Bazel major change without --accept-bazel-major, uncommitted edits, \
a step failed: nothing was written)."
)]
pub struct Args {
    /// XLA commit to upgrade to: full or abbreviated sha, tag or branch.
    #[arg(value_name = "COMMIT")]
    pub commit: String,
    #[command(flatten)]
    pub xla: XlaRepoArg,
    /// Show the report and the files that would change; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Allow COMMIT to be an ancestor of the pinned commit.
    #[arg(long)]
    pub allow_downgrade: bool,
    /// Accept a new Bazel MAJOR version: switch [toolchains.bazel] to
    /// nixpkgs' `bazel_<major>` (a human decision; without it such an
    /// upgrade stops before writing anything).
    #[arg(long)]
    pub accept_bazel_major: bool,
    /// Also build each plugin's Bazel dependency derivation with Nix and pin
    /// the hash it reports (slow), instead of marking the hashes stale.
    #[arg(long)]
    pub nix: bool,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let root = crate::project::root()?;
    let fail_at = fail_at()?;
    let mut progress = Progress::new(&args, fail_at);

    let pins_path = root.join("pins.toml");
    let pins_text = std::fs::read_to_string(&pins_path).with_context(|| format!("cannot read {}", pins_path.display()))?;
    let pins = crate::pins::Pins::parse(&pins_text, &pins_path.display().to_string())
        .with_context(|| format!("{} is not valid; fix it first (`cargo xtask pins check`)", pins_path.display()))?;
    let old = pins.xla.clone();

    // 1. resolve
    let (repo, new_oid, old_oid, downgrade) =
        progress.step("resolve", &format!("resolving {} in the XLA repository", args.commit), || {
            let repo = open_for(&args.xla, &[&args.commit, &old.commit])?;
            let new_oid = resolve_commit(&repo, &args.commit)?;
            let old_oid = resolve_commit(&repo, &old.commit).with_context(|| {
                format!("the pinned commit {} is not in the XLA repository, so the upgrade cannot diff against it", old.commit)
            })?;
            let downgrade = new_oid != old_oid && repo.graph_descendant_of(old_oid, new_oid)?;
            Ok((repo, new_oid, old_oid, downgrade))
        })?;
    if new_oid == old_oid {
        eprintln!("already at {new_oid}: pins.toml pins this XLA commit; nothing to do");
        return Ok(ExitCode::SUCCESS);
    }
    if downgrade && !args.allow_downgrade {
        bail!(
            "refusing to downgrade: {} ({new_oid}) is an ancestor of the pinned commit {}; pass --allow-downgrade if you mean it",
            args.commit,
            old.commit
        );
    }
    // Before any work that could be lost: the files this upgrade rewrites
    // must not hold uncommitted edits (checked again, exactly, before the
    // final write).
    let mut guarded: Vec<PathBuf> = vec!["pins.toml".into(), report::CHANGELOG.into()];
    guarded.extend(peers::binding_paths());
    refuse_local_edits(&root, &guarded)?;

    // 2. hash
    let hash = progress.step("hash", "hashing the source tree (fetchFromGitHub NAR hash)", || {
        peers::source_hash(&repo, new_oid).map_err(|e| {
            anyhow!(
                "cannot hash the tree of {new_oid}: {e:#}\nThe repository lacks objects of that tree (a partial or shallow clone?). \
                 Fetch the complete commit into it (`git fetch origin {new_oid}` in a full clone) or point --xla-repo / XLA_REPO at one."
            )
        })
    })?;

    // 3. versions
    let (new_versions, old_api, review) = progress.step("versions", "reading PJRT API, Bazel, CUDA and ROCm versions", || {
        let v = versions::read(&repo, new_oid)?;
        let old_header = read_blob(&repo, old_oid, crate::xla_headers::CORE_HEADER)?;
        let old_api = versions::parse_api_version(&old_header).with_context(|| format!("in the header of {old_oid}"))?;
        let review = review::review(&pins, &v, args.accept_bazel_major);
        Ok((v, old_api, review))
    })?;
    let new = XlaPin {
        repository: old.repository.clone(),
        commit: new_oid.to_string(),
        hash,
        date: commit_date(&repo, new_oid)?,
        pjrt_api_version: new_versions.pjrt_api.to_string(),
        bazel_version: new_versions.bazel.clone().unwrap_or_else(|| old.bazel_version.clone()),
    };
    let old_shown = XlaPin { pjrt_api_version: old_api.to_string(), ..old.clone() };

    // 4. diff
    let diff =
        progress.step("diff", "diffing the PJRT C API headers and protobuf schemas", || peers::header_diff(&repo, old_oid, new_oid))?;
    eprintln!(
        "  {}{}",
        if diff.verdict == peers::Verdict::Breaking { "WARNING: " } else { "" },
        report::verdict_line(&diff, &old_shown, &new)
    );
    if let Some(line) = report::proto_verdict_line(&diff) {
        let breaking = diff.protos.as_ref().is_some_and(|p| p.verdict() == peers::Verdict::Breaking);
        eprintln!("  {}{line}", if breaking { "WARNING: " } else { "" });
    }

    // 5. pins
    let mut staged = Staged::new(&root);
    let mut pins_new = progress.step("pins", "updating pins.toml", || {
        if let Some(f) = review.bazel_major_change() {
            bail!(
                "{}\nThis is a human decision, so nothing was written. When nixpkgs' bazel_{} (and the Nix build support for it) \
                 is ready, rerun with --accept-bazel-major.",
                f.message,
                crate::pins::version_major(new_versions.bazel.as_deref().unwrap_or(""))
            );
        }
        peers::updated_pins(&pins_text, &new, review.bazel_toolchain_version.as_deref())
    })?;
    let mut deps: Vec<(String, String, Option<String>)> = pins
        .bazel_deps
        .iter()
        .flat_map(|(backend, systems)| systems.keys().map(move |system| (backend.clone(), system.clone(), None)))
        .collect();

    // 6. nix
    if args.nix {
        progress.step("nix", "refreshing the Bazel dependency hashes with Nix", || {
            // What deps-hash builds from: the flake's inputs, with the new
            // pins.toml; the project itself is untouched until the commit.
            let copy = tempfile::Builder::new().prefix("pjrtpkgs-upgrade-nix-").tempdir()?;
            crate::deps_hash::copy_flake_inputs(&root, copy.path())?;
            std::fs::write(copy.path().join("pins.toml"), &pins_new)?;
            for (backend, system, hash) in deps.iter_mut() {
                eprintln!("  building the {backend} dependencies for {system} ...");
                *hash = Some(crate::deps_hash::refresh_in(copy.path(), backend, system)?);
            }
            pins_new = std::fs::read_to_string(copy.path().join("pins.toml"))?;
            Ok(())
        })?;
    }
    staged.write("pins.toml", pins_new);

    // 7. bindings
    let bindings =
        progress.step("bindings", "regenerating the crates/pjrt-sys bindings", || peers::generate_bindings(&root, &repo, new_oid))?;
    let binding_names: Vec<String> = bindings.iter().map(|(p, _)| p.display().to_string()).collect();
    for (path, source) in bindings {
        staged.write(path, source);
    }

    // 8. compile
    progress.step("compile", "compiling the regenerated pjrt-sys (staging copy, cargo check)", || compile::check_staged(&staged))?;

    // 9. report
    let (report_path, report_md) = progress.step("report", "writing the upgrade report and CHANGELOG entry", || {
        // The later commit's changelog names every version crossed (for a
        // downgrade, the versions being left).
        let later = if downgrade { old_oid } else { new_oid };
        let changelog = read_blob(&repo, later, "xla/pjrt/c/CHANGELOG.md").unwrap_or_default();
        let (lo, hi) = if downgrade { (new_versions.pjrt_api, old_api) } else { (old_api, new_versions.pjrt_api) };
        let sections = versions::changelog_sections(&changelog, lo, hi);
        let u = report::Upgrade {
            old: &old_shown,
            new: &new,
            versions: &new_versions,
            review: &review,
            diff: &diff,
            api_changelog: &sections,
            downgrade,
            deps: &deps,
            bindings: &binding_names,
        };
        let md = report::markdown(&u);
        let path = report::report_path(&new);
        let existing = staged.read(Path::new(report::CHANGELOG))?.map(|b| String::from_utf8_lossy(&b).into_owned());
        let entry = report::changelog_entry(&u);
        let changelog = match &existing {
            // Idempotent: an entry already there for this report is not repeated.
            Some(text) if text.contains(&entry) => text.clone(),
            _ => report::changelog_with_entry(existing.as_deref(), &entry),
        };
        staged.write(report::CHANGELOG, changelog);
        staged.write(&path, md.clone());
        Ok((path, md))
    })?;

    print!("{report_md}");
    let changes = staged.changes()?;
    let actions: Vec<_> = review.actions().collect();

    // 10. commit
    if args.dry_run {
        eprintln!("\ndry run: nothing written. Would write:");
        for (path, change) in &changes {
            eprintln!("  {} {}", if *change == Change::Create { "create" } else { "modify" }, path.display());
        }
    } else {
        let paths: Vec<PathBuf> = changes.iter().map(|(p, _)| p.clone()).collect();
        refuse_local_edits(&root, &paths)?;
        let fail_after = (progress.fail_at.as_deref() == Some("commit")).then_some(1);
        progress.step("commit", &format!("writing {} files", changes.len()), || staged.commit(fail_after))?;
    }

    eprintln!(
        "\nupgrade-xla: XLA {} -> {} ({}), {}{}",
        report::short(&old.commit),
        report::short(&new.commit),
        &new.date[..10],
        if diff.verdict == peers::Verdict::Breaking { "WARNING: " } else { "" },
        report::verdict_line(&diff, &old_shown, &new)
    );
    if !actions.is_empty() {
        eprintln!("  {} toolchain decision(s) need you (see the report):", actions.len());
        for f in &actions {
            eprintln!("  !! {}: {}", f.pin, f.message);
        }
    }
    if !args.dry_run {
        eprintln!("  wrote {} file(s); report: {report_path}", changes.len());
    }
    eprintln!("  {}", progress.summary());
    Ok(ExitCode::SUCCESS)
}

/// The failure-injection step, from `PJRTPKGS_UPGRADE_FAIL_AT` (debug builds only).
fn fail_at() -> Result<Option<String>> {
    if !cfg!(debug_assertions) {
        return Ok(None);
    }
    match std::env::var(FAIL_AT_ENV) {
        Ok(step) if STEPS.contains(&step.as_str()) => Ok(Some(step)),
        Ok(step) if step.is_empty() => Ok(None),
        Ok(step) => bail!("{FAIL_AT_ENV}={step} names no step; steps are {}", STEPS.join(", ")),
        Err(_) => Ok(None),
    }
}

/// Step progress on stderr: a spinner while a step runs, then one line with
/// its duration.
struct Progress {
    fail_at: Option<String>,
    index: usize,
    total: usize,
    timings: Vec<(&'static str, Duration)>,
    started: Instant,
}

impl Progress {
    fn new(args: &Args, fail_at: Option<String>) -> Self {
        let total = STEPS.len() - usize::from(!args.nix) - usize::from(args.dry_run);
        Progress { fail_at, index: 0, total, timings: Vec::new(), started: Instant::now() }
    }

    fn step<T>(&mut self, name: &'static str, what: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
        self.index += 1;
        let label = format!("[{}/{}] {what}", self.index, self.total);
        let bar = indicatif::ProgressBar::new_spinner().with_message(label.clone());
        bar.enable_steady_tick(Duration::from_millis(120));
        let t = Instant::now();
        let injected = self.fail_at.as_deref() == Some(name) && name != "commit";
        let result = if injected { Err(anyhow!("injected failure at step `{name}` ({FAIL_AT_ENV}={name})")) } else { f() };
        bar.finish_and_clear();
        let took = t.elapsed();
        self.timings.push((name, took));
        eprintln!("{label}: {} ({:.2} s)", if result.is_ok() { "done" } else { "FAILED" }, took.as_secs_f64());
        result.with_context(|| format!("upgrade-xla step `{name}` failed; no project file was changed"))
    }

    fn summary(&self) -> String {
        let parts: Vec<String> = self.timings.iter().map(|(n, d)| format!("{n} {:.2}", d.as_secs_f64())).collect();
        format!("total {:.2} s ({})", self.started.elapsed().as_secs_f64(), parts.join(", "))
    }
}

fn read_blob(repo: &Repository, commit: Oid, path: &str) -> Result<String> {
    let tree = crate::xla_repo::commit_tree(repo, commit)?;
    let bytes = crate::xla_repo::read_path(repo, &tree, path)?.with_context(|| format!("{path} does not exist at {commit}"))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// The committer date of `commit`, ISO 8601 with its UTC offset
/// (`2024-04-26T13:34:51-07:00`), as `git log --format=%cI` prints it.
fn commit_date(repo: &Repository, commit: Oid) -> Result<String> {
    let when = repo.find_commit(commit)?.committer().when();
    let offset = i64::from(when.offset_minutes());
    let local = when.seconds() + offset * 60;
    let (days, secs) = (local.div_euclid(86_400), local.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    let sign = if offset < 0 { '-' } else { '+' };
    Ok(format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}{sign}{:02}:{:02}",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60,
        offset.abs() / 60,
        offset.abs() % 60
    ))
}

/// Days since 1970-01-01 -> (year, month, day), proleptic Gregorian.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Stops when any of `paths` has uncommitted changes (untracked files
/// included). A check that cannot run refuses: without git, or when git
/// cannot read the checkout (another owner: "dubious ownership"), local
/// edits cannot be told apart and would be overwritten. A project that is
/// not a git work tree at all has nothing to compare against and passes.
fn refuse_local_edits(root: &Path, paths: &[PathBuf]) -> Result<()> {
    if !root.join(".git").exists() && !inside_git_work_tree(root) {
        return Ok(());
    }
    let git = crate::tools::Tool::Git
        .locate()
        .context("upgrade-xla checks for uncommitted edits before it writes anything, and cannot without git")?;
    let output = Command::new(&git)
        .arg("-C")
        .arg(root)
        .args(["status", "--porcelain=v1", "-z", "--untracked-files=all", "--"])
        .args(paths)
        .output()
        .with_context(|| {
            format!("cannot run `{} status` in {} to check for uncommitted edits; nothing was written", git.display(), root.display())
        })?;
    if !output.status.success() {
        bail!(
            "cannot check {} for uncommitted edits (`git status` exited with {}), so upgrade-xla refuses to write: {}",
            root.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let dirty: Vec<String> =
        String::from_utf8_lossy(&output.stdout).split('\0').filter(|e| e.len() > 3).map(|e| e[3..].to_string()).collect();
    if !dirty.is_empty() {
        bail!(
            "uncommitted local edits to files upgrade-xla writes: {}; commit or stash them first (`git stash`), then rerun",
            dirty.join(", ")
        );
    }
    Ok(())
}

/// Whether `dir` lies in a git work tree: a `.git` file or directory in it
/// or above it (a worktree or submodule has a `.git` file).
fn inside_git_work_tree(dir: &Path) -> bool {
    dir.ancestors().any(|d| d.join(".git").exists())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_839), (2024, 4, 26));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }
}
