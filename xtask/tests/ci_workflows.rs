//! The GitHub Actions workflows and the scripts they run, attacked the way a
//! hostile input would: `zizmor` (the Actions linter, from PyPI; `.ci/run`
//! installs it) on every workflow, and `.ci/upgrade-xla-bump` driven with a
//! commit that looks like an option, a test log that tries to break out of
//! its code fence, and a token in its environment that the tests must not
//! see.
//!
//! The bump script here runs against a stand-in for `cargo xtask
//! upgrade-xla` (a shell script that records its arguments and answers with
//! the JSON the real verb prints), so these checks need no XLA history; the
//! script on real history is `upgrade_bump.rs`.

mod support;

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;
use support::{project_root, require_command};

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[test]
fn zizmor_finds_nothing_of_medium_or_high_severity() {
    if !require_command("zizmor") {
        return;
    }
    let out = Command::new("zizmor")
        .args(["--offline", "--format", "json", ".github/workflows/"])
        .current_dir(project_root())
        .output()
        .expect("zizmor runs");
    let findings: Vec<Value> =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("zizmor printed no JSON ({e}): {}", text(&out)));
    let serious: Vec<String> = findings
        .iter()
        .filter(|f| f["ignored"] != true)
        .filter(|f| matches!(f["determinations"]["severity"].as_str(), Some("Medium" | "High")))
        .map(|f| {
            let at = &f["locations"][0];
            format!(
                "{} ({}): {} at {}:{} `{}`",
                f["ident"].as_str().unwrap_or("?"),
                f["determinations"]["severity"].as_str().unwrap_or("?"),
                f["desc"].as_str().unwrap_or("?"),
                at["symbolic"]["key"]["Local"]["verbatim_path"].as_str().unwrap_or("?"),
                at["concrete"]["location"]["start_point"]["row"].as_u64().map_or(0, |r| r + 1),
                at["concrete"]["feature"].as_str().unwrap_or("").lines().next().unwrap_or(""),
            )
        })
        .collect();
    assert!(serious.is_empty(), "zizmor --offline finds {} medium/high finding(s):\n{}", serious.len(), serious.join("\n"));
}

/// Stands in for `cargo xtask`: records each call's arguments in
/// $FAKE_LOG (one per line, then `@@end`) and answers `upgrade-xla` as the
/// real verb would, writing pins.toml on a real run.
const FAKE_XTASK: &str = r##"#!/bin/sh
for a in "$@"; do printf '%s\n' "$a" >> "$FAKE_LOG"; done
echo @@end >> "$FAKE_LOG"
dry=0
for a in "$@"; do [ "$a" = --dry-run ] && dry=1; done
if [ "$dry" = 0 ]; then printf 'commit = "new"\n' > pins.toml; fi
cat <<'JSON'
{"status": "upgraded", "would_succeed": true, "stops": [], "breaks": [], "abi_verdict": "compatible",
 "old": {"commit": "1111111111111111111111111111111111111111", "pjrt_api_version": "0.93"},
 "new": {"commit": "2222222222222222222222222222222222222222", "pjrt_api_version": "0.94"},
 "files": [{"path": "pins.toml", "change": "modify"}], "report_path": "docs/upgrades/x.md", "report": "# the report\n"}
JSON
"##;

struct BumpScript {
    checkout: tempfile::TempDir,
    tools: tempfile::TempDir,
}

