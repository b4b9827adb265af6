//! pins.toml: the typed model, located errors, the check rules, edits that
//! keep comments and order, atomic writes, and the `pins` verb's exit codes.

use std::path::{Path, PathBuf};
use std::process::Command;

use xtask::pinfile::{check, Pins, PinsDocument, PrebuiltPin, PrebuiltPlatform, Severity, STALE_HASH};

fn project_pins() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().join("pins.toml")
}

fn project_text() -> String {
    std::fs::read_to_string(project_pins()).unwrap()
}

/// 1-based number of the first line of `text` starting with `prefix`.
fn line_of(text: &str, prefix: &str) -> usize {
    text.lines().position(|l| l.starts_with(prefix)).expect(prefix) + 1
}

fn replace_line(text: &str, prefix: &str, new: &str) -> String {
    let mut out: Vec<String> = text.lines().map(str::to_owned).collect();
    let i = line_of(text, prefix) - 1;
    out[i] = new.to_owned();
    out.join("\n") + "\n"
}

const OTHER_COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";
const SOME_HASH: &str = "sha256-K0lveAY1nXeFA9FIV3nXhEJ0r589CNaVp/M5heUo1BY=";

#[test]
fn project_file_is_valid() {
    let pins = Pins::load(&project_pins()).unwrap();
    assert_eq!(pins.xla.commit.len(), 40);
    assert!(pins.prebuilt.contains_key("xla-cpu-pjrt"));
    let report = check(&project_text(), "pins.toml");
    assert!(!report.has_errors(), "{:#?}", report.findings);
}

#[test]
fn unchanged_edits_keep_identical_bytes() {
    let text = project_text();
    let pins = Pins::parse(&text, "pins.toml").unwrap();
    let mut doc = PinsDocument::parse(&text).unwrap();
    doc.set_xla(&pins.xla);
    doc.set_bazel_version(&pins.toolchains.bazel.version);
    for (name, pin) in &pins.prebuilt {
        doc.set_prebuilt(name, pin);
    }
    assert_eq!(doc.to_string(), text);
}

#[test]
fn edits_keep_comments_and_order() {
    let text = project_text();
    let pins = Pins::parse(&text, "pins.toml").unwrap();
    let mut doc = PinsDocument::parse(&text).unwrap();
    let mut xla = pins.xla.clone();
    xla.commit = OTHER_COMMIT.to_owned();
    xla.pjrt_api_version = "0.94".to_owned();
    doc.set_xla(&xla);
    let edited = doc.to_string();
    let (old, new): (Vec<&str>, Vec<&str>) = (text.lines().collect(), edited.lines().collect());
    assert_eq!(old.len(), new.len());
    let changed: Vec<(&&str, &&str)> = old.iter().zip(&new).filter(|(a, b)| a != b).collect();
    assert_eq!(changed.len(), 2, "{changed:#?}");
    assert!(changed[0].1.contains(OTHER_COMMIT) && changed[1].1.contains("0.94"));
    let reparsed = Pins::parse(&edited, "edited").unwrap();
    assert_eq!(reparsed.xla, xla);
    assert_eq!(reparsed.prebuilt, pins.prebuilt);
}

#[test]
fn bazel_deps_staleness_follows_the_xla_commit() {
    // The project's pins without [bazel_deps.cuda12.*], so that pinning it adds a table.
    let mut without_cuda12: toml_edit::DocumentMut = project_text().parse().unwrap();
    without_cuda12["bazel_deps"].as_table_like_mut().unwrap().remove("cuda12");
    let text = without_cuda12.to_string();
    let pins = Pins::parse(&text, "pins.toml").unwrap();
    let mut doc = PinsDocument::parse(&text).unwrap();
    for (backend, systems) in &pins.bazel_deps {
        for system in systems.keys() {
            doc.set_bazel_deps_hash(backend, system, SOME_HASH, &pins.xla.commit);
        }
    }
    doc.set_bazel_deps_hash("cuda12", "x86_64-linux", SOME_HASH, &pins.xla.commit);
    let pinned = pins.bazel_deps.values().map(|systems| systems.len()).sum::<usize>() + 1;
    let report = check(&doc.to_string(), "edited");
    assert_eq!(report.counts(), (0, 0), "{:#?}", report.findings);
    assert_eq!(report.exit_code(), 0);
    // The new backend's table goes after the existing [bazel_deps] table.
    let edited = doc.to_string();
    assert!(line_of(&edited, "[bazel_deps.cuda12.x86_64-linux]") > line_of(&edited, "[bazel_deps.cpu.x86_64-linux]"));

    let mut xla = pins.xla.clone();
    xla.commit = OTHER_COMMIT.to_owned();
    doc.set_xla(&xla);
    let report = check(&doc.to_string(), "edited");
    assert_eq!(report.counts(), (0, pinned));
    assert_eq!(report.exit_code(), 3);
    assert!(report.findings.iter().any(|f| f.severity == Severity::Stale && f.message.contains("computed for XLA")));

    doc.mark_bazel_deps_stale();
    let pins = doc.pins().unwrap();
    for systems in pins.bazel_deps.values() {
        for deps in systems.values() {
            assert_eq!(deps.hash, STALE_HASH);
            assert_eq!(deps.xla_commit, None);
        }
    }
}

