//! `prebuilt fetch` against the real PyPI: the small `xla-cpu-pjrt` wheel,
//! verified, extracted, loaded; corrupt cache entries detected and replaced;
//! a wrong pin fails and leaves nothing behind. Needs network: skipped
//! outside CI when PyPI is unreachable, a failure under `CI=true`.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use support::scratch::Scratch;

use xtask::pinfile::Pins;

const PLUGIN: &str = "xla-cpu-pjrt";
const SYSTEM: &str = "x86_64-linux";

/// Whether PyPI's file host answers; fails under CI when it does not.
fn require_network() -> bool {
    support::require("network access to files.pythonhosted.org", support::reachable("files.pythonhosted.org"))
}

fn project_pins() -> PathBuf {
    support::project_root().join("pins.toml")
}

impl Scratch {
    fn xtask(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// The cached wheels' file names (they live in one directory per sha256).
    fn wheels(&self) -> Vec<String> {
        let dir = self.cache.path().join("prebuilt").join("wheels");
        let mut names = Vec::new();
        for by_sha in std::fs::read_dir(dir).into_iter().flatten() {
            for file in std::fs::read_dir(by_sha.unwrap().path()).unwrap() {
                names.push(file.unwrap().file_name().to_string_lossy().into_owned());
            }
        }
        names.sort();
        names
    }
}

fn sha256(path: &Path) -> String {
    xtask::wheels::download::sha256_file(path).unwrap()
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
    let wheel = s.cache.path().join("prebuilt/wheels").join(&platform.sha256).join(&wheel_name);
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
    let mut doc = xtask::pinfile::PinsDocument::parse(&text).unwrap();
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

/// The process's file-creation mask (Linux: /proc/self/status), which the
/// xtask it starts inherits.
fn umask() -> u32 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("Umask:")).expect("Umask in /proc/self/status");
    u32::from_str_radix(line.split_whitespace().nth(1).unwrap(), 8).unwrap()
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Issue 13, items 7 and 11: four first fetches of the same plugin at once
/// on an empty cache all succeed with the same library; what they leave is
/// readable like any downloaded file (0666/0777 less the umask), and no
/// temporary file or directory stays behind.
#[test]
fn parallel_first_fetches_all_succeed() {
    if !require_network() {
        return;
    }
    let text = std::fs::read_to_string(project_pins()).unwrap();
    let pins = Pins::parse(&text, "pins.toml").unwrap();
    let platform = &pins.prebuilt[PLUGIN].platforms[SYSTEM];
    let s = Scratch::new(&text);
    let outputs = s.parallel(4, &["prebuilt", "fetch", PLUGIN, "--system", SYSTEM]);
    let paths: Vec<PathBuf> = outputs.iter().map(stdout_path).collect();
    assert!(paths.iter().all(|p| p == &paths[0]), "{paths:?}");
    let lib = &paths[0];
    let recorded = std::fs::read_to_string(lib.parent().unwrap().join(".library.sha256")).unwrap();
    assert_eq!(sha256(lib), recorded.trim());

    let wheel = s.cache.path().join("prebuilt/wheels").join(&platform.sha256).join(platform.url.rsplit('/').next().unwrap());
    assert_eq!(sha256(&wheel), platform.sha256);
    let umask = umask();
    assert_eq!(mode(&wheel), 0o666 & !umask, "the cached wheel's mode");
    assert_eq!(mode(lib.parent().unwrap()), 0o777 & !umask, "the extracted directory's mode");
    let plugin_dir = lib.parent().unwrap().parent().unwrap();
    let leftovers: Vec<String> = std::fs::read_dir(plugin_dir)
        .unwrap()
        .chain(std::fs::read_dir(wheel.parent().unwrap()).unwrap())
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert_eq!(leftovers, Vec::<String>::new());

    // The report: four first `smoke` runs at once (the download
    // and extraction part is the same; the plugin runs on x86_64 Linux).
    if cfg!(all(target_arch = "x86_64", target_os = "linux")) {
        let s = Scratch::new(&text);
        s.parallel(4, &["smoke", PLUGIN]);
    }
}

impl Scratch {
    /// Runs the xtask `n` times at once; fails unless every run succeeds.
    fn parallel(&self, n: usize, args: &[&str]) -> Vec<Output> {
        let children: Vec<_> = (0..n)
            .map(|_| {
                Command::new(env!("CARGO_BIN_EXE_xtask"))
                    .args(args)
                    .env("PJRTPKGS_ROOT", self.root.path())
                    .env("PJRTPKGS_CACHE_DIR", self.cache.path())
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let outputs: Vec<Output> = children.into_iter().map(|c| c.wait_with_output().unwrap()).collect();
        let failures: Vec<String> = outputs
            .iter()
            .filter(|o| !o.status.success())
            .map(|o| format!("exit {:?}: {}", o.status.code(), String::from_utf8_lossy(&o.stderr).trim()))
            .collect();
        assert!(failures.is_empty(), "{} of {n} parallel `{}` failed:\n{}", failures.len(), args.join(" "), failures.join("\n"));
        outputs
    }
}

/// Issue 13, item 3: a pinned name like `../../../x` is refused by `pins
/// check` and by `prebuilt fetch`, which creates and removes nothing
/// outside the cache (it used to `remove_dir_all` a directory there).
#[test]
fn pinned_names_cannot_leave_the_cache() {
    let text = std::fs::read_to_string(project_pins()).unwrap();
    let pins = Pins::parse(&text, "pins.toml").unwrap();
    let platform = &pins.prebuilt[PLUGIN].platforms[SYSTEM];
    let escaping = text.replace(&format!("prebuilt.{PLUGIN}"), "prebuilt.\"../../../x\"");

    let outer = tempfile::tempdir().unwrap();
    let cache = outer.path().join("a/b/cache");
    std::fs::create_dir_all(&cache).unwrap();
    // What `../../../x` reaches from the cache's prebuilt/ directory, with
    // something precious in the directory a fetch would replace.
    let victim = outer.path().join("a/x").join(format!("{}-{SYSTEM}-{}", pins.prebuilt[PLUGIN].version, &platform.sha256[..16]));
    std::fs::create_dir_all(&victim).unwrap();
    std::fs::write(victim.join("precious"), "keep me").unwrap();

    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("pins.toml"), &escaping).unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_xtask"))
            .args(args)
            .env("PJRTPKGS_ROOT", root.path())
            .env("PJRTPKGS_CACHE_DIR", &cache)
            .output()
            .unwrap()
    };
    if require_network() {
        escaping_fetch_stays_in_the_cache(&run(&["prebuilt", "fetch", "../../../x", "--system", SYSTEM]), outer.path(), &cache, &victim);
    }
    let check = run(&["pins", "check"]);
    let stderr = String::from_utf8_lossy(&check.stderr);
    assert_eq!(check.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("`prebuilt.\"../../../x\"`: `../../../x` is not a PyPI project name"), "{stderr}");
}

fn escaping_fetch_stays_in_the_cache(fetch: &Output, outer: &Path, cache: &Path, victim: &Path) {
    assert_eq!(
        std::fs::read_to_string(victim.join("precious")).ok().as_deref(),
        Some("keep me"),
        "a directory outside the cache was replaced"
    );
    let mut outside: Vec<String> = Vec::new();
    let mut stack = vec![outer.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.starts_with(cache) {
                continue;
            }
            if path.is_dir() {
                stack.push(path.clone());
            }
            outside.push(path.strip_prefix(outer).unwrap().display().to_string());
        }
    }
    outside.sort();
    let victim_rel = victim.strip_prefix(outer).unwrap().display().to_string();
    assert_eq!(outside, ["a", "a/b", "a/x", victim_rel.as_str(), &format!("{victim_rel}/precious")]);
    assert_eq!(fetch.status.code(), Some(1), "{}", String::from_utf8_lossy(&fetch.stderr));
}

