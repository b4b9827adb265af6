//! `cargo xtask upgrade-xla COMMIT`: the whole XLA upgrade, all or nothing.
//!
//! Steps: resolve the commit, hash its tree, read the versions and the MLIR
//! toolchain (LLVM, StableHLO, Shardy) it pins, diff the PJRT headers, edit
//! pins.toml, (with `--nix`) refresh the Bazel dependency hashes, regenerate
//! and compile the bindings, write the report and the changelog entry —
//! every write staged in memory and committed together at the end
//! ([`staging`], journaled so that even a crash leaves the project
//! recoverable), so a failure anywhere leaves the project as it was.
//! A dry run goes through every step even past a refusal ([`steps`]).

pub mod bazelrc;
mod compile;
mod interrupt;
mod peers;
mod report;
mod review;
mod staging;
mod steps;
mod toolchain;
pub mod versions;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use git2::{Oid, Repository};

use crate::xla_repo::{open_for, resolve_commit, XlaRepoArg};
use peers::XlaPin;
use staging::{Change, Staged};
use steps::Runner;

/// Testing hook: the step at which to inject a failure. Honoured only in
/// debug builds (tests), never in a release build.
pub const FAIL_AT_ENV: &str = "PJRTPKGS_UPGRADE_FAIL_AT";

/// Step names, in order, as `PJRTPKGS_UPGRADE_FAIL_AT` accepts them.
pub const STEPS: &[&str] = &["resolve", "versions", "diff", "bindings", "compile", "hash", "pins", "nix", "report", "commit"];

/// Exit status of a run that stopped, and of a dry run whose real run would.
pub const EXIT_STOPPED: u8 = crate::output::EXIT_ERROR;

#[derive(Debug, clap::Args)]
#[command(
    about = "The whole XLA upgrade in one command, all or nothing",
    long_about = "Upgrade the pinned XLA commit, all or nothing.\n\n\
Resolves COMMIT in the XLA repository, computes its source hash from git objects (the hash \
fetchFromGitHub checks), reads the PJRT API version, .bazelversion, the hermetic CUDA / cuDNN / \
NCCL / NVSHMEM versions and ROCm distribution XLA's bazelrc configs pin, and the LLVM, StableHLO \
(commit and the StableHLO version plugins accept) and Shardy commits it builds with, diffs the \
PJRT headers (verdict first: a breaking change is a loud warning), updates pins.toml ([xla], and \
[toolchains.bazel] version within the same Bazel major) and marks every Bazel dependency hash \
stale, regenerates crates/pjrt-sys's bindings and compiles them in a staging copy, and writes an \
upgrade report (docs/upgrades/<commit date>-<short sha>.md) and a CHANGELOG.md entry.\n\n\
Values that select a nixpkgs attribute (Bazel major, CUDA major.minor, cuDNN/NCCL/NVSHMEM, \
ROCm distribution, compute capabilities) are never written, and LLVM / StableHLO / Shardy moves \
concern MLIR bindings: all are reported under \"Needs a human decision\".\n\n\
Every write is staged and committed together at the end, through a journal: if any step fails, \
or the run is interrupted (even killed), no project file is left half-upgraded; the next run \
completes or undoes an interrupted commit first. Uncommitted edits to the files it writes stop \
it before it starts.\n\n\
--dry-run writes nothing and goes through every step even past a refusal or a failure: the \
report, each step's outcome, the files a real run would write and every reason it would stop.",
    after_help = "Examples:\n  cargo xtask upgrade-xla 1a2b3c4d --xla-repo ~/src/xla --dry-run\n  \
XLA_REPO=~/src/xla STABLEHLO_REPO=~/src/stablehlo cargo xtask upgrade-xla main\n  \
cargo xtask upgrade-xla main --dry-run --json | jq .stops\n  cargo xtask upgrade-xla 70fe66213b --nix\n\n\
Exit status: 0 upgraded, already at COMMIT, or (--dry-run) a real run would succeed; 1 a refusal \
(downgrade without --allow-downgrade, a Bazel major change without --accept-bazel-major, \
uncommitted edits), a failed step or an error: nothing was written; with --dry-run, 1 means a \
real run would stop (every reason is listed); 128+N killed by signal N after cleaning up."
)]
pub struct Args {
    /// XLA commit to upgrade to: full or abbreviated sha, tag or branch.
    #[arg(value_name = "COMMIT")]
    pub commit: String,
    #[command(flatten)]
    pub xla: XlaRepoArg,
    #[command(flatten)]
    pub stablehlo: toolchain::StablehloRepoArg,
    /// Write nothing; show every step (also past a refusal or failure),
    /// the report, what a real run would write and why it would stop.
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
    /// Print one JSON object on stdout (steps, stops, files, verdicts, the
    /// report itself) instead of the Markdown report.
    #[arg(long)]
    pub json: bool,
}