const TEMPLATE: &str = r#"# Head comment.
schema_version = 1

[xla]
repository = "https://github.com/openxla/xla"
commit = "964a0a45a0c3090cd484a3c51e8f9d05ed10b968"
hash = "sha256-K0lveAY1nXeFA9FIV3nXhEJ0r589CNaVp/M5heUo1BY="
date = "2026-02-20T22:36:47-08:00"
pjrt_api_version = "0.93" # trailing comment survives
bazel_version = "7.7.0"

[toolchains.bazel]
version = "7.7.0"
nixpkgs_attribute = "bazel_7"

# About [prebuilt.<name>] tables.

# About bazel_deps.
[bazel_deps.cpu.x86_64-linux]
hash = "sha256-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
"#;

/// One deps hash marked unknown (as `deps-hash refresh` does in its scratch
/// copy): placeholder hash, no `xla_commit`, comments kept, the others untouched;
/// a missing table is created.
#[test]
fn one_bazel_deps_hash_marked_stale() {
    let text = project_text();
    let mut doc = PinsDocument::parse(&text).unwrap();
    let commit = doc.pins().unwrap().xla.commit;
    doc.set_bazel_deps_hash("cpu", "x86_64-linux", SOME_HASH, &commit);
    doc.set_bazel_deps_hash("cpu", "aarch64-linux", SOME_HASH, &commit);
    doc.mark_bazel_deps_hash_stale("cpu", "x86_64-linux");
    doc.mark_bazel_deps_hash_stale("cuda13", "riscv64-linux");
    let edited = doc.to_string();
    assert!(edited.starts_with("# pins.toml:"), "comments kept:\n{edited}");
    let t: toml::Table = edited.parse().unwrap();
    assert_eq!(t["bazel_deps"]["cpu"]["x86_64-linux"]["hash"].as_str(), Some(STALE_HASH));
    assert!(t["bazel_deps"]["cpu"]["x86_64-linux"].get("xla_commit").is_none());
    assert_eq!(t["bazel_deps"]["cpu"]["aarch64-linux"]["hash"].as_str(), Some(SOME_HASH));
    assert_eq!(t["bazel_deps"]["cpu"]["aarch64-linux"]["xla_commit"].as_str(), Some(commit.as_str()));
    assert_eq!(t["bazel_deps"]["cuda13"]["riscv64-linux"]["hash"].as_str(), Some(STALE_HASH));
    assert!(edited.contains("[bazel_deps.cuda13.riscv64-linux]"), "{edited}");
}

fn wheel(name: &str, version: &str, arch: &str) -> PrebuiltPlatform {
    PrebuiltPlatform {
        url: format!("https://files.pythonhosted.org/packages/aa/bb/cc/{name}-{version}-py3-none-manylinux_2_27_{arch}.whl"),
        sha256: "55837b6b7b47daa717f2d9a5a03563ea0ceaa338d06a81a1e2d3f060d960decc".to_owned(),
        library: format!("{name}/plugin.so"),
    }
}

fn plugin(name: &str, systems: &[(&str, &str)]) -> PrebuiltPin {
    PrebuiltPin {
        version: "1.0".to_owned(),
        backend: "cpu".to_owned(),
        pjrt_api_version: "0.81".to_owned(),
        pjrt_api_version_note: None,
        xla_commit: None,
        runtime: None,
        platforms: systems.iter().map(|(s, arch)| (s.to_string(), wheel(name, "1.0", arch))).collect(),
    }
}

