//! The scheduled bump (`.ci/upgrade-xla-bump`, run by
//! `.github/workflows/upgrade-xla.yml`) on real XLA history (`XLA_REPO`):
//! the very script the workflow runs, with a real git remote (a bare
//! repository on disk) to push to. GitHub itself is not reachable here: `gh`
//! is a stand-in that records its arguments and answers `pr list` as GitHub
//! would (no open pull request, then the one it "created"), so what is
//! tested is which pull-request command the script runs with which title
//! and body, not GitHub's API.

mod support;
mod upgrade_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::{project_root, require_command, require_libclang, xla_repo};
use upgrade_support::{git, stablehlo_repo, xtask_bin, Scratch};

/// PJRT API 0.47 -> 0.50 (as in upgrade_real.rs): a breaking API diff
/// (renames that keep the ABI), LLVM and StableHLO moves.
const OLD: &str = "3c8260f614901f5cf2dd81530e009db8e6c9789b";
const NEW: &str = "e715c172bd3fd4421f9e45993c6814e8119c1c20";

struct Bump {
    s: Scratch,
    origin: tempfile::TempDir,
    gh_dir: tempfile::TempDir,
    xla: PathBuf,
}

/// `gh` for the test: appends its arguments (one per line, then `--`) to
/// $GH_LOG; `pr list` prints the number in $GH_STATE (empty until `pr
/// create` writes 7 there, as GitHub would number it).
const FAKE_GH: &str = r#"#!/bin/sh
for a in "$@"; do printf '%s\n' "$a" >> "$GH_LOG"; done
echo -- >> "$GH_LOG"
case "$1 $2" in
  "pr list") cat "$GH_STATE" 2>/dev/null || true ;;
  "pr create") echo 7 > "$GH_STATE"; echo "https://github.example/pjrtpkgs/pull/7" ;;
  "pr edit") echo "https://github.example/pjrtpkgs/pull/7" ;;
esac
"#;

