//! `cargo xtask upgrade-xla` end to end on a synthetic XLA-like git history
//! and a scratch copy of the project: a normal upgrade, a breaking one, a
//! dry run, idempotence, a refused downgrade, refused local edits, a tree
//! with a missing blob, and a failure injected at every step. Every refusal
//! or failure must leave the project byte-identical.

mod support;
mod upgrade_support;

use support::hash::nix_hash_of_commit;
use support::require_command;
use upgrade_support::{snapshot, text, Scratch, SyntheticXla};

const STALE: &str = "sha256-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";

fn base_project(xla: &SyntheticXla) -> Scratch {
    Scratch::new(&upgrade_support::pins_for(&xla.base, "2024-03-29T15:40:47-07:00", "0.1", "7.4.1"))
}

fn pins(s: &Scratch) -> toml::Table {
    s.read("pins.toml").parse().unwrap()
}

fn xla_field(t: &toml::Table, k: &str) -> String {
    t["xla"][k].as_str().unwrap().to_string()
}

#[test]
fn normal_upgrade_then_idempotent() {
    if !require_command("git") {
        return;
    }
    let xla = SyntheticXla::build();
    let s = base_project(&xla);
    // An abbreviated sha resolves.
    let out = s.upgrade(xla.path(), &[&xla.compatible[..9]], &[]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "upgrade failed:\n{stderr}");

    let p = pins(&s);
    assert_eq!(xla_field(&p, "commit"), xla.compatible);
    assert_eq!(xla_field(&p, "pjrt_api_version"), "0.2");
    assert_eq!(xla_field(&p, "bazel_version"), "7.7.0");
    assert_eq!(xla_field(&p, "date"), "2024-04-26T13:34:51-07:00");
    // Same Bazel major: the toolchain version follows, the attribute stays.
    assert_eq!(p["toolchains"]["bazel"]["version"].as_str(), Some("7.7.0"));
    assert_eq!(p["toolchains"]["bazel"]["nixpkgs_attribute"].as_str(), Some("bazel_7"));
    // Every Bazel dependency hash is stale now.
    for backend in ["cpu", "cuda12"] {
        assert_eq!(p["bazel_deps"][backend]["x86_64-linux"]["hash"].as_str(), Some(STALE), "{backend}");
    }
    // NCCL changed through the cuda_version config both pjrt_cuda configs
    // inherit: reported, never written.
    assert_eq!(p["cuda12"]["nccl_version"].as_str(), Some("2.27.7"));
    assert!(stderr.contains("[cuda12] nccl_version") && stderr.contains("[cuda13] nccl_version"), "{stderr}");

    if require_command("nix") {
        assert_eq!(xla_field(&p, "hash"), nix_hash_of_commit(xla.path(), &xla.compatible));
    }

    let bindings = s.read("crates/pjrt-sys/src/bindings.rs");
    assert!(bindings.contains("num_devices") && bindings.contains(&xla.compatible), "bindings not regenerated");
    assert!(bindings.contains("extra_value"), "extension header not in the bindings");

    let report_path = format!("docs/upgrades/2024-04-26-{}.md", &xla.compatible[..12]);
    let report = s.read(&report_path);
    assert_eq!(stdout, report, "stdout shows the report");
    let verdict_at = report.find("verdict: COMPATIBLE").expect("verdict in the report");
    assert!(verdict_at < report.find("## ").unwrap(), "verdict is up front");
    assert!(report.contains("Added ``num_devices`` to ``PJRT_Client_Create_Args``"), "CHANGELOG section of 0.2 quoted");
    assert!(!report.contains("Initial synthetic API"), "0.1 was not crossed");
    assert!(report.contains("HERMETIC_NCCL_VERSION | 2.28.3"), "{report}");
    let changelog = s.read("CHANGELOG.md");
    assert!(changelog.starts_with("# Changelog\n\n## Unreleased\n\n### XLA\n\n- XLA `"), "{changelog}");
    assert!(changelog.contains(&report_path) && changelog.contains("## 0.1.0\n\n- First release."));
    assert!(stderr.contains("(") && stderr.contains(" s)") && stderr.contains("total"), "step durations: {stderr}");

    // Second run, same commit (by tag this time): nothing changes.
    let before = snapshot(s.path());
    let again = s.upgrade(xla.path(), &["v0.2"], &[]);
    let (_, stderr) = text(&again);
    assert!(again.status.success(), "{stderr}");
    assert!(stderr.contains(&format!("already at {}", xla.compatible)), "{stderr}");
    assert_eq!(snapshot(s.path()), before, "second run changed the tree");
}