#[test]
fn new_prebuilt_tables_go_in_their_place() {
    let mut doc = PinsDocument::parse(TEMPLATE).unwrap();
    doc.set_prebuilt("x", &plugin("x", &[("x86_64-linux", "x86_64")]));
    doc.set_prebuilt("y", &plugin("y", &[("x86_64-linux", "x86_64")]));
    let two_plugins = doc.to_string();
    doc.set_prebuilt("x", &plugin("x", &[("x86_64-linux", "x86_64"), ("aarch64-linux", "aarch64")]));
    let text = doc.to_string();
    let headers: Vec<&str> = text.lines().filter(|l| l.starts_with('[')).collect();
    assert_eq!(
        headers,
        [
            "[xla]",
            "[toolchains.bazel]",
            "[prebuilt.x]",
            "[prebuilt.x.platforms.x86_64-linux]",
            "[prebuilt.x.platforms.aarch64-linux]",
            "[prebuilt.y]",
            "[prebuilt.y.platforms.x86_64-linux]",
            "[bazel_deps.cpu.x86_64-linux]",
        ]
    );
    // The [prebuilt] comment moved with the first plugin; the rest stayed.
    assert_eq!(line_of(&text, "# About [prebuilt") + 1, line_of(&text, "[prebuilt.x]"));
    assert_eq!(line_of(&text, "# About bazel_deps") + 1, line_of(&text, "[bazel_deps.cpu"));
    assert!(text.contains("pjrt_api_version = \"0.93\" # trailing comment survives"));
    assert!(text.starts_with("# Head comment.\n"));
    let pins = Pins::parse(&text, "edited").unwrap();
    assert_eq!(pins.prebuilt["x"].platforms.len(), 2);

    // Dropping the platform again gives back the very same bytes.
    doc.set_prebuilt("x", &plugin("x", &[("x86_64-linux", "x86_64")]));
    assert_eq!(doc.to_string(), two_plugins);
}

#[test]
fn bazel_version_edit_sets_the_attribute() {
    let mut doc = PinsDocument::parse(TEMPLATE).unwrap();
    doc.set_bazel_version("8.4.2");
    let text = doc.to_string();
    assert!(text.contains("version = \"8.4.2\"\nnixpkgs_attribute = \"bazel_8\""));
    // Bazel 8 cannot build an XLA that asks for 7: an error, located.
    let report = check(&text, "t.toml");
    let err = report.findings.iter().find(|f| f.severity == Severity::Error).expect("an error");
    assert_eq!(err.key, "toolchains.bazel.version");
    assert_eq!(err.line, Some(line_of(&text, "version = \"8.4.2\"")));
    assert_eq!(report.exit_code(), 1);
}

#[test]
fn errors_name_the_key_and_the_line() {
    let cases = [
        (replace_line(TEMPLATE, "commit =", "commit = \"964a0a45\""), "xla.commit", "commit ="),
        (replace_line(TEMPLATE, "hash = \"sha256-K0", "hash = \"sha256-abc=\""), "xla.hash", "hash = \"sha256-abc"),
        (replace_line(TEMPLATE, "date =", "date = \"2026-02-20 22:36\""), "xla.date", "date ="),
        (replace_line(TEMPLATE, "commit =", "comit = \"964a0a45a0c3090cd484a3c51e8f9d05ed10b968\""), "comit", "comit ="),
        (replace_line(TEMPLATE, "schema_version", "schema_version = \"1\""), "schema_version", "schema_version"),
        (replace_line(TEMPLATE, "pjrt_api_version", "pjrt_api_version = \"0.93"), "", "pjrt_api_version"),
    ];
    for (text, key, line_prefix) in cases {
        let err = Pins::parse(&text, "scratch/pins.toml").unwrap_err().to_string();
        let line = line_of(&text, line_prefix);
        assert!(err.contains(&format!("scratch/pins.toml:{line}:")), "no line {line} in: {err}");
        assert!(err.contains(key), "no key `{key}` in: {err}");
    }
    // A missing key names its table.
    let text = TEMPLATE.replace("commit = \"964a0a45a0c3090cd484a3c51e8f9d05ed10b968\"\n", "");
    let err = Pins::parse(&text, "p").unwrap_err().to_string();
    assert!(err.contains("`xla`") && err.contains("missing field `commit`"), "{err}");
    assert!(err.contains(&format!("p:{}:", line_of(&text, "[xla]"))), "{err}");
}

