//! What the release tests share: a synthetic XLA history with a scratch
//! project pinned to it, plugins compiled with `cc` and packed as Nix build
//! results, the standard tools as peers, and a small HTTP server that can
//! misbehave on purpose (redirect elsewhere, trickle, send too much).

#![allow(dead_code)]

pub mod server;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::support::require_command;
use crate::upgrade_support::{pins_for, Scratch, SyntheticXla};

pub const BASE_DATE: &str = "2024-03-29T15:40:47-07:00";
/// `date -d 2024-03-29T15:40:47-07:00 +%s`
pub const BASE_EPOCH: u64 = 1_711_752_047;

/// A synthetic XLA history, a scratch project pinned to its `base` commit
/// (PJRT 0.1) and a work directory.
pub struct Env {
    pub xla: SyntheticXla,
    pub project: Scratch,
    pub work: tempfile::TempDir,
}

impl Env {
    pub fn new() -> Option<Env> {
        if !require_command("git") || !require_command("cc") || !require_command("readelf") {
            return None;
        }
        let xla = SyntheticXla::build();
        let project = Scratch::new(&pins_for(&xla.base, BASE_DATE, "0.1", "7.4.1"));
        let work = tempfile::Builder::new().prefix("release-test-").tempdir().unwrap();
        Some(Env { xla, project, work })
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.work.path().join(rel)
    }

    /// `cargo xtask ARGS` on the scratch project, from `cwd` (default: the work directory).
    pub fn xtask_in(&self, cwd: &Path, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_xtask"))
            .args(args)
            .current_dir(cwd)
            .env("PJRTPKGS_ROOT", self.project.path())
            .env("PJRTPKGS_CACHE_DIR", self.project.cache.path())
            .env("XLA_REPO", self.xla.path())
            .env_remove("PJRTPKGS_RELEASE_KEY_FILE")
            .env_remove("PJRTPKGS_RELEASE_KEY_PASSWORD")
            .env_remove("SOURCE_DATE_EPOCH")
            .output()
            .expect("the xtask binary runs")
    }

    pub fn xtask(&self, args: &[&str]) -> Output {
        self.xtask_in(self.work.path(), args)
    }

    /// Compiles `source` into a shared library at `out` with `args`.
    pub fn cc(&self, source: &str, out: &Path, args: &[&str]) {
        let src = out.with_extension("c");
        std::fs::create_dir_all(out.parent().unwrap()).unwrap();
        std::fs::write(&src, source).unwrap();
        let status = Command::new("cc").args(["-shared", "-fPIC", "-O1", "-o"]).arg(out).arg(&src).args(args).status().unwrap();
        assert!(status.success(), "cc failed for {}", out.display());
    }

    /// A synthetic PJRT plugin whose GetPjrtApi() reports 0.`minor` (plus
    /// what `extra_value()` returns, when `with_extra`).
    pub fn plugin(&self, out: &Path, minor: u32, body: &str, args: &[&str]) {
        let source = format!(
            "#include <stddef.h>\n#include <stdlib.h>\n\
             struct version {{ size_t struct_size; void* extension_start; int major_version; int minor_version; }};\n\
             struct api {{ size_t struct_size; void* extension_start; struct version pjrt_api_version; }};\n\
             static struct api the_api = {{ sizeof(struct api), NULL, {{ sizeof(struct version), NULL, 0, {minor} }} }};\n\
             {body}\n\
             const struct api* GetPjrtApi(void) {{ return &the_api; }}\n"
        );
        self.cc(&source, out, args);
    }

    /// `libextra.so` (needs nothing but libc), returns its directory.
    pub fn libextra(&self) -> PathBuf {
        let dir = self.path("extra");
        if !dir.join("libextra.so").exists() {
            self.cc("int extra_value(void) { return 0; }\n", &dir.join("libextra.so"), &["-Wl,-soname,libextra.so"]);
        }
        dir
    }

    /// A Nix build result (nix/lib.nix pluginLayout) holding `plugin` and
    /// `bundled`, with version_info.json as nix/lib.nix versionInfo writes
    /// it for a source build of `commit`.
    pub fn result(&self, name: &str, backend: &str, plugin: &Path, bundled: &[&Path], commit: &str, api: &str) -> PathBuf {
        let dir = self.path(name);
        std::fs::create_dir_all(dir.join("lib")).unwrap();
        std::fs::create_dir_all(dir.join("share/pjrt")).unwrap();
        std::fs::copy(plugin, dir.join(format!("lib/pjrt_c_api_{backend}_plugin.so"))).unwrap();
        for b in bundled {
            std::fs::copy(b, dir.join("lib").join(b.file_name().unwrap())).unwrap();
        }
        let info = serde_json::json!({
            "schema": 1, "backend": backend, "origin": "source", "toolchains": { "bazel": "7.4.1" },
            "xla_commit": commit, "pjrt_api_version": api,
            "bazel_version_mismatch": false, "bazel_flags": ["-c", "opt"],
        });
        std::fs::write(dir.join("share/pjrt/version_info.json"), format!("{info}\n")).unwrap();
        dir
    }

