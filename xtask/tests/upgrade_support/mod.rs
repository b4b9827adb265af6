//! Test support for `upgrade-xla`: a synthetic XLA-like git repository
//! (real git, real commits), a scratch copy of the project to upgrade, and
//! byte-exact snapshots of it.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub use crate::support::git;
use crate::support::{git_dated, project_root};

/// The synthetic XLA history.
pub struct SyntheticXla {
    pub dir: tempfile::TempDir,
    /// API 0.1, Bazel 7.4.1, CUDA 12.9.1, NCCL 2.27.7, ROCm 7.10.0.
    pub base: String,
    /// Appends a field (API 0.2), extension header grows, Bazel 7.7.0,
    /// NCCL 2.28.3 (inherited through `--config` chains). Tagged `v0.2`.
    pub compatible: String,
    /// Removes a field (breaking) while bumping only MINOR (0.3), Bazel
    /// 8.0.0, CUDA 13 minor bump, ROCm 8.
    pub breaking: String,
}

struct Header<'a> {
    minor: u32,
    /// Extra fields of PJRT_Client_Create_Args after `client`.
    extra_fields: &'a str,
    keep_client: bool,
}

fn core_header(h: &Header) -> String {
    format!(
        r#"/* Synthetic PJRT C API header for pjrtpkgs tests. */
#ifndef XLA_PJRT_C_PJRT_C_API_H_
#define XLA_PJRT_C_PJRT_C_API_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {{
#endif

#define PJRT_API_MAJOR 0
#define PJRT_API_MINOR {minor}

typedef enum {{
  PJRT_Extension_Type_Example = 0,
}} PJRT_Extension_Type;

typedef struct PJRT_Extension_Base {{
  size_t struct_size;
  PJRT_Extension_Type type;
  struct PJRT_Extension_Base* next;
}} PJRT_Extension_Base;

typedef struct PJRT_Api_Version {{
  size_t struct_size;
  PJRT_Extension_Base* extension_start;
  int major_version;
  int minor_version;
}} PJRT_Api_Version;

typedef struct PJRT_Error PJRT_Error;
typedef struct PJRT_Client PJRT_Client;

struct PJRT_Client_Create_Args {{
  size_t struct_size;
  PJRT_Extension_Base* extension_start;
  const char* name;
{client}{extra}}};
typedef struct PJRT_Client_Create_Args PJRT_Client_Create_Args;

typedef PJRT_Error* PJRT_Client_Create(PJRT_Client_Create_Args* args);

typedef struct PJRT_Api {{
  size_t struct_size;
  PJRT_Extension_Base* extension_start;
  PJRT_Api_Version pjrt_api_version;
  PJRT_Client_Create* PJRT_Client_Create;
}} PJRT_Api;

#ifdef __cplusplus
}}
#endif

#endif  // XLA_PJRT_C_PJRT_C_API_H_
"#,
        minor = h.minor,
        client = if h.keep_client { "  PJRT_Client* client;  // out\n" } else { "" },
        extra = h.extra_fields,
    )
}

fn extension_header(version: u32, extra: &str) -> String {
    format!(
        r#"#ifndef XLA_PJRT_C_PJRT_C_API_EXAMPLE_EXTENSION_H_
#define XLA_PJRT_C_PJRT_C_API_EXAMPLE_EXTENSION_H_

#include "xla/pjrt/c/pjrt_c_api.h"

#ifdef __cplusplus
extern "C" {{
#endif

#define PJRT_API_EXAMPLE_EXTENSION_VERSION {version}

typedef struct PJRT_Example_Args {{
  size_t struct_size;
  PJRT_Extension_Base* extension_start;
  int value;
{extra}}} PJRT_Example_Args;

typedef PJRT_Error* PJRT_Example(PJRT_Example_Args* args);

typedef struct PJRT_Example_Extension {{
  PJRT_Extension_Base base;
  PJRT_Example* example;
}} PJRT_Example_Extension;

#ifdef __cplusplus
}}
#endif

#endif
"#
    )
}