/// Whether `rel` is a file upgrade-xla writes (what a commit journal may name).
fn is_upgrade_target(rel: &Path) -> bool {
    let fixed = rel == Path::new("pins.toml") || rel == Path::new(report::CHANGELOG) || peers::binding_paths().iter().any(|b| b == rel);
    let report = rel.parent() == Some(Path::new(report::REPORT_DIR)) && rel.extension().is_some_and(|e| e == "md");
    fixed || report
}

pub fn run(args: Args) -> Result<ExitCode> {
    let result = upgrade(args);
    // Interrupted: everything staged has been dropped (and removed) by now.
    interrupt::exit_if_interrupted();
    result
}

fn upgrade(args: Args) -> Result<ExitCode> {
    let root = crate::project::root()?;
    let fail_at = fail_at()?;
    interrupt::install()?;
    interrupt::sweep_stale();
    // A real run owns the project until it ends, and first completes (or
    // undoes) whatever commit an interrupted run left.
    let _lock = if args.dry_run { None } else { Some(staging::lock_project(&root)?) };
    if args.dry_run {
        if staging::pending(&root) {
            eprintln!(
                "note: an interrupted upgrade-xla commit is pending ({}); a real run completes or undoes it before anything else",
                staging::JOURNAL
            );
        }
    } else {
        if staging::pending(&root) {
            refuse_committed_journal(&root)?;
        }
        if let Some(done) = staging::recover(&root, is_upgrade_target)? {
            eprintln!("{done}");
        }
    }
    let stablehlo = match &args.stablehlo.stablehlo_repo {
        Some(dir) => Some(Repository::open(dir).with_context(|| {
            format!("--stablehlo-repo / STABLEHLO_REPO: {} is not a git repository (a clone of openxla/stablehlo)", dir.display())
        })?),
        None => None,
    };
    let total = STEPS.len() - usize::from(!args.nix);
    let mut run = Runner::new(args.dry_run, total, fail_at);

    let pins_path = root.join("pins.toml");
    let pins_text = std::fs::read_to_string(&pins_path).with_context(|| format!("cannot read {}", pins_path.display()))?;
    let pins = crate::pinfile::Pins::parse(&pins_text, &pins_path.display().to_string())
        .with_context(|| format!("{} is not valid; fix it first (`cargo xtask pins check`)", pins_path.display()))?;
    let old = pins.xla.clone();

    // 1. resolve
    let resolved = run.step("resolve", &format!("resolving {} in the XLA repository", args.commit), || {
        let repo = open_for(&args.xla, &[&args.commit, &old.commit])?;
        let new_oid = resolve_commit(&repo, &args.commit)?;
        let old_oid = resolve_commit(&repo, &old.commit).with_context(|| {
            format!("the pinned commit {} is not in the XLA repository, so the upgrade cannot diff against it", old.commit)
        })?;
        let downgrade = new_oid != old_oid && is_ancestor(&repo, new_oid, old_oid)?;
        Ok((repo, new_oid, old_oid, downgrade))
    })?;
    let Some((repo, new_oid, old_oid, downgrade)) = resolved else {
        // Nothing else can run without the commits.
        for (name, what) in [
            ("versions", "reading versions and toolchain"),
            ("diff", "diffing the PJRT C API headers"),
            ("bindings", "regenerating the bindings"),
            ("compile", "compiling the bindings"),
            ("hash", "hashing the source tree"),
            ("pins", "updating pins.toml"),
        ] {
            run.skip(name, what, "needs resolve");
        }
        if args.nix {
            run.skip("nix", "refreshing the Bazel dependency hashes with Nix", "needs resolve");
        }
        for (name, what) in [("report", "writing the report"), ("commit", "writing the files")] {
            run.skip(name, what, "needs resolve");
        }
        return finish(&args, &run, None, &[]);
    };
    if new_oid == old_oid {
        eprintln!("already at {new_oid}: pins.toml pins this XLA commit; nothing to do");
        if args.json {
            println!(
                "{}",
                serde_json::json!({ "schema": 1, "status": "already-at", "commit": new_oid.to_string(), "would_succeed": true })
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    if downgrade && !args.allow_downgrade {
        run.refuse(
            "resolve",
            format!(
                "refusing to downgrade: {} ({new_oid}) is an ancestor of the pinned commit {}; pass --allow-downgrade if you mean it",
                args.commit, old.commit
            ),
        )?;
    }
    // Before any work that could be lost: the files this upgrade rewrites
    // must not hold uncommitted edits (checked again before the final write).
    let mut guarded: Vec<PathBuf> = vec!["pins.toml".into(), report::CHANGELOG.into()];
    guarded.extend(peers::binding_paths());
    if let Err(e) = refuse_local_edits(&root, &guarded) {
        run.refuse("resolve", format!("{e:#}"))?;
    }

    // The source hash is the slowest step and needs nothing else: it runs on
    // a thread of its own from here, and its step collects it when the pins need it.
    let hashing = {
        let dir = repo.path().to_path_buf();
        std::thread::spawn(move || -> Result<(String, Duration)> {
            let started = Instant::now();
            let repo = Repository::open(&dir).with_context(|| format!("cannot open {}", dir.display()))?;
            let hash = peers::source_hash(&repo, new_oid).map_err(|e| {
                anyhow!(
                    "cannot hash the tree of {new_oid}: {e:#}.\nThe repository lacks objects of that tree: point --xla-repo / XLA_REPO \
                     at a complete clone, or leave both unset to let pjrtpkgs fetch the commit into its own clone."
                )
            })?;
            Ok((hash, started.elapsed()))
        })
    };

    // 2. versions
    let versions = run.step("versions", "reading PJRT API, Bazel, CUDA, ROCm versions and the LLVM/StableHLO/Shardy toolchain", || {
        let v = versions::read(&repo, new_oid)?;
        let old_header = read_blob(&repo, old_oid, crate::xla_headers::CORE_HEADER)?;
        let old_api = versions::parse_api_version(&old_header).with_context(|| format!("in the header of {old_oid}"))?;
        let moves = toolchain::moves(&repo, old_oid, new_oid, stablehlo.as_ref())?;
        Ok((v, old_api, moves))
    })?;
    let date = commit_date(&repo, new_oid)?;
    let mut new = versions.as_ref().map(|(v, _, _)| XlaPin {
        repository: old.repository.clone(),
        commit: new_oid.to_string(),
        hash: "(not computed: the hash step failed)".into(),
        date: date.clone(),
        pjrt_api_version: v.pjrt_api.to_string(),
        bazel_version: v.bazel.clone().unwrap_or_else(|| old.bazel_version.clone()),
    });
    let old_shown = versions.as_ref().map(|(_, api, _)| XlaPin { pjrt_api_version: api.to_string(), ..old.clone() });
    // The review as a real run sees it, and the one a dry run goes on with
    // (a refused Bazel major accepted, as --accept-bazel-major would).
    let strict = versions.as_ref().map(|(v, _, _)| review::review(&pins, v, args.accept_bazel_major));
    let review = match (&strict, &versions) {
        (Some(r), Some((v, _, _))) if r.bazel_major_change().is_some() && args.dry_run => Some(review::review(&pins, v, true)),
        _ => strict.clone(),
    };
    if let Some((_, _, moves)) = &versions {
        run.detail("versions", toolchain_summary(moves));
    }
    // 3. diff
    let diff = run.step("diff", "diffing the PJRT C API headers and protobuf schemas", || peers::header_diff(&repo, old_oid, new_oid))?;
    if let (Some(d), Some(o), Some(n)) = (&diff, &old_shown, &new) {
        eprintln!("  {}{}", if d.verdict == peers::Verdict::Breaking { "WARNING: " } else { "" }, report::verdict_line(d, o, n));
    }
    if let Some(line) = diff.as_ref().and_then(report::proto_verdict_line) {
        let breaking = diff.as_ref().and_then(|d| d.protos.as_ref()).is_some_and(|p| p.verdict() == peers::Verdict::Breaking);
        eprintln!("  {}{line}", if breaking { "WARNING: " } else { "" });
    }

    // What pins.toml may not take without --accept-bazel-major: known since
    // the versions, refused once the verdict is out, before the slow steps.
    if let (Some(f), Some(new)) = (strict.as_ref().and_then(|r| r.bazel_major_change()), &new) {
        run.refuse(
            "pins",
            format!(
                "{}\nThis is a human decision, so nothing was written. When nixpkgs' bazel_{} (and the Nix build support for it) \
                 is ready, rerun with --accept-bazel-major.",
                f.message,
                crate::pinfile::version_major(&new.bazel_version)
            ),
        )?;
    }

    // 4. bindings
    let mut staged = Staged::new(&root);
    let bindings = run.step("bindings", "regenerating the crates/pjrt-sys bindings", || peers::generate_bindings(&root, &repo, new_oid))?;
    let binding_names: Vec<String> = peers::binding_paths().iter().map(|p| p.display().to_string()).collect();
    if let Some(bindings) = &bindings {
        let paths: Vec<PathBuf> = bindings.iter().map(|(p, _)| p.clone()).collect();
        for (path, source) in bindings {
            staged.write(path, source.clone());
        }
        run.wrote("bindings", staged.changes_of(&paths)?);
    }

    // 5. compile
    if bindings.is_some() {
        run.step("compile", "compiling the regenerated pjrt-sys (staging copy, cargo check)", || compile::check_staged(&staged))?;
    } else {
        run.skip("compile", "compiling the regenerated pjrt-sys", "needs the bindings step");
    }

    // 6. hash (computed in the background since step 1)
    let hashed = run.step("hash", "hashing the source tree (fetchFromGitHub NAR hash; in the background since step 1)", || {
        hashing.join().map_err(|_| anyhow!("the hashing thread panicked"))?
    })?;
    let hash = hashed.map(|(hash, took)| {
        run.took("hash", took);
        run.detail("hash", format!("{:.2} s of work, in the background", took.as_secs_f64()));
        hash
    });
    if let (Some(new), Some(hash)) = (new.as_mut(), &hash) {
        new.hash = hash.clone();
    }

    // 7. pins
    let mut pins_new = None;
    match (&new, &review) {
        (Some(new), Some(review)) => {
            // Without a source hash (a dry run past a failed hash step) the
            // pin shows the stale placeholder.
            let pinned = XlaPin { hash: hash.clone().unwrap_or_else(|| crate::pinfile::STALE_HASH.into()), ..new.clone() };
            pins_new = run.step("pins", "updating pins.toml", || {
                peers::updated_pins(&pins_text, &pinned, review.bazel_toolchain_version.as_deref())
            })?;
        }
        _ => run.skip("pins", "updating pins.toml", "needs the versions step"),
    }
    let mut deps: Vec<(String, String, Option<String>)> = pins
        .bazel_deps
        .iter()
        .flat_map(|(backend, systems)| systems.keys().map(move |system| (backend.clone(), system.clone(), None)))
        .collect();

    // 8. nix
    if args.nix {
        match pins_new.clone() {
            Some(text) => {
                let refreshed = run.step("nix", "refreshing the Bazel dependency hashes with Nix", || {
                    // What deps-hash builds from: the flake's inputs, with the
                    // new pins.toml; the project itself is untouched until the commit.
                    let copy = interrupt::StagingDir::new("nix")?;
                    crate::bazel_deps::copy_flake_inputs(&root, copy.path())?;
                    std::fs::write(copy.path().join("pins.toml"), &text)?;
                    for (backend, system, hash) in deps.iter_mut() {
                        eprintln!("  building the {backend} dependencies for {system} ...");
                        *hash = Some(crate::bazel_deps::refresh_in(copy.path(), backend, system)?);
                    }
                    Ok(std::fs::read_to_string(copy.path().join("pins.toml"))?)
                })?;
                if refreshed.is_some() {
                    pins_new = refreshed;
                }
            }
            None => run.skip("nix", "refreshing the Bazel dependency hashes with Nix", "needs the pins step"),
        }
    }
    if let Some(text) = &pins_new {
        staged.write_from("pins.toml", Some(pins_text.as_bytes().to_vec()), text.clone());
        let step = if args.nix && deps.iter().any(|d| d.2.is_some()) { "nix" } else { "pins" };
        run.wrote(step, staged.changes_of(&["pins.toml".into()])?);
    }

    // 9. report
    let mut report_md = None;
    match (&versions, &diff, &old_shown, &new, &review) {
        (Some((new_versions, old_api, moves)), Some(diff), Some(old_shown), Some(new), Some(review)) => {
            let made = run.step("report", "writing the upgrade report and CHANGELOG entry", || {
                // The later commit's changelog names every version crossed
                // (for a downgrade, the versions being left).
                let later = if downgrade { old_oid } else { new_oid };
                let changelog = read_blob(&repo, later, "xla/pjrt/c/CHANGELOG.md").unwrap_or_default();
                let (lo, hi) = if downgrade { (new_versions.pjrt_api, *old_api) } else { (*old_api, new_versions.pjrt_api) };
                let sections = versions::changelog_sections(&changelog, lo, hi);
                let u = report::Upgrade {
                    old: old_shown,
                    new,
                    versions: new_versions,
                    review,
                    moves,
                    diff,
                    api_changelog: &sections,
                    downgrade,
                    deps: &deps,
                    bindings: &binding_names,
                };
                let md = report::markdown(&u);
                let path = report::report_path(new);
                let existing = match staged.read(Path::new(report::CHANGELOG))? {
                    Some(bytes) => Some(String::from_utf8(bytes.clone()).map_err(|_| {
                        anyhow!(
                            "{} is not UTF-8: upgrade-xla will not rewrite it (and mangle its bytes); convert it to UTF-8 first",
                            report::CHANGELOG
                        )
                    })?),
                    None => None,
                };
                let entry = report::changelog_entry(&u);
                let changelog = match &existing {
                    // Idempotent: an entry already there for this report is not repeated.
                    Some(text) if text.contains(&entry) => text.clone(),
                    _ => report::changelog_with_entry(existing.as_deref(), &entry),
                };
                staged.write_from(report::CHANGELOG, existing.map(String::into_bytes), changelog);
                staged.write(&path, md.clone());
                Ok((path, md))
            })?;
            if let Some((path, md)) = made {
                run.wrote("report", staged.changes_of(&[report::CHANGELOG.into(), path.clone().into()])?);
                report_md = Some((path, md));
            }
        }
        _ => run.skip("report", "writing the upgrade report and CHANGELOG entry", "needs the versions and diff steps"),
    }

    let changes = staged.changes()?;
    // 10. commit
    if args.dry_run {
        run.skip("commit", &format!("writing {} files", changes.len()), "dry run: nothing written");
    } else {
        let paths: Vec<PathBuf> = changes.iter().map(|(p, _)| p.clone()).collect();
        refuse_local_edits(&root, &paths)?;
        let faults = staging::Faults { fail_after: (run.fail_at() == Some("commit")).then_some(1) };
        run.step("commit", &format!("writing {} files", changes.len()), || interrupt::commit_section(|| staged.commit(faults)))?;
    }

    // What the report needs, for the summary and the JSON.
    let summary = Summary {
        old: old_shown.as_ref(),
        new: new.as_ref(),
        diff: diff.as_ref(),
        moves: versions.as_ref().map(|(_, _, m)| m),
        review: review.as_ref(),
        report: report_md.as_ref(),
    };
    finish(&args, &run, Some(&summary), &changes)
}

/// What a finished run knows, for its closing words.
struct Summary<'a> {
    old: Option<&'a XlaPin>,
    new: Option<&'a XlaPin>,
    diff: Option<&'a peers::HeaderDiff>,
    moves: Option<&'a toolchain::Moves>,
    review: Option<&'a review::Review>,
    /// `(path, markdown)`.
    report: Option<&'a (String, String)>,
}

impl Summary<'_> {
    /// The parts of the upgrade that break consumers: `api` (PJRT C API
    /// header diff). The protobuf diff adds `proto` here.
    fn breaks(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.diff.is_some_and(|d| d.verdict == peers::Verdict::Breaking) {
            out.push("api");
        }
        // Protobuf: "proto-wire" when serialized bytes are misread, else
        // "proto" when only code generated from the schemas breaks (nearly
        // every XLA bump drops a DebugOptions flag).
        if let Some(p) = self.diff.and_then(|d| d.protos.as_ref()) {
            if p.wire_verdict() == crate::header_diff::proto::Wire::Breaking {
                out.push("proto-wire");
            } else if p.verdict() == peers::Verdict::Breaking {
                out.push("proto");
            }
        }
        out
    }

    /// The decisions left to a human: pins.toml toolchain items, then moves.
    fn decisions(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> =
            self.review.map(|r| r.actions().map(|f| (f.pin.clone(), f.message.clone())).collect()).unwrap_or_default();
        if let Some(m) = self.moves {
            out.extend(m.decisions());
        }
        out
    }
}

/// Prints the report (or the JSON), the closing summary on stderr, and
/// returns the exit status.
fn finish(args: &Args, run: &Runner, s: Option<&Summary>, changes: &[(PathBuf, Change)]) -> Result<ExitCode> {
    let decisions = s.map(|s| s.decisions()).unwrap_or_default();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&json(args, run, s, changes, &decisions))?);
    } else {
        if let Some((_, md)) = s.and_then(|s| s.report) {
            print!("{md}");
        }
        if args.dry_run {
            if s.and_then(|s| s.report).is_some() {
                println!();
            }
            print!("{}", run.dry_run_markdown(changes));
        }
    }

    if let Some(s) = s {
        if let (Some(old), Some(new), Some(diff)) = (s.old, s.new, s.diff) {
            eprintln!(
                "\nupgrade-xla: XLA {} -> {} ({}), {}{}",
                report::short(&old.commit),
                report::short(&new.commit),
                &new.date[..new.date.len().min(10)],
                if diff.verdict == peers::Verdict::Breaking { "WARNING: " } else { "" },
                report::verdict_line(diff, old, new)
            );
        }
    }
    if !decisions.is_empty() {
        eprintln!("  {} decision(s) need you (see the report):", decisions.len());
        for (item, message) in &decisions {
            eprintln!("  !! {item}: {message}");
        }
    }
    if args.dry_run {
        eprintln!("\ndry run: nothing written. Would write:");
        for (path, change) in changes {
            eprintln!("  {} {}", change.word(), path.display());
        }
        if run.would_succeed() {
            eprintln!("a real run would succeed");
        } else {
            eprintln!("a real run would STOP ({} reason(s)):", run.stops.len());
            for stop in &run.stops {
                eprintln!("  - {}: {}", stop.step, stop.reason.lines().next().unwrap_or(""));
            }
        }
    } else if let Some((path, _)) = s.and_then(|s| s.report) {
        eprintln!("  wrote {} file(s); report: {path}", changes.len());
    }
    eprintln!("  {}", run.summary());
    Ok(if run.would_succeed() { ExitCode::SUCCESS } else { ExitCode::from(EXIT_STOPPED) })
}