    /// A Nix package of a wheel (origin "prebuilt") at PJRT 0.`minor`,
    /// without headers; `info` overrides keys of its version_info.json.
    pub fn prebuilt_result(&self, name: &str, minor: u32, info: serde_json::Value) -> PathBuf {
        let plugin = self.path(&format!("build-{name}/plugin.so"));
        self.plugin(&plugin, minor, "", &[]);
        let dir = self.path(name);
        std::fs::create_dir_all(dir.join("lib")).unwrap();
        std::fs::create_dir_all(dir.join("share/pjrt")).unwrap();
        std::fs::copy(&plugin, dir.join("lib/pjrt_c_api_cpu_plugin.so")).unwrap();
        let mut base = serde_json::json!({
            "schema": 1, "backend": "cpu", "origin": "prebuilt", "toolchains": {}, "xla_commit": null,
            "pjrt_api_version": format!("0.{minor}"), "package": "some-wheel", "version": "1.0",
            "url": "https://example.invalid/some_wheel-1.0-py3-none-manylinux_2_27_x86_64.whl",
            "sha256": "0".repeat(64), "library": "some_wheel/plugin.so",
        });
        for (k, v) in info.as_object().into_iter().flatten() {
            base[k] = v.clone();
        }
        std::fs::write(dir.join("share/pjrt/version_info.json"), base.to_string()).unwrap();
        dir
    }

    /// The plugin of the base commit: RUNPATH into /nix/store (as a Nix
    /// build leaves it) and a library bundled next to it.
    pub fn base_result(&self, name: &str, backend: &str) -> PathBuf {
        let extra = self.libextra();
        let plugin = self.path(&format!("build-{name}/plugin.so"));
        self.plugin(
            &plugin,
            1,
            "extern int extra_value(void);\nint uses_extra(void) { return extra_value(); }",
            &["-L", extra.to_str().unwrap(), "-lextra", "-Wl,-rpath,/nix/store/0123456789abcdfghijklmnpqrsvwxyz-extra-1.0/lib"],
        );
        self.result(name, backend, &plugin, &[&extra.join("libextra.so")], &self.xla.base, "0.1")
    }
}

pub fn text(out: &Output) -> (String, String) {
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

pub fn assert_ok(out: &Output, what: &str) {
    assert!(out.status.success(), "{what} failed ({:?}):\n{}", out.status, text(out).1);
}

pub fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

pub fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// Every entry of a .tar.gz: (path, mode, mtime, uid, gid, user name, contents).
pub type TarEntry = (String, u32, u64, u64, u64, String, Vec<u8>);

pub fn tar_entries(archive: &Path) -> Vec<TarEntry> {
    let file = std::fs::File::open(archive).unwrap();
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
    tar.entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let h = e.header().clone();
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut data).unwrap();
            (
                e.path().unwrap().to_string_lossy().into_owned(),
                h.mode().unwrap(),
                h.mtime().unwrap(),
                h.uid().unwrap(),
                h.gid().unwrap(),
                h.username().unwrap().unwrap_or("").to_owned(),
                data,
            )
        })
        .collect()
}

pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// A fresh minisign key pair (its own directory under the work directory).
pub fn minisign_keypair(env: &Env) -> (PathBuf, PathBuf) {
    let dir = tempfile::Builder::new().prefix("keys-").tempdir_in(env.work.path()).unwrap().keep();
    let (key, public) = (dir.join("test.key"), dir.join("test.pub"));
    let out = run(Command::new("minisign").args(["-G", "-W", "-p"]).arg(&public).arg("-s").arg(&key).stdin(Stdio::null()));
    assert_ok(&out, "minisign -G");
    (key, public)
}

pub fn sha256sum_check(dir: &Path) -> Output {
    run(Command::new("sha256sum").args(["-c", "SHA256SUMS"]).current_dir(dir))
}

pub fn minisign_verify(dir: &Path, public: &Path) -> Output {
    run(Command::new("minisign").args(["-V", "-m"]).arg(dir.join("SHA256SUMS")).arg("-p").arg(public))
}

/// Runs `cmd`, killing it after `limit`: (its output, whether it was killed).
pub fn run_for(cmd: &mut Command, limit: std::time::Duration) -> (Output, bool) {
    use std::io::Read;
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("the command starts");
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out_thread = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stdout.read_to_end(&mut v);
        v
    });
    let err_thread = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stderr.read_to_end(&mut v);
        v
    });
    let deadline = std::time::Instant::now() + limit;
    let mut killed = false;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            killed = true;
            break child.wait().unwrap();
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    (Output { status, stdout: out_thread.join().unwrap(), stderr: err_thread.join().unwrap() }, killed)
}

/// Checks `sbom` with CycloneDX's own schema validator (PyPI's
/// cyclonedx-python-lib, strict JSON schema of CycloneDX 1.6), run by
/// `python3`; `None` when it is not installed (a skip outside CI, a failure
/// under CI=true: `.ci/run` installs it from .ci/python-tools.txt).
pub fn validate_cyclonedx(sbom: &Path) -> Option<Result<(), String>> {
    const SCRIPT: &str = "import sys\n\
from cyclonedx.schema import SchemaVersion\n\
from cyclonedx.validation.json import JsonStrictValidator\n\
error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(open(sys.argv[1]).read())\n\
if error is not None:\n    print(str(error).splitlines()[0]); sys.exit(1)\n";
    let have = Command::new("python3").args(["-c", "import cyclonedx.validation.json"]).output().is_ok_and(|o| o.status.success());
    if !crate::support::require(
        "CycloneDX's validator (python3 -m pip install 'cyclonedx-python-lib[json-validation]'; .ci/run installs it)",
        have,
    ) {
        return None;
    }
    let out = Command::new("python3").arg("-c").arg(SCRIPT).arg(sbom).output().expect("python3 runs");
    Some(if out.status.success() {
        Ok(())
    } else {
        Err(format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
    })
}