#[test]
fn breaking_upgrade_is_loud() {
    if !require_command("git") {
        return;
    }
    let xla = SyntheticXla::build();
    let s = base_project(&xla);
    // Bazel 7 -> 8 selects another nixpkgs attribute: a human decision, so
    // without --accept-bazel-major nothing is written.
    let before = snapshot(s.path());
    let out = s.upgrade(xla.path(), &[&xla.breaking], &[]);
    let (_, stderr) = text(&out);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("WARNING: PJRT C API verdict: BREAKING"), "{stderr}");
    assert!(stderr.contains("`bazel_8` instead of `bazel_7`") && stderr.contains("--accept-bazel-major"), "{stderr}");
    assert_eq!(snapshot(s.path()), before);

    let out = s.upgrade(xla.path(), &[&xla.breaking, "--accept-bazel-major"], &[]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("WARNING: PJRT C API verdict: BREAKING"), "{stderr}");
    let first_lines: String = stdout.lines().take(8).collect::<Vec<_>>().join("\n");
    assert!(first_lines.contains("verdict: BREAKING") && first_lines.contains("WARNING"), "{first_lines}");
    // CUDA 13.0 -> 13.1, ROCm 7 -> 8: human decisions, loud, not written.
    for needle in ["`cudaPackages_13_1` instead of `cudaPackages_13_0`", "new ROCm MAJOR"] {
        assert!(stderr.contains(needle), "missing {needle}: {stderr}");
        assert!(stdout.contains(needle), "report misses {needle}");
    }
    assert!(stdout.contains("accepted with --accept-bazel-major"), "{stdout}");
    let p = pins(&s);
    assert_eq!(xla_field(&p, "bazel_version"), "8.0.0");
    assert_eq!(p["toolchains"]["bazel"]["version"].as_str(), Some("8.0.0"));
    assert_eq!(p["toolchains"]["bazel"]["nixpkgs_attribute"].as_str(), Some("bazel_8"));
    assert_eq!(p["cuda13"]["cuda_version"].as_str(), Some("13.0.0"));
    assert!(stdout.contains("Removed ``client``") && stdout.contains("Added ``num_devices``"), "both crossed versions quoted");
    assert!(s.read("CHANGELOG.md").contains("**BREAKING**"));
}

#[test]
fn dry_run_writes_nothing() {
    if !require_command("git") {
        return;
    }
    let xla = SyntheticXla::build();
    let s = base_project(&xla);
    let before = snapshot(s.path());
    let out = s.upgrade(xla.path(), &[&xla.compatible, "--dry-run"], &[]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("verdict: COMPATIBLE"), "the dry run shows the report");
    assert!(stderr.contains("dry run: nothing written") && stderr.contains("modify pins.toml"), "{stderr}");
    assert!(stderr.contains("create docs/upgrades/"), "{stderr}");
    assert_eq!(snapshot(s.path()), before);
}