#[test]
fn format_and_consistency_rules() {
    let base = project_text();
    let bad = [
        ("compute_capabilities = [\"sm_50\"", "compute_capabilities = [\"sm50\"", "cuda12.compute_capabilities"),
        ("gpu_targets = [\"gfx908\"", "gpu_targets = [\"gfx9x8\"", "rocm7.gpu_targets"),
        ("cuda_version = \"12.9.1\"", "cuda_version = \"13.0.1\"", "cuda12.cuda_version"),
        (
            "[prebuilt.libtpu.platforms.x86_64-linux]",
            "[prebuilt.libtpu.platforms.x86_64-windows]",
            "prebuilt.libtpu.platforms.x86_64-windows",
        ),
        ("version = \"0.0.52\"", "version = \"0.0.51\"", "prebuilt.libtpu.platforms.x86_64-linux.url"),
        ("backend = \"tpu\"", "backend = \"metal\"", "prebuilt.libtpu.backend"),
        // Issue 19: what XLA's rules say the Nix layer must follow.
        ("HERMETIC_CUDNN_VERSION = \"nixpkgs'", "CUDNN_VERSION = \"nixpkgs'", "cuda12.overrides.CUDNN_VERSION"),
        ("nvshmem_version = \"3.2.5\"", "nvshmem_version = \"3.2.6\"", "cuda12.nvshmem_wheel.x86_64-linux.url"),
        (
            "nvidia_nvshmem_cu13-3.3.20-py3-none-manylinux2014_x86_64",
            "nvidia_nvshmem_cu12-3.3.20-py3-none-manylinux2014_x86_64",
            "cuda13.nvshmem_wheel.x86_64-linux.url",
        ),
        ("nvshmem_libraries = [\"libnvshmem_host\"", "nvshmem_libraries = [\"libnvshmem_host;id\"", "rules_ml_toolchain.nvshmem_libraries"),
        ("commit = \"de6fc6c38ea0368a198daa3f8c7cb829cc8db185\"", "commit = \"de6fc6c3\"", "rules_ml_toolchain.commit"),
    ];
    for (from, to, key) in bad {
        assert!(base.contains(from), "{from}");
        let text = base.replacen(from, to, 1);
        let report = check(&text, "p");
        let err = report.findings.iter().find(|f| f.severity == Severity::Error && f.key == key);
        let err = err.unwrap_or_else(|| panic!("no error on `{key}`: {:#?}", report.findings));
        assert!(err.line.is_some(), "{err}");
        assert!(err.to_string().contains(&format!("`{key}`")));
    }
    // The CUDA builds need [rules_ml_toolchain].
    let start = base.find("[rules_ml_toolchain]").unwrap();
    let end = start + base[start..].find("\n\n").unwrap();
    let report = check(&format!("{}{}", &base[..start], &base[end..]), "p");
    assert!(report.findings.iter().any(|f| f.severity == Severity::Error && f.key == "rules_ml_toolchain"), "{:#?}", report.findings);
    // A wheel pinned for the wrong system.
    let text = base.replacen("[prebuilt.xla-cpu-pjrt.platforms.aarch64-linux]", "[prebuilt.xla-cpu-pjrt.platforms.aarch64-darwin]", 1);
    let report = check(&text, "p");
    assert!(report
        .findings
        .iter()
        .any(|f| f.key == "prebuilt.xla-cpu-pjrt.platforms.aarch64-darwin.url" && f.message.contains("not built for aarch64-darwin")));
}

#[test]
fn writes_are_atomic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pins.toml");
    std::fs::write(&path, TEMPLATE).unwrap();
    let mut doc = PinsDocument::read(&path).unwrap();
    doc.set_bazel_deps_hash("cpu", "x86_64-linux", SOME_HASH, "964a0a45a0c3090cd484a3c51e8f9d05ed10b968");
    doc.write(&path).unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), doc.to_string());
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, ["pins.toml"]);

    // An invalid document is never written: the file stays as it was.
    let before = std::fs::read(&path).unwrap();
    let mut bad = doc.clone();
    bad.set_bazel_version("6.5.0");
    let err = bad.write(&path).unwrap_err();
    assert!(format!("{err:#}").contains("toolchains.bazel.version"), "{err:#}");
    assert_eq!(std::fs::read(&path).unwrap(), before);

    // A rename that fails (the target is a non-empty directory) leaves no temporary file.
    let target = dir.path().join("blocked");
    std::fs::create_dir(&target).unwrap();
    std::fs::write(target.join("keep"), "x").unwrap();
    assert!(doc.write(&target).is_err());
    let mut names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    names.sort();
    assert_eq!(names, ["blocked", "pins.toml"]);
}

