//! `prebuilt fetch` against the real PyPI: the small `xla-cpu-pjrt` wheel,
//! verified, extracted, loaded; corrupt cache entries detected and replaced;
//! a wrong pin fails and leaves nothing behind. Needs network: skipped
//! outside CI when PyPI is unreachable, a failure under `CI=true`.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use xtask::pins::Pins;

const PLUGIN: &str = "xla-cpu-pjrt";
const SYSTEM: &str = "x86_64-linux";

/// Whether PyPI's file host answers; fails under CI when it does not.
fn require_network() -> bool {
    support::require("network access to files.pythonhosted.org", support::reachable("files.pythonhosted.org"))
}

fn project_pins() -> PathBuf {
    support::project_root().join("pins.toml")
}

/// A scratch project root holding `pins_text`, and an empty cache.
struct Scratch {
    root: tempfile::TempDir,
    cache: tempfile::TempDir,
}

impl Scratch {
    fn new(pins_text: &str) -> Scratch {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("pins.toml"), pins_text).unwrap();
        Scratch { root, cache: tempfile::tempdir().unwrap() }
    }

    fn xtask(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_xtask"))
            .args(args)
            .env("PJRTPKGS_ROOT", self.root.path())
            .env("PJRTPKGS_CACHE_DIR", self.cache.path())
            .output()
            .unwrap()
    }

    fn wheels(&self) -> Vec<String> {
        let dir = self.cache.path().join("prebuilt").join("wheels");
        let mut names: Vec<String> =
            std::fs::read_dir(dir).map(|d| d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect()).unwrap_or_default();
        names.sort();
        names
    }
}

fn sha256(path: &Path) -> String {
    xtask::prebuilt::sha256_file(path).unwrap()
}

fn stdout_path(out: &Output) -> PathBuf {
    assert!(out.status.success(), "fetch failed: {}", String::from_utf8_lossy(&out.stderr));
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

#[test]
fn fetch_verifies_extracts_and_replaces_corrupt_cache() {
    if !require_network() {
        return;
    }
    let text = std::fs::read_to_string(project_pins()).unwrap();
    let pins = Pins::parse(&text, "pins.toml").unwrap();
    let pin = &pins.prebuilt[PLUGIN];
    let platform = &pin.platforms[SYSTEM];
    let wheel_name = platform.url.rsplit('/').next().unwrap().to_owned();
    let s = Scratch::new(&text);

    // First fetch: downloaded, verified, extracted with the bundled header.
    let lib = stdout_path(&s.xtask(&["prebuilt", "fetch", PLUGIN, "--system", SYSTEM]));
    assert!(lib.starts_with(s.cache.path()), "{}", lib.display());
    assert_eq!(lib.file_name().unwrap(), Path::new(&platform.library).file_name().unwrap());
    assert!(lib.parent().unwrap().join("include/pjrt_c_api.h").is_file());
    let wheel = s.cache.path().join("prebuilt/wheels").join(&wheel_name);
    assert_eq!(sha256(&wheel), platform.sha256);
    assert_eq!(s.wheels(), std::slice::from_ref(&wheel_name));
    let lib_sha = sha256(&lib);

    // The plugin itself reports the pinned API version (x86_64 hosts only).
    if cfg!(all(target_arch = "x86_64", target_os = "linux")) {
        let out = s.xtask(&["prebuilt", "api-version", lib.to_str().unwrap()]);
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), pin.pjrt_api_version);
    }

    // A corrupt extracted library is detected and extracted again.
    std::fs::write(&lib, b"not a plugin").unwrap();
    let out = s.xtask(&["prebuilt", "fetch", PLUGIN, "--system", SYSTEM]);
    assert_eq!(stdout_path(&out), lib);
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not match its recorded sha256"));
    assert_eq!(sha256(&lib), lib_sha);

    // A corrupt cached wheel is detected, deleted and downloaded again.
    let mut bytes = std::fs::read(&wheel).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&wheel, &bytes).unwrap();
    std::fs::remove_dir_all(lib.parent().unwrap()).unwrap();
    let out = s.xtask(&["prebuilt", "fetch", PLUGIN, "--system", SYSTEM]);
    assert_eq!(stdout_path(&out), lib);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("is corrupt") && stderr.contains(&platform.sha256), "{stderr}");
    assert_eq!(sha256(&wheel), platform.sha256);
    assert_eq!(sha256(&lib), lib_sha);
    assert_eq!(s.wheels(), [wheel_name]);
}

#[test]
fn update_pins_what_pypi_serves() {
    if !require_network() {
        return;
    }
    let text = std::fs::read_to_string(project_pins()).unwrap();
    let pins = Pins::parse(&text, "pins.toml").unwrap();
    let mut doc = xtask::pins::PinsDocument::parse(&text).unwrap();
    assert!(doc.remove_prebuilt(PLUGIN));
    let s = Scratch::new(&doc.to_string());
    let version = pins.prebuilt[PLUGIN].version.clone();
    let out = s.xtask(&["prebuilt", "update", PLUGIN, "--version", &version]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let updated = Pins::load(&s.root.path().join("pins.toml")).unwrap();
    let (new, old) = (&updated.prebuilt[PLUGIN], &pins.prebuilt[PLUGIN]);
    assert_eq!(new.platforms, old.platforms);
    assert_eq!((&new.version, &new.backend), (&old.version, &old.backend));
    if cfg!(target_os = "linux") {
        // Read from the host's plugin, so only on a system it has a wheel for.
        assert_eq!(new.pjrt_api_version, old.pjrt_api_version);
    }
    // Every pinned wheel was downloaded and verified on the way.
    assert_eq!(s.wheels().len(), new.platforms.len());
}

#[test]
fn wrong_pin_fails_and_deletes_the_download() {
    if !require_network() {
        return;
    }
    let text = std::fs::read_to_string(project_pins()).unwrap();
    let pins = Pins::parse(&text, "pins.toml").unwrap();
    let real = &pins.prebuilt[PLUGIN].platforms[SYSTEM].sha256;
    // A valid-looking but wrong sha256: the real one with its digits reversed.
    let wrong: String = real.chars().rev().collect();
    assert_ne!(&wrong, real);
    let s = Scratch::new(&text.replacen(real.as_str(), &wrong, 1));

    let out = s.xtask(&["prebuilt", "fetch", PLUGIN, "--system", SYSTEM]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("sha256 mismatch"), "{stderr}");
    assert!(stderr.contains(&wrong) && stderr.contains(real.as_str()), "both hashes expected in: {stderr}");
    assert!(s.wheels().is_empty(), "left behind: {:?}", s.wheels());
    assert!(String::from_utf8_lossy(&out.stdout).trim().is_empty());
}

#[test]
fn fetch_of_an_unpinned_plugin_or_system_explains() {
    let text = std::fs::read_to_string(project_pins()).unwrap();
    let s = Scratch::new(&text);
    let out = s.xtask(&["prebuilt", "fetch", "no-such-plugin"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("prebuilt update no-such-plugin"));
    let out = s.xtask(&["prebuilt", "fetch", "libtpu", "--system", "aarch64-darwin"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("has no wheel pinned for aarch64-darwin"));
}