struct Rc<'a> {
    nccl: &'a str,
    cuda13: &'a str,
    rocm: &'a str,
}

fn tensorflow_bazelrc(rc: &Rc) -> String {
    format!(
        r#"# Synthetic tensorflow.bazelrc.
common:cuda_version --repo_env=HERMETIC_CUDA_VERSION="12.9.1"
common:cuda_version --repo_env=HERMETIC_CUDNN_VERSION="9.8.0"
common:cuda_version --repo_env=HERMETIC_NVSHMEM_VERSION="3.2.5"
common:cuda_version --repo_env=HERMETIC_NCCL_VERSION="{nccl}"

common:cuda --repo_env TF_NEED_CUDA=1
common:cuda --config=cuda_version
common:cuda_nvcc --config=cuda

common:rocm_ci_hermetic --repo_env="ROCM_DISTRO_VERSION={rocm}"

build:pjrt_cuda12 --config=cuda_nvcc
build:pjrt_cuda12 --repo_env=HERMETIC_CUDA_VERSION="12.9.1"
build:pjrt_cuda12 --repo_env=HERMETIC_CUDA_COMPUTE_CAPABILITIES="sm_50,sm_60,sm_70,sm_80,sm_90,sm_100,compute_120"

build:pjrt_cuda13 --config=cuda_nvcc
build:pjrt_cuda13 --repo_env=HERMETIC_CUDA_VERSION="{cuda13}"
build:pjrt_cuda13 --repo_env=HERMETIC_CUDNN_VERSION="9.12.0"
build:pjrt_cuda13 --repo_env=HERMETIC_NVSHMEM_VERSION="3.3.20"
build:pjrt_cuda13 --repo_env=HERMETIC_CUDA_COMPUTE_CAPABILITIES="sm_75,sm_80,sm_90,sm_100,compute_120"
"#,
        nccl = rc.nccl,
        cuda13 = rc.cuda13,
        rocm = rc.rocm
    )
}

/// `third_party/<name>/workspace.bzl` pinning `commit`, as XLA writes it.
fn workspace_bzl(var: &str, commit: &str) -> String {
    format!("def repo():\n    {var}_COMMIT = \"{commit}\"\n    {var}_SHA256 = \"0000\"\n")
}

/// XLA's `third_party/stablehlo/temporary.patch`, patching Version.h to
/// `current` (over `upstream`) when given, else touching another file.
fn stablehlo_patch(version: Option<(&str, &str)>) -> String {
    let mut p = String::from(
        "diff --ruN a/stablehlo/BUILD.bazel b/stablehlo/BUILD.bazel\n--- stablehlo/BUILD.bazel\n+++ stablehlo/BUILD.bazel\n@@ -1,1 +1,1 @@\n-a\n+b\n",
    );
    if let Some((upstream, current)) = version {
        p.push_str(&format!(
            "diff --ruN a/stablehlo/stablehlo/dialect/Version.h b/stablehlo/stablehlo/dialect/Version.h\n\
             --- stablehlo/stablehlo/dialect/Version.h\n+++ stablehlo/stablehlo/dialect/Version.h\n@@ -38,7 +38,9 @@\n\
             \x20  /// Return a Version representing the current VHLO dialect version.\n\
             -  static Version getCurrentVersion() {{ return Version({upstream}); }}\n\
             +  static Version getCurrentVersion() {{\n+    return Version(/*major=*/{current});\n+  }}\n\
             \x20\n\x20  static Version getMinimumVersion() {{ return Version(0, 9, 0); }}\n"
        ));
    }
    p
}

/// LLVM and StableHLO commits of the synthetic history.
pub const LLVM_BASE: &str = "80aa52d8c5a8a1c26b4114c60c2159c743d236d8";
pub const LLVM_NEW: &str = "1728a56d0e66c9e64a2e62fa6c5508580ccd28a0";
pub const STABLEHLO_BASE: &str = "271e8634de184fbfafd677d3876170feb6d08c97";
pub const STABLEHLO_NEW: &str = "5217297204acb9e5a21e40fa825aa0769fb3c33f";
pub const SHARDY_NEW: &str = "f1c951d74cf5c67b9e0f776e21fe2316d5c69f37";