fn xtask(root: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_xtask")).args(args).env("PJRTPKGS_ROOT", root).output().unwrap()
}

#[test]
fn pins_verb_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pins.toml");
    let text = project_text();
    let pins = Pins::parse(&text, "p").unwrap();

    // The project file has placeholder hashes: stale, exit 3.
    std::fs::write(&path, &text).unwrap();
    let out = xtask(dir.path(), &["pins", "check"]);
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("stale: `bazel_deps.cpu.x86_64-linux.hash`"));

    // Every hash computed for the pinned commit: valid, exit 0.
    let mut doc = PinsDocument::parse(&text).unwrap();
    for (backend, systems) in &pins.bazel_deps {
        for system in systems.keys() {
            doc.set_bazel_deps_hash(backend, system, SOME_HASH, &pins.xla.commit);
        }
    }
    doc.write(&path).unwrap();
    let out = xtask(dir.path(), &["pins", "check"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));

    // JSON shows the model and the findings.
    let out = xtask(dir.path(), &["pins", "show", "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["pins"]["xla"]["commit"], pins.xla.commit.as_str());
    assert_eq!(json["pins"]["prebuilt"]["xla-cpu-pjrt"]["version"], pins.prebuilt["xla-cpu-pjrt"].version.as_str());
    assert!(json["findings"].is_array());

    // Invalid: exit 1, the key and line on stderr.
    let bad = replace_line(&text, "commit =", "commit = \"nope\"");
    std::fs::write(&path, &bad).unwrap();
    let out = xtask(dir.path(), &["pins", "check"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("pins.toml:{}:", line_of(&bad, "commit ="))) && stderr.contains("`xla.commit`"), "{stderr}");
}

/// Issue 13, item 2: the checkout the user stands in wins over the one the
/// binary was built in; `--project DIR` wins over both; outside any checkout
/// the xtask says so.
#[test]
fn project_is_the_checkout_you_stand_in() {
    let other = tempfile::tempdir().unwrap();
    let text = project_text();
    let marker = "0123456789abcdef0123456789abcdef01234567";
    let commit = Pins::parse(&text, "p").unwrap().xla.commit;
    std::fs::write(other.path().join("pins.toml"), text.replace(&commit, marker)).unwrap();
    let sub = other.path().join("some/dir");
    std::fs::create_dir_all(&sub).unwrap();

    let show = |cwd: &Path, extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_xtask"))
            .args(extra)
            .args(["pins", "show", "--json"])
            .current_dir(cwd)
            .env_remove("PJRTPKGS_ROOT")
            .output()
            .unwrap()
    };
    let commit_of = |out: &std::process::Output| {
        // 3: valid with stale placeholder hashes, as the project's own file is.
        assert!(matches!(out.status.code(), Some(0 | 3)), "{}", String::from_utf8_lossy(&out.stderr));
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        json["pins"]["xla"]["commit"].as_str().unwrap().to_owned()
    };

    // From a subdirectory of the other checkout: its pins, not the build tree's.
    assert_eq!(commit_of(&show(&sub, &[])), marker);
    // --project names a checkout explicitly, from anywhere.
    let outside = tempfile::tempdir().unwrap();
    assert_eq!(commit_of(&show(outside.path(), &["--project", other.path().to_str().unwrap()])), marker);
    // Outside any checkout: a clear error, exit 1.
    let out = show(outside.path(), &[]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not inside a pjrtpkgs checkout") && stderr.contains("--project DIR"), "{stderr}");
}

/// The errors of `pins check` on `text` (through the verb: exit 1 and the
/// key on stderr), as (key, message) pairs.
fn check_errors(text: &str) -> Vec<(String, String)> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pins.toml"), text).unwrap();
    let out = xtask(dir.path(), &["pins", "check"]);
    let report = check(text, "p");
    let errors: Vec<(String, String)> =
        report.findings.iter().filter(|f| f.severity == Severity::Error).map(|f| (f.key.clone(), f.message.clone())).collect();
    assert_eq!(out.status.code(), Some(if errors.is_empty() { 3 } else { 1 }), "{}", String::from_utf8_lossy(&out.stderr));
    errors
}

