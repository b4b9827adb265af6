//! Evaluating the flake with real Nix against the nixpkgs TEST DOUBLE
//! (nix/tests/nixpkgs-double): scratch copies of the project, `nix eval`,
//! derivations and their environments. Shared by the tests of the Nix layer.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// A scratch copy of the files the flake reads, so tests can edit pins.toml.
/// It is the copy `deps-hash refresh` makes, so every evaluation here also
/// shows that copy is enough to evaluate the flake.
pub fn scratch() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    xtask::bazel_deps::copy_flake_inputs(&super::project_root(), dir.path()).unwrap();
    dir
}

pub fn nix(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("nix")
        .current_dir(dir)
        .args(["--extra-experimental-features", "nix-command flakes", "--option", "substituters", ""])
        .args(args)
        .output()
        .expect("cannot run nix");
    assert!(out.status.success(), "nix {args:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// `nix eval --json .#ATTR --apply APPLY` against the test double.
pub fn flake_eval(dir: &Path, attr: &str, apply: &str) -> Value {
    let out = nix(
        dir,
        &["eval", "--json", "--override-input", "nixpkgs", "path:./nix/tests/nixpkgs-double", &format!(".#{attr}"), "--apply", apply],
    );
    serde_json::from_str(&out).unwrap()
}

/// `nix-instantiate --eval --strict --json -E EXPR` in `dir`.
pub fn nix_expr(dir: &Path, expr: &str) -> Result<Value, String> {
    let out = Command::new("nix-instantiate")
        .current_dir(dir)
        .args(["--eval", "--strict", "--json", "-E", expr])
        .output()
        .expect("cannot run nix-instantiate");
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(serde_json::from_slice(&out.stdout).unwrap())
}

pub fn pins(dir: &Path) -> toml::Table {
    std::fs::read_to_string(dir.join("pins.toml")).unwrap().parse().unwrap()
}

pub fn edit_pins(dir: &Path, f: impl FnOnce(&mut toml_edit::DocumentMut)) {
    let path = dir.join("pins.toml");
    let mut doc: toml_edit::DocumentMut = std::fs::read_to_string(&path).unwrap().parse().unwrap();
    f(&mut doc);
    std::fs::write(&path, doc.to_string()).unwrap();
}

/// `nix show-derivation -r DRV`: every derivation in the closure.
pub fn show_derivation(dir: &Path, drv: &str) -> BTreeMap<String, Value> {
    serde_json::from_str(&nix(dir, &["show-derivation", "-r", drv])).unwrap()
}

pub fn is_fixed_output(drv: &Value) -> bool {
    drv["outputs"]["out"].get("hash").is_some() || drv["env"].get("outputHash").is_some()
}

pub fn strings(v: &Value) -> Vec<String> {
    v.as_array().unwrap_or_else(|| panic!("not a list: {v}")).iter().map(|f| f.as_str().unwrap().to_owned()).collect()
}

/// `nix eval --raw .#ATTR` against the test double; Err(stderr) when it fails.
pub fn try_flake_eval_raw(dir: &Path, attr: &str) -> Result<String, String> {
    let out = Command::new("nix")
        .current_dir(dir)
        .args(["--extra-experimental-features", "nix-command flakes", "--option", "substituters", ""])
        .args(["eval", "--raw", "--override-input", "nixpkgs", "path:./nix/tests/nixpkgs-double"])
        .arg(format!(".#{attr}"))
        .output()
        .expect("cannot run nix");
    if out.status.success() {
        Ok(String::from_utf8(out.stdout).unwrap())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// The derivation of `.#ATTR` and its closure (`nix show-derivation -r`).
pub fn derivation_of(dir: &Path, attr: &str) -> (String, BTreeMap<String, Value>) {
    let drv = try_flake_eval_raw(dir, &format!("{attr}.drvPath")).unwrap_or_else(|e| panic!("{attr} does not evaluate:\n{e}"));
    let closure = show_derivation(dir, &drv);
    (drv, closure)
}

/// The dependency-fetching derivation of the source build `.#ATTR` (`ATTR.deps`).
pub fn deps_of<'a>(dir: &Path, attr: &str, closure: &'a BTreeMap<String, Value>) -> &'a Value {
    let drv = try_flake_eval_raw(dir, &format!("{attr}.deps.drvPath")).unwrap_or_else(|e| panic!("{attr}.deps:\n{e}"));
    &closure[&drv]
}

pub fn env_str<'a>(drv: &'a Value, var: &str) -> &'a str {
    drv["env"][var].as_str().unwrap_or_else(|| panic!("{var} is not in the environment of {}", drv["env"]["name"]))
}

/// The closure's derivation whose output `out` is `path`.
pub fn producer<'a>(closure: &'a BTreeMap<String, Value>, path: &str) -> &'a Value {
    closure
        .values()
        .find(|d| d["outputs"].as_object().unwrap().values().any(|o| o["path"] == path))
        .unwrap_or_else(|| panic!("no derivation in the closure produces {path}"))
}

/// The text of `file` at the pinned XLA commit, from the real XLA history.
pub fn xla_file(repo: &Path, file: &str) -> String {
    let commit = pins(&super::project_root())["xla"]["commit"].as_str().unwrap().to_owned();
    super::git(repo, &["show", &format!("{commit}:{file}")])
}

/// Every NVSHMEM library NVIDIA ships (nvidia_nvshmem_cu13-3.3.20's wheel,
/// read 2026 from PyPI; the redistributable archives name the same
/// libraries, with versioned files and soname links): the host library, the
/// bootstrap and the transport plugins.
pub const NVSHMEM_SHIPPED: &[&str] = &[
    "libnvshmem_host",
    "nvshmem_bootstrap_mpi",
    "nvshmem_bootstrap_pmi",
    "nvshmem_bootstrap_pmi2",
    "nvshmem_bootstrap_pmix",
    "nvshmem_bootstrap_shmem",
    "nvshmem_bootstrap_uid",
    "nvshmem_transport_ibdevx",
    "nvshmem_transport_ibgda",
    "nvshmem_transport_ibrc",
    "nvshmem_transport_libfabric",
    "nvshmem_transport_ucx",
];