#[test]
fn downgrade_refused_unless_allowed() {
    if !require_command("git") {
        return;
    }
    let xla = SyntheticXla::build();
    let s = Scratch::new(&upgrade_support::pins_for(&xla.compatible, "2024-04-26T13:34:51-07:00", "0.2", "7.7.0"));
    let before = snapshot(s.path());
    let out = s.upgrade(xla.path(), &[&xla.base], &[]);
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(stderr.contains("refusing to downgrade") && stderr.contains("--allow-downgrade"), "{stderr}");
    assert_eq!(snapshot(s.path()), before);

    let out = s.upgrade(xla.path(), &[&xla.base, "--allow-downgrade"], &[]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(xla_field(&pins(&s), "commit"), xla.base);
    assert!(stdout.contains("DOWNGRADE") && stdout.contains("Added ``num_devices``"), "{stdout}");
}

#[test]
fn local_edits_stop_it_before_anything() {
    if !require_command("git") {
        return;
    }
    let xla = SyntheticXla::build();
    let s = base_project(&xla);
    let edited = format!("{}\n# a local edit\n", s.read("pins.toml"));
    std::fs::write(s.path().join("pins.toml"), edited).unwrap();
    std::fs::write(s.path().join("CHANGELOG.md"), "# Changelog\n\n- local\n").unwrap();
    let before = snapshot(s.path());
    let out = s.upgrade(xla.path(), &[&xla.compatible], &[]);
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(stderr.contains("uncommitted local edits") && stderr.contains("pins.toml") && stderr.contains("CHANGELOG.md"), "{stderr}");
    assert!(!stderr.contains("[2/"), "stopped before any work after resolving: {stderr}");
    assert_eq!(snapshot(s.path()), before);
}

/// Issue 13, item 1: a check that cannot run must refuse. Without git on
/// PATH, or when git will not read the checkout ("dubious ownership"),
/// local edits cannot be seen, so nothing may be written.
#[test]
fn unrunnable_git_refuses_instead_of_overwriting_edits() {
    if !require_command("git") {
        return;
    }
    let xla = SyntheticXla::build();
    let s = base_project(&xla);
    std::fs::write(s.path().join("pins.toml"), format!("{}\n# a local edit\n", s.read("pins.toml"))).unwrap();
    let before = snapshot(s.path());

    // git absent from PATH (the xtask itself needs nothing else here).
    let empty_path = tempfile::tempdir().unwrap();
    let out = s.upgrade(xla.path(), &[&xla.compatible], &[("PATH", empty_path.path().to_str().unwrap())]);
    let (_, stderr) = text(&out);
    assert!(!out.status.success(), "must refuse without git: {stderr}");
    assert!(stderr.contains("`git` is needed but cannot be found on PATH"), "{stderr}");
    assert_eq!(snapshot(s.path()), before);

    // git present but refusing the checkout: safe.directory is read from the
    // global config, which an empty one does not set, and a checkout owned by
    // someone else is refused. GIT_TEST_ASSUME_DIFFERENT_OWNER makes git act
    // as if another user owned it.
    let home = tempfile::tempdir().unwrap();
    let out = s.upgrade(
        xla.path(),
        &[&xla.compatible],
        &[("HOME", home.path().to_str().unwrap()), ("GIT_CONFIG_NOSYSTEM", "1"), ("GIT_TEST_ASSUME_DIFFERENT_OWNER", "1")],
    );
    let (_, stderr) = text(&out);
    assert!(!out.status.success(), "must refuse when git cannot read the checkout: {stderr}");
    assert!(stderr.contains("cannot check") && stderr.contains("dubious ownership"), "{stderr}");
    assert_eq!(snapshot(s.path()), before);
}

#[test]
fn missing_blob_is_a_clear_error() {
    if !require_command("git") {
        return;
    }
    let xla = SyntheticXla::build();
    let partial = xla.commit_with_missing_blob();
    let s = base_project(&xla);
    let before = snapshot(s.path());
    // On top of the Bazel 8 commit: accepted, to reach the hash.
    let out = s.upgrade(xla.path(), &[&partial, "--accept-bazel-major"], &[]);
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(stderr.contains(&format!("cannot hash the tree of {partial}")) && stderr.contains("lacks objects"), "{stderr}");
    assert_eq!(snapshot(s.path()), before);
}

#[test]
fn failure_at_every_step_changes_nothing() {
    if !require_command("git") {
        return;
    }
    let xla = SyntheticXla::build();
    let s = base_project(&xla);
    let before = snapshot(s.path());
    for step in ["resolve", "hash", "versions", "diff", "pins", "nix", "bindings", "compile", "report", "commit"] {
        let mut args = vec![xla.compatible.as_str()];
        if step == "nix" {
            args.push("--nix");
        }
        let out = s.upgrade(xla.path(), &args, &[("PJRTPKGS_UPGRADE_FAIL_AT", step)]);
        let (_, stderr) = text(&out);
        assert!(!out.status.success(), "{step}: {stderr}");
        assert!(stderr.contains("injected failure"), "{step}: {stderr}");
        assert_eq!(snapshot(s.path()), before, "failure at {step} changed the tree");
    }
    let out = s.upgrade(xla.path(), &[&xla.compatible], &[("PJRTPKGS_UPGRADE_FAIL_AT", "nonsense")]);
    assert!(!out.status.success() && text(&out).1.contains("names no step"));
    // And the same project still upgrades afterwards.
    let out = s.upgrade(xla.path(), &[&xla.compatible], &[]);
    assert!(out.status.success(), "{}", text(&out).1);
}

/// Issue 16: LLVM, StableHLO (commit and the version plugins accept) and
/// Shardy, before and after, with the range crossed; a move is a decision
/// for MLIR bindings. Expected values are read from the synthetic history
/// with git, not from the xtask.
#[test]
fn toolchain_moves_are_reported() {
    use upgrade_support::{LLVM_BASE, LLVM_NEW, SHARDY_NEW, STABLEHLO_BASE, STABLEHLO_NEW};
    if !require_command("git") {
        return;
    }
    let xla = SyntheticXla::build();
    let s = base_project(&xla);
    let range = format!("{}..{}", xla.base, xla.compatible);
    let llvm_integrates = support::git(xla.path(), &["log", "--format=%H", &range, "--", "third_party/llvm/workspace.bzl"]).lines().count();
    assert_eq!(llvm_integrates, 2, "the synthetic history integrates LLVM twice");

    let out = s.upgrade(xla.path(), &[&xla.compatible, "--json"], &[]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let j: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let report = j["report"].as_str().unwrap();
    assert_eq!(report, s.read(j["report_path"].as_str().unwrap()), "the JSON carries the written report");
    let row =
        |name: &str| report.lines().find(|l| l.starts_with(&format!("| {name} "))).unwrap_or_else(|| panic!("no {name} row: {report}"));
    let llvm = row("LLVM commit");
    assert!(llvm.contains(&format!("`{}`", &LLVM_BASE[..12])) && llvm.contains(&format!("`{}`", &LLVM_NEW[..12])), "{llvm}");
    assert!(llvm.contains(&format!("{llvm_integrates} XLA commit(s) changed it")), "{llvm}");
    assert!(llvm.contains(&format!("https://github.com/llvm/llvm-project/compare/{LLVM_BASE}...{LLVM_NEW}")), "{llvm}");
    assert!(row("StableHLO commit").contains(&format!("`{}`", &STABLEHLO_NEW[..12])), "{report}");
    assert!(row("Shardy commit").contains("(not vendored) | (not vendored) | unchanged"), "{report}");
    // Read from XLA's own temporary.patch (the new side of its Version.h hunk).
    let version = row("StableHLO version plugins accept");
    assert!(version.contains("| 1.9.0 | 1.10.0 | **changed**"), "{version}");
    assert!(report.contains("`third_party/stablehlo/temporary.patch` patches `stablehlo/dialect/Version.h`"), "{report}");
    let decisions = &report[report.find("## Needs a human decision").unwrap()..report.find("## Toolchain versions").unwrap()];
    for needle in
        ["**LLVM commit** (MLIR bindings)", "**StableHLO commit** (MLIR bindings)", "**StableHLO version** (MLIR bindings): 1.9.0 → 1.10.0"]
    {
        assert!(decisions.contains(needle), "missing {needle}: {decisions}");
    }
    assert!(stderr.contains("!! LLVM commit:") && stderr.contains("!! StableHLO version:"), "{stderr}");
    assert_eq!(j["toolchain"]["old"]["llvm"].as_str(), Some(LLVM_BASE));
    assert_eq!(j["toolchain"]["new"]["stablehlo"].as_str(), Some(STABLEHLO_NEW));
    assert_eq!(j["toolchain"]["new"]["stablehlo_version"].as_str(), Some("1.10.0"));
    assert_eq!(j["toolchain"]["moved"][0]["xla_integrates"].as_u64(), Some(llvm_integrates as u64));
    assert_eq!(j["toolchain"]["old"]["stablehlo"].as_str(), Some(STABLEHLO_BASE));

    // Next: Shardy appears, and the patch no longer records the version,
    // which is then unknown without a StableHLO clone (and says how to get it).
    support::git(s.path(), &["add", "-A"]);
    support::git(s.path(), &["commit", "-q", "-m", "upgraded"]);
    let out = s.upgrade(xla.path(), &[&xla.breaking, "--accept-bazel-major"], &[]);
    let (report, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(report.contains(&format!("| Shardy commit | (not vendored) | `{}` |", &SHARDY_NEW[..12])), "{report}");
    assert!(report.contains("**Shardy commit** (MLIR bindings)"), "{report}");
    assert!(report.contains("| 1.10.0 | unknown (below) |") && report.contains("set STABLEHLO_REPO"), "{report}");
}

/// Issue 16 / issue 13: a dry run goes through every step past every
/// refusal (downgrade, Bazel major, local edits), lists each reason a real
/// run would stop, exits 1 because one would, and writes nothing; with the
/// refusals lifted it exits 0 and a real run writes exactly what it listed.
#[test]
fn dry_run_shows_every_step_past_every_refusal() {
    if !require_command("git") {
        return;
    }
    let xla = SyntheticXla::build();
    // Pinned at the Bazel 8 commit: going back to base is a downgrade AND a
    // Bazel major change (8 -> 7); a local edit to CHANGELOG.md on top.
    let s = Scratch::new(&upgrade_support::pins_for(&xla.breaking, "2024-05-28T16:06:45-07:00", "0.3", "8.0.0"));
    std::fs::write(s.path().join("CHANGELOG.md"), "# Changelog\n\n- a local edit\n").unwrap();
    let before = snapshot(s.path());
    let out = s.upgrade(xla.path(), &[&xla.base, "--dry-run"], &[]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "a real run would stop: {stderr}");
    assert_eq!(snapshot(s.path()), before, "a dry run writes nothing");
    assert!(stdout.starts_with("# XLA downgrade:"), "the report comes first: {stdout}");
    let dry = &stdout[stdout.find("## Dry run: what a real run would do").expect("dry-run section")..];
    for step in ["resolve", "hash", "versions", "diff", "pins", "bindings", "compile", "report"] {
        assert!(dry.lines().any(|l| l.contains(&format!(". {step} | done"))), "step {step} not done: {dry}");
    }
    assert!(dry.contains("| 9. commit | skipped: dry run"), "{dry}");
    let stops = &dry[dry.find("### Why a real run would stop").unwrap()..];
    for needle in ["refusing to downgrade", "uncommitted local edits", "CHANGELOG.md", "Bazel major version 8 -> 7", "--accept-bazel-major"]
    {
        assert!(stops.contains(needle), "missing {needle}: {stops}");
    }
    assert!(dry.contains("modify `pins.toml`") && dry.contains("create `docs/upgrades/"), "{dry}");
    assert!(stderr.contains("a real run would STOP (3 reason(s))"), "{stderr}");

    // The same as JSON.
    let out = s.upgrade(xla.path(), &[&xla.base, "--dry-run", "--json"], &[]);
    assert_eq!(out.status.code(), Some(1));
    let j: serde_json::Value = serde_json::from_str(&text(&out).0).unwrap();
    assert_eq!(j["would_succeed"], false);
    let steps: Vec<&str> = j["stops"].as_array().unwrap().iter().map(|s| s["step"].as_str().unwrap()).collect();
    assert_eq!(steps, ["resolve", "resolve", "pins"]);

    // Lift every refusal: the dry run says a real run would succeed, and the
    // real run writes exactly the files the dry run listed.
    support::git(s.path(), &["checkout", "--", "CHANGELOG.md"]);
    let lifted = [xla.base.as_str(), "--allow-downgrade", "--accept-bazel-major"];
    let out = s.upgrade(xla.path(), &[&lifted[..], &["--dry-run", "--json"]].concat(), &[]);
    assert!(out.status.success(), "{}", text(&out).1);
    let dry: serde_json::Value = serde_json::from_str(&text(&out).0).unwrap();
    assert_eq!(dry["would_succeed"], true);
    let out = s.upgrade(xla.path(), &[&lifted[..], &["--json"]].concat(), &[]);
    assert!(out.status.success(), "{}", text(&out).1);
    let real: serde_json::Value = serde_json::from_str(&text(&out).0).unwrap();
    assert_eq!(dry["files"], real["files"]);
    assert_eq!(dry["report"], real["report"]);
    let modified = support::git(s.path(), &["diff", "--name-only"]);
    let created = support::git(s.path(), &["ls-files", "--others", "--exclude-standard"]);
    let mut touched: Vec<&str> = modified.lines().chain(created.lines()).collect();
    touched.sort();
    let listed: Vec<&str> = real["files"].as_array().unwrap().iter().map(|f| f["path"].as_str().unwrap()).collect();
    assert_eq!(touched, listed);
}

/// Issue 13: `--dry-run` refused on local edits although it writes nothing.
/// It must show the report and name the edits as a reason a real run stops.
#[test]
fn dry_run_reports_local_edits_instead_of_refusing() {
    if !require_command("git") {
        return;
    }
    let xla = SyntheticXla::build();
    let s = base_project(&xla);
    std::fs::write(s.path().join("pins.toml"), format!("{}\n# a local edit\n", s.read("pins.toml"))).unwrap();
    let before = snapshot(s.path());
    let out = s.upgrade(xla.path(), &[&xla.compatible, "--dry-run"], &[]);
    let (stdout, stderr) = text(&out);
    assert_eq!(snapshot(s.path()), before);
    assert!(stdout.contains("verdict: COMPATIBLE"), "the dry run shows the report despite the edits: {stderr}");
    assert!(stdout.contains("uncommitted local edits") && stdout.contains("pins.toml"), "{stdout}");
    assert_eq!(out.status.code(), Some(1), "a real run would stop");
}

/// Issue 13: a dry run numbered its steps [n/8] and a real run [n/9]. The
/// same steps carry the same numbers in both.
#[test]
fn dry_and_real_runs_number_steps_alike() {
    if !require_command("git") {
        return;
    }
    let xla = SyntheticXla::build();
    let labels = |stderr: &str| -> Vec<String> {
        stderr
            .lines()
            .filter(|l| l.starts_with('['))
            .map(|l| l.split(':').next().unwrap().split(']').next().unwrap().to_string() + "]")
            .collect()
    };
    let s = base_project(&xla);
    let dry = s.upgrade(xla.path(), &[&xla.compatible, "--dry-run"], &[]);
    let real = s.upgrade(xla.path(), &[&xla.compatible], &[]);
    assert!(dry.status.success() && real.status.success(), "{}", text(&real).1);
    let (d, r) = (labels(&text(&dry).1), labels(&text(&real).1));
    assert_eq!(d, r, "dry:\n{}\nreal:\n{}", text(&dry).1, text(&real).1);
    assert_eq!(r.last().map(String::as_str), Some("[9/9]"), "{r:?}");
}

/// Issue 13: the missing-blob error gave two different `git fetch` commands.
#[test]
fn missing_blob_error_gives_one_way_out() {
    if !require_command("git") {
        return;
    }
    let xla = SyntheticXla::build();
    let partial = xla.commit_with_missing_blob();
    let s = base_project(&xla);
    // On top of the Bazel 8 commit: accepted, to reach the hash.
    let out = s.upgrade(xla.path(), &[&partial, "--accept-bazel-major"], &[]);
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert_eq!(stderr.matches("git fetch").count(), 1, "one fetch command, not two: {stderr}");
    assert!(stderr.contains("complete clone"), "{stderr}");
}