fn json(
    args: &Args,
    run: &Runner,
    s: Option<&Summary>,
    changes: &[(PathBuf, Change)],
    decisions: &[(String, String)],
) -> serde_json::Value {
    use serde_json::json;
    let pin = |p: Option<&XlaPin>| {
        p.map(|p| json!({ "commit": p.commit, "date": p.date, "pjrt_api_version": p.pjrt_api_version, "bazel_version": p.bazel_version, "hash": p.hash }))
    };
    let toolchain = |t: &toolchain::Toolchain| {
        let mut o = serde_json::Map::new();
        for (p, c) in &t.commits {
            o.insert(p.name().to_ascii_lowercase(), json!(c));
        }
        o.insert("stablehlo_version".into(), json!(t.stablehlo_version.current().map(|v| v.to_string())));
        if let toolchain::Accepted::Known { minimum, .. } = &t.stablehlo_version {
            o.insert("stablehlo_minimum_version".into(), json!(minimum.map(|v| v.to_string())));
        }
        serde_json::Value::Object(o)
    };
    let moves = s.and_then(|s| s.moves).map(|m| {
        json!({
            "old": toolchain(&m.old),
            "new": toolchain(&m.new),
            "moved": m.moved.iter().map(|mv| json!({
                "project": mv.project.name(), "old": mv.old, "new": mv.new,
                "xla_integrates": mv.xla_integrates, "upstream_commits": mv.upstream_commits, "compare": mv.compare_url(),
            })).collect::<Vec<_>>(),
            "stablehlo_version_changed": m.stablehlo_version_changed(),
        })
    });
    json!({
        "schema": 1,
        "status": if args.dry_run { "dry-run" } else { "upgraded" },
        "dry_run": args.dry_run,
        "would_succeed": run.would_succeed(),
        "old": pin(s.and_then(|s| s.old)),
        "new": pin(s.and_then(|s| s.new)),
        "api_verdict": s.and_then(|s| s.diff).map(|d| d.verdict.as_str()),
        "abi_verdict": s.and_then(|s| s.diff).map(|d| d.abi.as_str()),
        "breaks": s.map(|s| s.breaks()).unwrap_or_default(),
        "toolchain": moves,
        "decisions": decisions.iter().map(|(item, message)| json!({ "item": item, "message": message })).collect::<Vec<_>>(),
        "steps": run.steps.iter().map(|st| json!({
            "number": st.number, "name": st.name, "outcome": st.outcome.word(), "detail": st.outcome.detail(),
            "seconds": st.took.as_secs_f64(),
            "writes": st.writes.iter().map(|(p, c)| json!({ "path": p.display().to_string(), "change": c.word() })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "stops": run.stops.iter().map(|st| json!({ "step": st.step, "reason": st.reason })).collect::<Vec<_>>(),
        "files": changes.iter().map(|(p, c)| json!({ "path": p.display().to_string(), "change": c.word() })).collect::<Vec<_>>(),
        "report_path": s.and_then(|s| s.report).map(|r| r.0.clone()),
        "report": s.and_then(|s| s.report).map(|r| r.1.clone()),
    })
}

/// One line on what the toolchain did: `LLVM moved, StableHLO 0.19.4 -> 0.19.8`.
fn toolchain_summary(m: &toolchain::Moves) -> String {
    let mut parts: Vec<String> = m.moved.iter().map(|mv| format!("{} moved", mv.project.name())).collect();
    if m.stablehlo_version_changed() {
        parts.push(format!(
            "StableHLO {} -> {}",
            toolchain::version_text(&m.old.stablehlo_version),
            toolchain::version_text(&m.new.stablehlo_version)
        ));
    }
    if parts.is_empty() {
        "LLVM, StableHLO and Shardy unchanged".into()
    } else {
        parts.join(", ")
    }
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

/// Whether `ancestor` is an ancestor of `of`. A shallow clone (pjrtpkgs'
/// own clone fetches single commits) lacks the history to tell: there the
/// older committer date is taken as the ancestor, which XLA's linear
/// history makes right.
fn is_ancestor(repo: &Repository, ancestor: Oid, of: Oid) -> Result<bool> {
    match repo.graph_descendant_of(of, ancestor) {
        Ok(d) => Ok(d),
        Err(_) if repo.is_shallow() => {
            let time = |c: Oid| repo.find_commit(c).map(|c| c.committer().when().seconds());
            Ok(time(ancestor)? < time(of)?)
        }
        Err(e) => Err(e).context("cannot tell whether the target is an ancestor of the pinned commit"),
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

/// A journal is left by an interrupted run on this machine, never committed:
/// one that git tracks came with someone's commit, and acting on it would
/// rename files of their choosing over pins.toml and the bindings.
fn refuse_committed_journal(root: &Path) -> Result<()> {
    if !inside_git_work_tree(root) {
        return Ok(());
    }
    let git = crate::tools::Tool::Git.locate().context("upgrade-xla checks the commit journal with git, and cannot without it")?;
    let out = Command::new(&git)
        .arg("-C")
        .arg(root)
        .args(["ls-files", "-z", "--", staging::JOURNAL, ":(glob)**/.pjrtpkgs-upgrade-*"])
        .output()
        .with_context(|| format!("cannot run `{} ls-files` in {}", git.display(), root.display()))?;
    if !out.status.success() {
        bail!("cannot check whether {} is tracked by git: {}", staging::JOURNAL, String::from_utf8_lossy(&out.stderr).trim());
    }
    let tracked: Vec<String> = String::from_utf8_lossy(&out.stdout).split('\0').filter(|s| !s.is_empty()).map(str::to_string).collect();
    if !tracked.is_empty() {
        bail!(
            "{} is committed to the repository ({}): an interrupted upgrade-xla never commits its journal, so this one came with \
             someone's commit, and upgrade-xla will not act on it. Remove those files from git (`git rm`), then rerun",
            staging::JOURNAL,
            tracked.join(", ")
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