/// Issue 13, new-user item: a changed pin is not a "corrupt" cache. The
/// cached wheel of the old pin is kept; the new pin is downloaded and
/// checked on its own.
#[test]
fn a_changed_pin_is_not_called_corrupt() {
    if !require_network() {
        return;
    }
    let text = std::fs::read_to_string(project_pins()).unwrap();
    let pins = Pins::parse(&text, "pins.toml").unwrap();
    let real = &pins.prebuilt[PLUGIN].platforms[SYSTEM].sha256;
    let s = Scratch::new(&text);
    stdout_path(&s.xtask(&["prebuilt", "fetch", PLUGIN, "--system", SYSTEM]));
    // Re-pinned to another sha256 (here a wrong one) for the same file.
    let wrong: String = real.chars().rev().collect();
    std::fs::write(s.root.path().join("pins.toml"), text.replacen(real.as_str(), &wrong, 1)).unwrap();
    let out = s.xtask(&["prebuilt", "fetch", PLUGIN, "--system", SYSTEM]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("corrupt"), "{stderr}");
    assert!(stderr.contains("sha256 mismatch"), "{stderr}");
    // The wheel of the old pin is still there, intact.
    let name = pins.prebuilt[PLUGIN].platforms[SYSTEM].url.rsplit('/').next().unwrap().to_owned();
    assert_eq!(sha256(&s.cache.path().join("prebuilt/wheels").join(real).join(name)), *real);
}

/// An empty PJRTPKGS_CACHE_DIR or XDG_CACHE_HOME counts as unset: the cache
/// is ~/.cache/pjrtpkgs, not the directory the command runs in.
#[test]
fn empty_cache_variables_count_as_unset() {
    let text = std::fs::read_to_string(project_pins()).unwrap();
    let pins = Pins::parse(&text, "pins.toml").unwrap();
    let (pin, platform) = (&pins.prebuilt[PLUGIN], &pins.prebuilt[PLUGIN].platforms[SYSTEM]);
    let home = tempfile::tempdir().unwrap();
    // A cache holding the extracted plugin, so that no download is needed.
    let dir =
        home.path().join(".cache/pjrtpkgs/prebuilt").join(PLUGIN).join(format!("{}-{SYSTEM}-{}", pin.version, &platform.sha256[..16]));
    std::fs::create_dir_all(&dir).unwrap();
    let lib = dir.join(Path::new(&platform.library).file_name().unwrap());
    std::fs::write(&lib, b"stand-in").unwrap();
    std::fs::write(dir.join(".library.sha256"), format!("{}\n", sha256(&lib))).unwrap();
    let cwd = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("pins.toml"), &text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["prebuilt", "fetch", PLUGIN, "--system", SYSTEM])
        .current_dir(cwd.path())
        .env("PJRTPKGS_ROOT", root.path())
        .env("PJRTPKGS_CACHE_DIR", "")
        .env("XDG_CACHE_HOME", "")
        .env("HOME", home.path())
        .env("PJRTPKGS_HTTP_TIMEOUT", "1")
        .output()
        .unwrap();
    let created: Vec<_> = std::fs::read_dir(cwd.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(created.is_empty(), "the cache went to the current directory: {created:?}");
    assert_eq!(stdout_path(&out), lib);
}