/// Issue 13, items 3 and 11: a prebuilt name becomes a directory of the
/// cache, so only PyPI project names pass (no `../`, no spaces); API
/// versions a plugin cannot report (beyond a C int) are refused.
#[test]
fn prebuilt_names_and_api_versions_are_checked() {
    let base = project_text();
    for name in ["\"../../../x\"", "\"with space\"", "\"a/b\"", "\".hidden\""] {
        let text = base.replace("prebuilt.libtpu", &format!("prebuilt.{name}"));
        let errors = check_errors(&text);
        let key = format!("prebuilt.{name}");
        assert!(errors.iter().any(|(k, m)| k == &key && m.contains("not a PyPI project name")), "{name}: {errors:?}");
    }
    for version in ["0.99999999999999999999", "4294967296.1", "0.2147483648"] {
        let text = base.replacen("pjrt_api_version = \"0.117\"", &format!("pjrt_api_version = \"{version}\""), 1);
        let errors = check_errors(&text);
        assert!(errors.iter().any(|(k, _)| k == "prebuilt.libtpu.pjrt_api_version"), "{version}: {errors:?}");
    }
    let library = base.replacen("library = \"libtpu/libtpu.so\"", "library = \"libtpu/.\"", 1);
    assert!(check_errors(&library).iter().any(|(k, _)| k == "prebuilt.libtpu.platforms.x86_64-linux.library"));
}

/// Issue 13, item 11: without [cuda13] while [bazel_deps.cuda13.*] or a
/// cuda13 prebuilt plugin remain, Nix cannot evaluate the flake; `pins
/// check` says so instead of passing.
#[test]
fn gpu_tables_used_elsewhere_are_required() {
    let base = project_text();
    // [cuda13] and its sub-tables ([cuda13.overrides], [cuda13.nvshmem_wheel.*]).
    let start = base.find("[cuda13]").unwrap();
    let end =
        start + 1 + base[start + 1..].match_indices("\n[").find(|(i, _)| !base[start + 1 + i + 2..].starts_with("cuda13")).unwrap().0 + 1;
    let without = format!("{}{}", &base[..start], &base[end..]);
    assert!(!without.contains("[cuda13") && without.contains("[bazel_deps.cuda13."), "{without}");
    let errors = check_errors(&without);
    assert!(errors.iter().any(|(k, m)| k == "bazel_deps.cuda13" && m.contains("[cuda13]")), "{errors:?}");
    assert!(errors.iter().any(|(k, _)| k == "prebuilt.jax-cuda13-pjrt.backend"), "{errors:?}");
    // Nix itself cannot read the CUDA 13 toolchain from such a file.
    if support_nix() {
        let dir = tempfile::tempdir().unwrap();
        let pins = dir.path().join("pins.toml");
        std::fs::write(&pins, &without).unwrap();
        let expr = format!("(import {}/nix/pins.nix {{ pinsFile = {}; }}).cuda13.attribute", project_root().display(), pins.display());
        let out = Command::new("nix-instantiate").args(["--eval", "--expr", &expr]).output().unwrap();
        assert!(!out.status.success(), "Nix evaluated it: {}", String::from_utf8_lossy(&out.stdout));
        assert!(String::from_utf8_lossy(&out.stderr).contains("cuda13"), "{}", String::from_utf8_lossy(&out.stderr));
    }
}

/// Issue 13, new-user item: findings come in file order.
#[test]
fn findings_are_in_line_order() {
    let text = replace_line(&project_text(), "commit =", "commit = \"nope\"");
    let report = check(&text, "p");
    let lines: Vec<usize> = report.findings.iter().map(|f| f.line.unwrap()).collect();
    let mut sorted = lines.clone();
    sorted.sort();
    assert_eq!(lines, sorted);
    assert!(lines.len() > 5);
}

fn project_root() -> PathBuf {
    project_pins().parent().unwrap().to_path_buf()
}