const CHANGELOG_01: &str = "# PJRT C API changelog\n\n## 0.1\n* Initial synthetic API.\n";
const CHANGELOG_02: &str = "## 0.2 (Synthetic)\n* Added ``num_devices`` to ``PJRT_Client_Create_Args``.\n\n";
const CHANGELOG_03: &str = "## 0.3\n* Removed ``client`` from ``PJRT_Client_Create_Args`` (a mistake: this breaks the ABI).\n\n";

fn write(dir: &Path, rel: &str, contents: &str) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, contents).unwrap();
}

impl SyntheticXla {
    pub fn build() -> SyntheticXla {
        let dir = tempfile::Builder::new().prefix("synthetic-xla-").tempdir().unwrap();
        let d = dir.path();
        git(d, &["init", "-q", "-b", "main"]);
        write(d, "README.md", "Synthetic XLA for pjrtpkgs tests.\n");
        write(d, "tools/run.sh", "#!/bin/sh\necho run\n");
        let mut perms = std::fs::metadata(d.join("tools/run.sh")).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
        std::fs::set_permissions(d.join("tools/run.sh"), perms).unwrap();
        std::os::unix::fs::symlink("README.md", d.join("README.link")).unwrap();
        write(d, ".bazelrc", "# Synthetic .bazelrc\ncommon --noenable_bzlmod\nimport %workspace%/tensorflow.bazelrc\ntry-import %workspace%/xla_configure.bazelrc\n");
        write(d, ".bazelversion", "7.4.1\n# NOTE: a comment line, as XLA has\n");
        write(d, "tensorflow.bazelrc", &tensorflow_bazelrc(&Rc { nccl: "2.27.7", cuda13: "13.0.0", rocm: "rocm_7.10.0_gfx90X" }));
        write(d, "xla/pjrt/c/pjrt_c_api.h", &core_header(&Header { minor: 1, extra_fields: "", keep_client: true }));
        write(d, "xla/pjrt/c/pjrt_c_api_example_extension.h", &extension_header(1, ""));
        write(d, "xla/pjrt/c/CHANGELOG.md", CHANGELOG_01);
        write(d, "third_party/llvm/workspace.bzl", &workspace_bzl("LLVM", LLVM_BASE));
        write(d, "third_party/stablehlo/workspace.bzl", &workspace_bzl("STABLEHLO", STABLEHLO_BASE));
        write(d, "third_party/stablehlo/temporary.patch", &stablehlo_patch(Some(("1, 8, 10", "1, /*minor=*/9, /*patch=*/0"))));
        git(d, &["add", "-A"]);
        git_dated(d, Some("2024-03-29T15:40:47-07:00"), &["commit", "-q", "-m", "base: PJRT 0.1"]);
        let base = git(d, &["rev-parse", "HEAD"]);

        write(d, ".bazelversion", "7.7.0\n");
        write(d, "tensorflow.bazelrc", &tensorflow_bazelrc(&Rc { nccl: "2.28.3", cuda13: "13.0.0", rocm: "rocm_7.10.0_gfx90X" }));
        write(d, "xla/pjrt/c/pjrt_c_api.h", &core_header(&Header { minor: 2, extra_fields: "  int num_devices;\n", keep_client: true }));
        write(d, "xla/pjrt/c/pjrt_c_api_example_extension.h", &extension_header(2, "  int extra_value;\n"));
        write(d, "xla/pjrt/c/CHANGELOG.md", &CHANGELOG_01.replace("\n## 0.1", &format!("\n{CHANGELOG_02}## 0.1")));
        // An LLVM integrate, then a StableHLO one whose patch bumps the version.
        write(d, "third_party/llvm/workspace.bzl", &workspace_bzl("LLVM", "0123456789abcdef0123456789abcdef01234567"));
        git(d, &["add", "-A"]);
        git_dated(d, Some("2024-04-20T10:00:00-07:00"), &["commit", "-q", "-m", "Integrate LLVM"]);
        write(d, "third_party/llvm/workspace.bzl", &workspace_bzl("LLVM", LLVM_NEW));
        write(d, "third_party/stablehlo/workspace.bzl", &workspace_bzl("STABLEHLO", STABLEHLO_NEW));
        write(d, "third_party/stablehlo/temporary.patch", &stablehlo_patch(Some(("1, 9, 8", "1, /*minor=*/10, /*patch=*/0"))));
        git(d, &["add", "-A"]);
        git_dated(d, Some("2024-04-26T13:34:51-07:00"), &["commit", "-q", "-m", "PJRT 0.2: append num_devices"]);
        let compatible = git(d, &["rev-parse", "HEAD"]);
        git(d, &["tag", "v0.2"]);

        write(d, ".bazelversion", "8.0.0\n");
        write(d, "tensorflow.bazelrc", &tensorflow_bazelrc(&Rc { nccl: "2.28.3", cuda13: "13.1.0", rocm: "rocm_8.0.0_gfx90X" }));
        write(d, "xla/pjrt/c/pjrt_c_api.h", &core_header(&Header { minor: 3, extra_fields: "  int num_devices;\n", keep_client: false }));
        let log = std::fs::read_to_string(d.join("xla/pjrt/c/CHANGELOG.md")).unwrap();
        write(d, "xla/pjrt/c/CHANGELOG.md", &log.replace("\n## 0.2", &format!("\n{CHANGELOG_03}## 0.2")));
        // Shardy appears; the patch no longer records the StableHLO version.
        write(d, "third_party/shardy/workspace.bzl", &workspace_bzl("SHARDY", SHARDY_NEW));
        write(d, "third_party/stablehlo/temporary.patch", &stablehlo_patch(None));
        git(d, &["add", "-A"]);
        git_dated(d, Some("2024-05-28T16:06:45-07:00"), &["commit", "-q", "-m", "PJRT 0.3: remove client (breaking)"]);
        let breaking = git(d, &["rev-parse", "HEAD"]);
        SyntheticXla { dir, base, compatible, breaking }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A commit after `breaking` whose tree references a blob that is not in
    /// the repository (as in a partial clone).
    pub fn commit_with_missing_blob(&self) -> String {
        let d = self.path();
        write(d, "third_party/big.bin", "a large blob this clone never received\n");
        git(d, &["add", "-A"]);
        git_dated(d, Some("2024-06-01T10:00:00+00:00"), &["commit", "-q", "-m", "add a big blob"]);
        let commit = git(d, &["rev-parse", "HEAD"]);
        let blob = git(d, &["rev-parse", "HEAD:third_party/big.bin"]);
        let object = d.join(".git/objects").join(&blob[..2]).join(&blob[2..]);
        std::fs::remove_file(object).expect("the blob is a loose object");
        git(d, &["reset", "-q", "--hard", &self.breaking]);
        commit
    }
}

/// A scratch pjrtpkgs project (pins.toml, CHANGELOG.md, a Cargo workspace
/// holding a minimal crates/pjrt-sys), committed in its own git repository.
pub struct Scratch {
    pub dir: tempfile::TempDir,
    pub cache: tempfile::TempDir,
}

/// pins.toml of the real project with `[xla]` and the toolchain sections
/// set to the synthetic `base` commit's values, and two Bazel dependency
/// hashes that are not stale.
pub fn pins_for(commit: &str, date: &str, api: &str, bazel: &str) -> String {
    let real = std::fs::read_to_string(project_root().join("pins.toml")).unwrap();
    let mut doc: toml_edit::DocumentMut = real.parse().unwrap();
    doc["xla"]["commit"] = toml_edit::value(commit);
    doc["xla"]["date"] = toml_edit::value(date);
    doc["xla"]["pjrt_api_version"] = toml_edit::value(api);
    doc["xla"]["bazel_version"] = toml_edit::value(bazel);
    doc["xla"]["hash"] = toml_edit::value("sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
    doc["toolchains"]["bazel"]["version"] = toml_edit::value(bazel);
    doc["toolchains"]["bazel"]["nixpkgs_attribute"] = toml_edit::value(format!("bazel_{}", bazel.split('.').next().unwrap()));
    for (backend, system) in [("cpu", "x86_64-linux"), ("cuda12", "x86_64-linux")] {
        let mut t = toml_edit::Table::new();
        t["hash"] = toml_edit::value("sha256-K0lveAY1nXeFA9FIV3nXhEJ0r589CNaVp/M5heUo1BY=");
        t["xla_commit"] = toml_edit::value(commit);
        if doc.get("bazel_deps").is_none() {
            let mut deps = toml_edit::Table::new();
            deps.set_implicit(true);
            doc["bazel_deps"] = toml_edit::Item::Table(deps);
        }
        if doc["bazel_deps"].get(backend).is_none() {
            let mut b = toml_edit::Table::new();
            b.set_implicit(true);
            doc["bazel_deps"][backend] = toml_edit::Item::Table(b);
        }
        doc["bazel_deps"][backend][system] = toml_edit::Item::Table(t);
    }
    doc.to_string()
}

impl Scratch {
    pub fn new(pins: &str) -> Scratch {
        let dir = Self::workspace(pins, "");
        Self::init(dir, true)
    }

    /// A scratch project whose crates/pjrt-sys is a copy of the real one
    /// (its hand-written loader included), for upgrades on real headers.
    pub fn with_real_pjrt_sys(pins: &str) -> Scratch {
        let dir = Self::workspace(pins, "rust-version = \"1.80\"\n");
        let d = dir.path();
        std::fs::create_dir_all(d.join("crates")).unwrap();
        let status =
            Command::new("cp").arg("-r").arg(project_root().join("crates/pjrt-sys")).arg(d.join("crates/pjrt-sys")).status().unwrap();
        assert!(status.success());
        let _ = std::fs::remove_dir_all(d.join("crates/pjrt-sys/target"));
        Self::init(dir, false)
    }

    /// pins.toml, CHANGELOG.md, the real Cargo.lock and a workspace
    /// Cargo.toml (`[workspace.package]` plus `package_extra`).
    fn workspace(pins: &str, package_extra: &str) -> tempfile::TempDir {
        let dir = tempfile::Builder::new().prefix("pjrtpkgs-scratch-").tempdir().unwrap();
        let d = dir.path();
        write(d, "pins.toml", pins);
        write(d, "CHANGELOG.md", "# Changelog\n\n## 0.1.0\n\n- First release.\n");
        write(
            d,
            "Cargo.toml",
            &format!(
                "[workspace]\nresolver = \"2\"\nmembers = [\"crates/pjrt-sys\"]\n\n[workspace.package]\nedition = \"2021\"\nlicense = \"Apache-2.0\"\n{package_extra}"
            ),
        );
        std::fs::copy(project_root().join("Cargo.lock"), d.join("Cargo.lock")).unwrap();
        dir
    }

    fn init(dir: tempfile::TempDir, minimal_crate: bool) -> Scratch {
        let d = dir.path();
        if minimal_crate {
            Self::minimal_pjrt_sys(d);
        }
        write(d, ".gitignore", "/target\n");
        git(d, &["init", "-q", "-b", "main"]);
        git(d, &["add", "-A"]);
        git(d, &["commit", "-q", "-m", "scratch project"]);
        let cache = tempfile::Builder::new().prefix("pjrtpkgs-cache-").tempdir().unwrap();
        Scratch { dir, cache }
    }

    /// pjrt-sys reduced to the generated bindings and the one trait they
    /// implement (`StructSize`): synthetic headers have none of the API
    /// members the real loader calls.
    fn minimal_pjrt_sys(d: &Path) {
        write(
            d,
            "crates/pjrt-sys/Cargo.toml",
            "[package]\nname = \"pjrt-sys\"\nversion = \"0.1.0\"\nedition.workspace = true\nlicense.workspace = true\n",
        );
        write(
            d,
            "crates/pjrt-sys/src/lib.rs",
            "//! Scratch pjrt-sys: just the generated bindings.\n#[allow(non_camel_case_types, non_snake_case, non_upper_case_globals, dead_code, clippy::all)]\nmod bindings;\npub use bindings::*;\npub trait StructSize {\n    const STRUCT_SIZE: usize;\n}\n",
        );
        write(d, "crates/pjrt-sys/src/bindings.rs", "// not generated yet\n");
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Runs `cargo xtask upgrade-xla ARGS` on this project.
    pub fn upgrade(&self, xla: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = self.command(env);
        cmd.arg("upgrade-xla").args(args).arg("--xla-repo").arg(xla);
        cmd.output().expect("the xtask binary runs")
    }

    /// The xtask on this project, with its cache and the shared staging
    /// target directory, and `env` on top.
    pub fn command(&self, env: &[(&str, &str)]) -> Command {
        let mut cmd = Command::new(xtask_bin());
        cmd.env("PJRTPKGS_ROOT", self.path())
            .env("PJRTPKGS_CACHE_DIR", self.cache.path())
            .env("PJRTPKGS_UPGRADE_TARGET_DIR", Path::new(env!("CARGO_TARGET_TMPDIR")).join("upgrade-staging-target"))
            .env_remove("XLA_REPO")
            .env_remove("STABLEHLO_REPO")
            .env_remove("PJRTPKGS_UPGRADE_FAIL_AT");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
    }
}

/// Every file (bytes and mode), symlink (its target) and directory of a tree, `.git` excluded (git
/// itself refreshes its index on `git status`).
pub fn snapshot(root: &Path) -> BTreeMap<PathBuf, (u32, Vec<u8>)> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = BTreeMap::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        for e in std::fs::read_dir(root.join(&rel)).unwrap() {
            let e = e.unwrap();
            let child = rel.join(e.file_name());
            if child == Path::new(".git") {
                continue;
            }
            let meta = std::fs::symlink_metadata(e.path()).unwrap();
            if meta.file_type().is_symlink() {
                let target = std::fs::read_link(e.path()).unwrap();
                out.insert(child, (meta.permissions().mode(), target.into_os_string().into_encoded_bytes()));
            } else if meta.is_dir() {
                out.insert(child.join(""), (meta.permissions().mode(), Vec::new()));
                stack.push(child);
            } else {
                out.insert(child, (meta.permissions().mode(), std::fs::read(e.path()).unwrap()));
            }
        }
    }
    out
}

/// The xtask binary under test: this build's, or `PJRTPKGS_TEST_XTASK`
/// (to show a regression test failing on another build, e.g. the old code).
pub fn xtask_bin() -> PathBuf {
    std::env::var_os("PJRTPKGS_TEST_XTASK").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_xtask")))
}

/// A clone of openxla/stablehlo (`STABLEHLO_REPO`), for the StableHLO
/// version plugins accept. Like XLA history: skipped outside CI when unset;
/// under `CI=true` a failure unless `PJRTPKGS_SKIP_STABLEHLO_HISTORY` gives
/// the reason it may not run.
pub fn stablehlo_repo() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("STABLEHLO_REPO") {
        let dir = PathBuf::from(dir);
        assert!(dir.exists(), "STABLEHLO_REPO={} does not exist: point it at a clone of openxla/stablehlo", dir.display());
        return Some(dir);
    }
    if crate::support::under_ci() {
        match std::env::var("PJRTPKGS_SKIP_STABLEHLO_HISTORY") {
            Ok(reason) if !reason.is_empty() => {
                eprintln!(
                    "\n!!! SKIPPED (reason: {reason}) !!!\n!!! the StableHLO-history checks did not run: STABLEHLO_REPO is unset !!!\n"
                );
                return None;
            }
            _ => panic!(
                "CI=true but STABLEHLO_REPO is unset: point it at a clone of openxla/stablehlo, or set \
                 PJRTPKGS_SKIP_STABLEHLO_HISTORY to the reason these checks may be skipped"
            ),
        }
    }
    eprintln!("\n!!! SKIP: STABLEHLO_REPO is unset; the StableHLO-history checks did not run !!!\n");
    None
}

pub fn text(out: &Output) -> (String, String) {
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}