impl BumpScript {
    fn new() -> BumpScript {
        let checkout = tempfile::tempdir().unwrap();
        let c = checkout.path();
        std::fs::create_dir_all(c.join(".ci")).unwrap();
        std::fs::copy(project_root().join(".ci/upgrade-xla-bump"), c.join(".ci/upgrade-xla-bump")).unwrap();
        std::fs::write(c.join("pins.toml"), "commit = \"old\"\n").unwrap();
        for args in [
            &["init", "-q", "-b", "main"][..],
            &["add", "-A"],
            &["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "base"],
        ] {
            let out = Command::new("git").args(args).current_dir(c).env("GIT_CONFIG_GLOBAL", "/dev/null").output().unwrap();
            assert!(out.status.success(), "git {args:?}: {}", text(&out));
        }
        let tools = tempfile::tempdir().unwrap();
        let xtask = tools.path().join("xtask");
        std::fs::write(&xtask, FAKE_XTASK).unwrap();
        std::fs::set_permissions(&xtask, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        BumpScript { checkout, tools }
    }

    fn out(&self) -> PathBuf {
        self.tools.path().join("out")
    }

    /// Runs the script with `args`, the tests being `tests`, a token in the
    /// environment, publishing nothing.
    fn run(&self, args: &[&str], tests: &str) -> Output {
        Command::new("bash")
            .arg(".ci/upgrade-xla-bump")
            .args(args)
            .current_dir(self.checkout.path())
            .env("XTASK", self.tools.path().join("xtask"))
            .env("FAKE_LOG", self.tools.path().join("log"))
            .env("BUMP_OUT", self.out())
            .env("BUMP_TESTS", tests)
            .env("BUMP_PUBLISH", "0")
            .env("GH_TOKEN", "ghs_secret_token_the_tests_must_not_see")
            .env("GITHUB_TOKEN", "ghs_secret_token_the_tests_must_not_see")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env_remove("GITHUB_STEP_SUMMARY")
            .output()
            .unwrap()
    }

    fn calls(&self) -> Vec<Vec<String>> {
        let log = std::fs::read_to_string(self.tools.path().join("log")).unwrap_or_default();
        log.split("@@end\n").filter(|c| !c.is_empty()).map(|c| c.lines().map(str::to_owned).collect()).collect()
    }
}

#[test]
fn bump_passes_the_commit_as_an_operand_and_keeps_the_token_from_the_tests() {
    if !require_command("git") || !require_command("python3") {
        return;
    }
    let b = BumpScript::new();
    let env_dump = b.tools.path().join("tests-env");
    let out = b.run(&["main"], &format!("env > '{}'", env_dump.display()));
    assert!(out.status.success(), "{}", text(&out));
    let calls = b.calls();
    assert_eq!(calls.len(), 2, "{calls:?}");
    for call in &calls {
        assert_eq!(call.last().map(String::as_str), Some("main"), "{call:?}");
        assert_eq!(call.get(call.len() - 2).map(String::as_str), Some("--"), "the commit is not after `--`: {call:?}");
    }
    let seen = std::fs::read_to_string(&env_dump).unwrap();
    assert!(!seen.contains("ghs_secret_token"), "the tests ran with the token in their environment:\n{seen}");

    // A "commit" that reads as an option of the xtask is refused before the
    // xtask runs (no git ref starts with `-`).
    let b = BumpScript::new();
    let out = b.run(&["--project=/etc"], "true");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("is not a commit"), "{}", text(&out));
    assert!(b.calls().is_empty(), "the xtask ran: {:?}", b.calls());
}

#[test]
fn bump_keeps_the_test_log_inside_its_code_fence() {
    if !require_command("git") || !require_command("python3") {
        return;
    }
    let b = BumpScript::new();
    let hostile = "printf 'ok\\n```\\n\\n# Injected heading\\n\\n[click](https://evil.example)\\n``````\\n'";
    let out = b.run(&["main"], hostile);
    assert!(out.status.success(), "{}", text(&out));
    let body = std::fs::read_to_string(b.out().join("body.md")).unwrap();
    let lines: Vec<&str> = body.lines().collect();
    let injected = lines.iter().position(|l| *l == "# Injected heading").expect("the log is in the body");
    // The fence that opens the log block: the first fence line after its summary.
    let summary = lines.iter().position(|l| l.contains("last lines of the test log")).expect("the log's summary");
    let open = (summary..lines.len()).find(|&i| lines[i].starts_with("```") || lines[i].starts_with("~~~")).expect("an opening fence");
    assert!(open < injected);
    let fence = lines[open].trim_end();
    let fence_char = fence.chars().next().unwrap();
    let fence_len = fence.chars().take_while(|c| *c == fence_char).count();
    // CommonMark: a fence closes only with at least as many of its characters.
    let closes = |l: &str| {
        let run = l.trim().chars().take_while(|c| *c == fence_char).count();
        run >= fence_len && l.trim().chars().all(|c| c == fence_char)
    };
    let close = (open + 1..lines.len()).find(|&i| closes(lines[i])).expect("a closing fence");
    assert!(close > injected + 2, "the log closes its fence early (fence `{fence}`, closed at line {close}):\n{body}");
    assert!(lines[close + 1..].iter().all(|l| !l.contains("Injected") && !l.contains("evil.example")), "{body}");
}

/// The workflow's two steps: `--prepare` (no token) commits locally,
/// `--publish` (the token) pushes and opens the pull request; the token is
/// never written to the checkout's git configuration.
#[test]
fn bump_publishes_in_a_second_step_without_persisting_the_token() {
    if !require_command("git") || !require_command("python3") {
        return;
    }
    let b = BumpScript::new();
    let origin = tempfile::tempdir().unwrap();
    let git = |dir: &std::path::Path, args: &[&str]| {
        let out = Command::new("git").args(args).current_dir(dir).env("GIT_CONFIG_GLOBAL", "/dev/null").output().unwrap();
        assert!(out.status.success(), "git {args:?}: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    git(origin.path(), &["init", "-q", "--bare"]);
    git(b.checkout.path(), &["remote", "add", "origin", origin.path().to_str().unwrap()]);
    let gh = b.tools.path().join("gh");
    std::fs::write(
        &gh,
        "#!/bin/sh\nprintf '%s\\n' \"$*\" >> \"$GH_LOG\"\ncase \"$1 $2\" in \"pr create\") echo https://github.example/pull/1 ;; esac\n",
    )
    .unwrap();
    std::fs::set_permissions(&gh, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let step = |args: &[&str], token: bool| {
        let mut cmd = Command::new("bash");
        cmd.arg(".ci/upgrade-xla-bump")
            .args(args)
            .current_dir(b.checkout.path())
            .env("XTASK", b.tools.path().join("xtask"))
            .env("FAKE_LOG", b.tools.path().join("log"))
            .env("GH", &gh)
            .env("GH_LOG", b.tools.path().join("gh-log"))
            .env("BUMP_OUT", b.out())
            .env("BUMP_TESTS", "true")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env_remove("GH_TOKEN")
            .env_remove("GITHUB_TOKEN")
            .env_remove("GITHUB_STEP_SUMMARY");
        if token {
            cmd.env("GH_TOKEN", "ghs_secret_token_for_the_push");
        }
        cmd.output().unwrap()
    };
    let out = step(&["--prepare", "--", "main"], false);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(git(origin.path(), &["branch", "--list", "upgrade-xla/bump"]), "", "--prepare pushed");
    assert!(!b.tools.path().join("gh-log").exists(), "--prepare called gh");
    let out = step(&["--publish"], true);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        git(origin.path(), &["rev-parse", "upgrade-xla/bump^"]),
        git(b.checkout.path(), &["rev-parse", "main"]),
        "one commit on main, pushed"
    );
    let gh_log = std::fs::read_to_string(b.tools.path().join("gh-log")).unwrap();
    assert!(gh_log.contains("pr create --head upgrade-xla/bump --base main"), "{gh_log}");
    let config = std::fs::read_to_string(b.checkout.path().join(".git/config")).unwrap();
    assert!(!config.contains("ghs_secret") && !config.contains("extraheader"), "{config}");
}