/// Whether the reference Nix is here (a skip outside CI, a failure under it).
fn support_nix() -> bool {
    let present = Command::new("nix-instantiate").arg("--version").output().is_ok();
    assert!(present || std::env::var("CI").as_deref() != Ok("true"), "nix-instantiate is required under CI=true");
    present
}

/// Issue 20: [prebuilt.<name>.runtime] follows its rules: a pinned version
/// satisfies the paired release's requirement, a wheel's URL is of its
/// project, version and system, every Linux system of the plugin has its
/// wheel, a file pinned elsewhere (`pinned_in`) is pinned there at that
/// version, project names are normalized.
#[test]
fn runtime_pins_are_checked() {
    let base = project_text();
    let cublas = "prebuilt.jax-cuda12-pjrt.runtime.wheels.nvidia-cublas-cu12";
    let errors_of = |text: &str| check_errors(text);
    let has = |errors: &[(String, String)], key: &str, what: &str| errors.iter().any(|(k, m)| k == key && m.contains(what));

    // A version below the requirement (and no longer the wheel's).
    let text = base.replacen("version = \"12.9.3.13\"", "version = \"12.0.1\"", 1);
    let errors = errors_of(&text);
    assert!(has(&errors, &format!("{cublas}.version"), "does not satisfy"), "{errors:?}");
    assert!(has(&errors, &format!("{cublas}.platforms.x86_64-linux.url"), "not the pinned 12.0.1"), "{errors:?}");

    // Another project's wheel under cuBLAS's name.
    let cublas_url = base.lines().find(|l| l.starts_with("url = ") && l.contains("nvidia_cublas_cu12-") && l.contains("x86_64")).unwrap();
    let cudnn_url = base.lines().find(|l| l.starts_with("url = ") && l.contains("nvidia_cudnn_cu12-") && l.contains("x86_64")).unwrap();
    let text = base.replacen(cublas_url, &cudnn_url.replace("9.28.0.42", "12.9.3.13"), 1);
    assert!(has(&errors_of(&text), &format!("{cublas}.platforms.x86_64-linux.url"), "another project"));

    // A system the plugin is pinned for without its wheel.
    let header = format!("[{cublas}.platforms.aarch64-linux]");
    let start = base.find(&header).unwrap();
    let end = start + base[start..].find("\n\n").unwrap() + 2;
    let text = format!("{}{}", &base[..start], &base[end..]);
    assert!(has(&errors_of(&text), &format!("{cublas}.platforms"), "no wheel for aarch64-linux"));

    // NVSHMEM is pinned once, in [cuda12.nvshmem_wheel], at its version.
    let nvshmem = "prebuilt.jax-cuda12-pjrt.runtime.wheels.nvidia-nvshmem-cu12";
    let at = base.find(&format!("[{nvshmem}]")).unwrap();
    let text = format!("{}{}", &base[..at], base[at..].replacen("version = \"3.2.5\"", "version = \"3.2.6\"", 1));
    assert!(has(&errors_of(&text), &format!("{nvshmem}.version"), "[cuda12.nvshmem_wheel] pins version 3.2.5"));
    let text = format!(
        "{}{}",
        &base[..at],
        base[at..].replacen("pinned_in = \"cuda12.nvshmem_wheel\"", "pinned_in = \"cuda13.nvshmem_wheel\"", 1)
    );
    assert!(has(&errors_of(&text), &format!("{nvshmem}.pinned_in"), "another project"));

    // Names as PyPI normalizes them: one project, one key.
    let text = base.replace("runtime.wheels.nvidia-cublas-cu12", "runtime.wheels.nvidia_cublas_cu12");
    let errors = errors_of(&text);
    assert!(errors.iter().any(|(k, m)| k.ends_with("wheels.nvidia_cublas_cu12") && m.contains("normalized")), "{errors:?}");

    // What could not be pinned is a note, not an error, and `fetch
    // --with-runtime` is said to refuse.
    let report = check(&base, "pins.toml");
    let note = report.findings.iter().find(|f| f.key == "prebuilt.jax-rocm7-pjrt.runtime.unavailable").expect("a note on ROCm");
    assert_eq!(note.severity, Severity::Note);
    assert!(note.message.contains("--with-runtime") && note.message.contains("amd-hipblas-instinct"), "{}", note.message);
}