impl Bump {
    fn new(xla: &Path, pinned: &str) -> Bump {
        let date = git(xla, &["log", "-1", "--format=%cI", pinned]);
        let bazel = git(xla, &["show", &format!("{pinned}:.bazelversion")]);
        let header = git(xla, &["show", &format!("{pinned}:xla/pjrt/c/pjrt_c_api.h")]);
        let define = |name: &str| {
            header.lines().find(|l| l.starts_with(&format!("#define {name} "))).unwrap().split_whitespace().nth(2).unwrap().to_string()
        };
        let api = format!("{}.{}", define("PJRT_API_MAJOR"), define("PJRT_API_MINOR"));
        let s = Scratch::with_real_pjrt_sys(&upgrade_support::pins_for(pinned, &date, &api, bazel.lines().next().unwrap().trim()));
        // The script is the project's own, in the checkout under test.
        std::fs::create_dir_all(s.path().join(".ci")).unwrap();
        std::fs::copy(project_root().join(".ci/upgrade-xla-bump"), s.path().join(".ci/upgrade-xla-bump")).unwrap();
        git(s.path(), &["add", "-A"]);
        git(s.path(), &["commit", "-q", "-m", "the bump script"]);
        let origin = tempfile::tempdir().unwrap();
        git(origin.path(), &["init", "-q", "--bare"]);
        git(s.path(), &["remote", "add", "origin", origin.path().to_str().unwrap()]);
        git(s.path(), &["push", "-q", "origin", "main"]);
        let gh_dir = tempfile::tempdir().unwrap();
        let gh = gh_dir.path().join("gh");
        std::fs::write(&gh, FAKE_GH).unwrap();
        std::fs::set_permissions(&gh, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        Bump { s, origin, gh_dir, xla: xla.to_path_buf() }
    }

    fn gh_log(&self) -> String {
        std::fs::read_to_string(self.gh_dir.path().join("log")).unwrap_or_default()
    }

    /// Runs the script for `target`; its outputs go to `out`.
    fn run(&self, target: &str, out: &Path, stablehlo: Option<&Path>) -> Output {
        let xtask = xtask_bin();
        let mut cmd = Command::new("bash");
        cmd.arg(".ci/upgrade-xla-bump").arg(target).current_dir(self.s.path());
        // The xtask's own environment (cache, staging target), as Scratch runs it.
        let base = self.s.command(&[]);
        for (k, v) in base.get_envs() {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        cmd.env("XTASK", &xtask)
            .env("XLA_REPO", &self.xla)
            .env("GH", self.gh_dir.path().join("gh"))
            .env("GH_LOG", self.gh_dir.path().join("log"))
            .env("GH_STATE", self.gh_dir.path().join("state"))
            .env("BUMP_OUT", out)
            // The tests the bump runs: here, that the committed bindings are
            // exactly what bindgen makes of the new pin (the full suite is
            // `.ci/run`, the default).
            .env("BUMP_TESTS", format!("'{}' bindgen --check", xtask.display()))
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env_remove("GITHUB_STEP_SUMMARY");
        match stablehlo {
            Some(sh) => cmd.env("STABLEHLO_REPO", sh),
            None => cmd.env_remove("STABLEHLO_REPO"),
        };
        cmd.output().unwrap()
    }
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[test]
fn scheduled_bump_opens_then_updates_one_pull_request() {
    let Some(xla) = xla_repo() else { return };
    if !require_command("git") || !require_command("python3") || !require_libclang() {
        return;
    }
    let stablehlo = stablehlo_repo();
    let b = Bump::new(&xla, OLD);
    let out1 = tempfile::tempdir().unwrap();
    let first = b.run(NEW, out1.path(), stablehlo.as_deref());
    assert!(first.status.success(), "{}", text(&first));

    // The branch on the remote: one commit on top of main, holding exactly
    // the files upgrade-xla wrote, pins.toml at the new commit.
    let origin = b.origin.path();
    let main = git(origin, &["rev-parse", "main"]);
    assert_eq!(git(origin, &["rev-parse", "upgrade-xla/bump^"]), main);
    let pins: toml::Table = git(origin, &["show", "upgrade-xla/bump:pins.toml"]).parse().unwrap();
    assert_eq!(pins["xla"]["commit"].as_str(), Some(NEW));
    let upgrade: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out1.path().join("upgrade.json")).unwrap()).unwrap();
    let listed: Vec<&str> = upgrade["files"].as_array().unwrap().iter().map(|f| f["path"].as_str().unwrap()).collect();
    let committed = git(origin, &["diff", "--name-only", "main", "upgrade-xla/bump"]);
    assert_eq!(committed.lines().collect::<Vec<_>>(), listed);
    // The checkout is back on main, clean.
    assert_eq!(git(b.s.path(), &["symbolic-ref", "--short", "HEAD"]), "main");
    assert_eq!(git(b.s.path(), &["status", "--porcelain"]), "");

    // The pull request: created once, titled with the breakage, its body the report.
    let log = b.gh_log();
    let calls: Vec<&str> = log.split("--\n").filter(|c| !c.is_empty()).collect();
    assert_eq!(calls.len(), 2, "{log}");
    assert!(calls[0].starts_with("pr\nlist\n--head\nupgrade-xla/bump\n--base\nmain\n"), "{log}");
    let create: Vec<&str> = calls[1].lines().collect();
    assert_eq!(&create[..6], ["pr", "create", "--head", "upgrade-xla/bump", "--base", "main"], "{log}");
    let title = create[create.iter().position(|a| *a == "--title").unwrap() + 1];
    assert_eq!(
        title,
        format!(
            "XLA upgrade {} → {} (PJRT 0.47 → 0.50): BREAKS the PJRT C API (source only, the ABI holds) and protobuf message sources",
            &OLD[..12],
            &NEW[..12]
        )
    );
    let body_file = create[create.iter().position(|a| *a == "--body-file").unwrap() + 1];
    let body = std::fs::read_to_string(body_file).unwrap();
    let report_path = upgrade["report_path"].as_str().unwrap();
    let report = git(origin, &["show", &format!("upgrade-xla/bump:{report_path}")]);
    assert!(body.starts_with(report.trim_end()), "the body is the report");
    assert!(body.contains("**Tests** (`") && body.contains("bindgen --check`): passed"), "{body}");
    assert!(body.contains("**LLVM commit** (MLIR bindings)"), "{body}");

    // The next scheduled run: the same pull request is updated, not a second one.
    let out2 = tempfile::tempdir().unwrap();
    let second = b.run(NEW, out2.path(), stablehlo.as_deref());
    assert!(second.status.success(), "{}", text(&second));
    let log = b.gh_log();
    let calls: Vec<&str> = log.split("--\n").filter(|c| !c.is_empty()).collect();
    assert_eq!(calls.len(), 4, "{log}");
    assert!(calls[3].starts_with("pr\nedit\n7\n--title\n"), "{log}");
    assert_eq!(log.matches("pr\ncreate\n").count(), 1, "one pull request: {log}");
    assert_eq!(git(origin, &["rev-parse", "upgrade-xla/bump^"]), main, "still one commit on top of main");
}

/// When a real run would stop, the bump stops: nothing pushed, no pull
/// request, the reasons in body.md. (This 2025 pair fails to hash in the
/// mirror, which lacks a test blob, and changes the Bazel major.)
#[test]
fn scheduled_bump_stops_where_a_real_run_would() {
    let Some(xla) = xla_repo() else { return };
    if !require_command("git") || !require_command("python3") || !require_libclang() {
        return;
    }
    let b = Bump::new(&xla, "6372c2f7c759dc2630ad871d1393bd3b93f59f9e");
    let out = tempfile::tempdir().unwrap();
    let run = b.run("2182f7e856f0196640bea2681a275eb86a78ad49", out.path(), None);
    assert_eq!(run.status.code(), Some(1), "{}", text(&run));
    let title = std::fs::read_to_string(out.path().join("title.txt")).unwrap();
    assert!(title.contains("would STOP"), "{title}");
    let body = std::fs::read_to_string(out.path().join("body.md")).unwrap();
    assert!(body.contains("- **hash**: cannot hash the tree") && body.contains("- **pins**: Bazel major version"), "{body}");
    assert_eq!(b.gh_log(), "", "no pull request");
    assert_eq!(git(b.origin.path(), &["branch", "--list", "upgrade-xla/bump"]), "", "nothing pushed");
    assert_eq!(git(b.s.path(), &["status", "--porcelain"]), "");
}
