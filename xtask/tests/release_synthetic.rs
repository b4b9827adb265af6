//! `cargo xtask release` on synthetic inputs: plugins compiled here with the
//! system's `cc` (one needing a glibc symbol newer than the floor, one whose
//! RUNPATH points into /nix/store, one loading a library bundled next to
//! it), packed as Nix build results (nix/lib.nix's layout), released against
//! a synthetic XLA history. The standard tools are the peers: `sha256sum
//! -c`, Debian's `minisign`, GNU `tar`, the dynamic loader itself.

mod release_support;
mod support;
mod upgrade_support;

use std::path::Path;
use std::process::{Command, Stdio};

use release_support::*;
use serde_json::Value;
use support::require_command;
use upgrade_support::git;

#[test]
fn two_runs_give_byte_identical_archives() {
    let Some(env) = Env::new() else { return };
    let cpu = env.base_result("result-cpu", "cpu");
    let cuda = env.base_result("result-cuda", "cuda12");
    let (cpu, cuda) = (cpu.to_str().unwrap(), cuda.to_str().unwrap());
    let first = env.path("dist-1");
    let out = env.xtask(&["release", cpu, cuda, "--unsigned", "--out", first.to_str().unwrap()]);
    assert_ok(&out, "release");
    // Another working directory, the inputs in the other order, one job.
    let elsewhere = env.path("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let second = env.path("dist-2");
    let out = env.xtask_in(&elsewhere, &["release", cuda, cpu, "--unsigned", "--jobs", "1", "--out", second.to_str().unwrap()]);
    assert_ok(&out, "second release");

    let names = files(&first);
    assert_eq!(
        names,
        [
            "RELEASE_NOTES.md",
            "SHA256SUMS",
            "compat.json",
            "pjrt-cpu-linux-x86_64-v0.1.1.cdx.json",
            "pjrt-cpu-linux-x86_64-v0.1.1.tar.gz",
            "pjrt-cuda12-linux-x86_64-v0.1.1.cdx.json",
            "pjrt-cuda12-linux-x86_64-v0.1.1.tar.gz"
        ]
        .map(String::from)
        .to_vec()
    );
    // SHA256SUMS lists every file but itself, in `sha256sum` format.
    let sums = std::fs::read_to_string(first.join("SHA256SUMS")).unwrap();
    let listed: Vec<&str> = sums.lines().map(|l| l.split_once("  ").unwrap().1).collect();
    assert_eq!(listed, names.iter().filter(|n| *n != "SHA256SUMS").map(String::as_str).collect::<Vec<_>>());
    if require_command("sha256sum") {
        assert_ok(&sha256sum_check(&first), "sha256sum -c");
    }
    // Every SBOM passes CycloneDX's own validator.
    for sbom in names.iter().filter(|n| n.ends_with(".cdx.json")) {
        if let Some(result) = validate_cyclonedx(&first.join(sbom)) {
            result.unwrap_or_else(|e| panic!("{sbom} is not valid CycloneDX 1.6: {e}"));
        }
    }
    assert_eq!(files(&second), names);
    for name in &names {
        assert!(std::fs::read(first.join(name)).unwrap() == std::fs::read(second.join(name)).unwrap(), "{name} differs between runs");
    }

    // The archive: sorted, every directory listed, fixed metadata.
    let archive = first.join("pjrt-cpu-linux-x86_64-v0.1.1.tar.gz");
    let raw = std::fs::read(&archive).unwrap();
    assert_eq!(&raw[..10], &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3], "gzip header with a name or a timestamp");
    let entries = tar_entries(&archive);
    let paths: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
    let mut sorted = paths.clone();
    sorted.sort();
    assert_eq!(paths, sorted);
    let top = "pjrt-cpu-linux-x86_64-v0.1.1";
    for want in [
        format!("{top}/"),
        format!("{top}/include/xla/pjrt/c/pjrt_c_api.h"),
        format!("{top}/include/xla/pjrt/c/pjrt_c_api_example_extension.h"),
        format!("{top}/lib/"),
        format!("{top}/lib/libextra.so"),
        format!("{top}/lib/pjrt_c_api_cpu_plugin.so"),
        format!("{top}/share/pjrt/version_info.json"),
    ] {
        assert!(paths.contains(&want.as_str()), "{want} missing from {paths:?}");
    }
    for (path, mode, mtime, uid, gid, user, _) in &entries {
        assert_eq!((*mtime, *uid, *gid, user.as_str()), (BASE_EPOCH, 0, 0, ""), "{path}");
        let want = if path.ends_with('/') || path.ends_with(".so") { 0o755 } else { 0o644 };
        assert_eq!(*mode, want, "{path}");
    }
    // The headers are those of the pinned commit, byte for byte.
    let header = &entries.iter().find(|e| e.0.ends_with("include/xla/pjrt/c/pjrt_c_api.h")).unwrap().6;
    let in_git =
        run(Command::new("git").arg("-C").arg(env.xla.path()).arg("show").arg(format!("{}:xla/pjrt/c/pjrt_c_api.h", env.xla.base)));
    assert_eq!(header, &in_git.stdout);

    // GNU tar extracts it silently; the loader finds the bundled library
    // through the rewritten RUNPATH; no store path is left in the file.
    let x = env.path("extracted");
    std::fs::create_dir_all(&x).unwrap();
    let out = run(Command::new("tar").arg("-xzf").arg(&archive).arg("-C").arg(&x));
    assert_ok(&out, "tar -xzf");
    assert!(out.stderr.is_empty(), "tar complained: {}", String::from_utf8_lossy(&out.stderr));
    let plugin = x.join(top).join("lib/pjrt_c_api_cpu_plugin.so");
    let out = run(Command::new("readelf").arg("-d").arg(&plugin));
    let dynamic = String::from_utf8_lossy(&out.stdout);
    assert!(dynamic.contains("Library runpath: [$ORIGIN]"), "{dynamic}");
    assert!(!dynamic.contains("RPATH"), "{dynamic}");
    assert!(!contains(&std::fs::read(&plugin).unwrap(), b"/nix/store"), "a store path is left in the plugin");
    let out = env.xtask(&["prebuilt", "api-version", plugin.to_str().unwrap()]);
    assert_ok(&out, "loading the released plugin");
    assert_eq!(text(&out).0.trim(), "0.1");
    let out = env.xtask(&["release", "check", plugin.to_str().unwrap()]);
    assert_ok(&out, "release check of the released plugin");

    // version_info.json: the release's keys and the Nix keys it was given.
    let info: Value = serde_json::from_slice(&std::fs::read(x.join(top).join("share/pjrt/version_info.json")).unwrap()).unwrap();
    assert_eq!(info["release"]["version"], "0.1.1");
    assert_eq!(info["release"]["tag"], "v0.1.1");
    assert_eq!(info["xla_commit"], env.xla.base.as_str());
    assert_eq!(info["xla_hash"], "sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
    assert_eq!(info["pjrt_api_version"], "0.1");
    assert_eq!(info["platform"]["system"], "x86_64-linux");
    assert_eq!(info["origin"], "source");
    assert_eq!(info["toolchains"]["bazel"], "7.4.1");
    assert_eq!(info["headers"]["xla_commit"], env.xla.base.as_str());
    assert_eq!(info["portability"]["runpath"], "$ORIGIN");
    assert_eq!(info["portability"]["bundled"], serde_json::json!(["libextra.so"]));
    let commit = git(env.project.path(), &["rev-parse", "HEAD"]);
    assert_eq!(info["pjrtpkgs_commit"], commit.as_str());
}

#[test]
fn signature_and_checksums_verify_with_the_standard_tools_and_tampering_is_refused() {
    let Some(env) = Env::new() else { return };
    if !require_command("minisign") || !require_command("sha256sum") {
        return;
    }
    let (key, public) = minisign_keypair(&env);
    let result = env.base_result("result", "cpu");
    let dist = env.path("dist");
    let out = env.xtask(&["release", result.to_str().unwrap(), "--key", key.to_str().unwrap(), "--out", dist.to_str().unwrap()]);
    assert_ok(&out, "release");
    assert!(dist.join("SHA256SUMS.minisig").is_file());

    // The good release passes both standard tools and `release verify`.
    assert_ok(&sha256sum_check(&dist), "sha256sum -c");
    let out = minisign_verify(&dist, &public);
    assert_ok(&out, "minisign -V");
    assert!(String::from_utf8_lossy(&out.stdout).contains("pjrtpkgs v0.1.1 SHA256SUMS"), "trusted comment: {}", text(&out).0);
    let verify = |dir: &Path| env.xtask(&["release", "verify", dir.to_str().unwrap(), "--public-key", public.to_str().unwrap(), "--json"]);
    let out = verify(&dist);
    assert_ok(&out, "release verify");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], true);
    assert_eq!(report["trusted_comment"], "pjrtpkgs v0.1.1 SHA256SUMS");

    let copy = |name: &str| {
        let d = env.path(name);
        std::fs::create_dir_all(&d).unwrap();
        for f in files(&dist) {
            std::fs::copy(dist.join(&f), d.join(&f)).unwrap();
        }
        d
    };
    let archive = "pjrt-cpu-linux-x86_64-v0.1.1.tar.gz";

    // A tampered archive: sha256sum and `release verify` refuse it (the
    // signature over SHA256SUMS still holds: that is what it signs).
    let d = copy("tampered-archive");
    let mut bytes = std::fs::read(d.join(archive)).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(d.join(archive), &bytes).unwrap();
    assert!(!sha256sum_check(&d).status.success(), "sha256sum -c accepted a tampered archive");
    let out = verify(&d);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out).1);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(report["problems"][0].as_str().unwrap().contains(archive), "{report:#}");

    // A tampered signature: minisign and `release verify` refuse it.
    let d = copy("tampered-signature");
    let sig = std::fs::read_to_string(d.join("SHA256SUMS.minisig")).unwrap();
    let mut lines: Vec<String> = sig.lines().map(str::to_owned).collect();
    let b64 = &mut lines[1];
    let flipped = if b64.as_bytes()[20] == b'A' { 'B' } else { 'A' };
    b64.replace_range(20..21, &flipped.to_string());
    std::fs::write(d.join("SHA256SUMS.minisig"), lines.join("\n") + "\n").unwrap();
    assert!(!minisign_verify(&d, &public).status.success(), "minisign accepted a tampered signature");
    assert_eq!(verify(&d).status.code(), Some(2));

    // A forged SHA256SUMS matching a swapped archive: the checksums pass,
    // the signature does not.
    let d = copy("forged-sums");
    std::fs::write(d.join(archive), b"not the plugin").unwrap();
    let forged = String::from_utf8(run(Command::new("sha256sum").arg(archive).current_dir(&d)).stdout).unwrap();
    std::fs::write(d.join("SHA256SUMS"), forged).unwrap();
    assert_ok(&sha256sum_check(&d), "sha256sum -c of the forged sums");
    assert!(!minisign_verify(&d, &public).status.success(), "minisign accepted a forged SHA256SUMS");
    assert_eq!(verify(&d).status.code(), Some(2));

    // Another key: refused. An archive nobody listed: refused.
    let (_, other) = minisign_keypair(&env);
    let out = env.xtask(&["release", "verify", dist.to_str().unwrap(), "--public-key", other.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out).1);
    let d = copy("extra-archive");
    std::fs::write(d.join("pjrt-evil-linux-x86_64-v0.1.1.tar.gz"), b"x").unwrap();
    let out = verify(&d);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stdout).contains("pjrt-evil-linux-x86_64-v0.1.1.tar.gz is not listed"));
}

#[test]
fn keys_from_keygen_work_with_minisign() {
    let Some(env) = Env::new() else { return };
    if !require_command("minisign") {
        return;
    }
    let keys = env.path("keys");
    let out = env.xtask(&["release", "keygen", "--out", keys.to_str().unwrap(), "--json"]);
    assert_ok(&out, "release keygen");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let (key, public) = (keys.join("pjrtpkgs-release.key"), keys.join("pjrtpkgs-release.pub"));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
    // The printed key is the .pub file's and minisign's key id matches.
    let pub_text = std::fs::read_to_string(&public).unwrap();
    assert_eq!(pub_text.lines().nth(1).unwrap(), report["public_key"].as_str().unwrap());
    assert!(pub_text.lines().next().unwrap().ends_with(report["key_id"].as_str().unwrap()), "{pub_text}");

    // minisign signs with our secret key and verifies with our public key.
    let file = env.path("some-file");
    std::fs::write(&file, b"signed by minisign with a key made by pjrtpkgs\n").unwrap();
    let out = run(Command::new("minisign").args(["-S", "-s"]).arg(&key).arg("-m").arg(&file).stdin(Stdio::null()));
    assert_ok(&out, "minisign -S with a keygen key");
    let out = run(Command::new("minisign").args(["-V", "-p"]).arg(&public).arg("-m").arg(&file));
    assert_ok(&out, "minisign -V with a keygen key");

    // A release signed with it verifies with minisign, with the key taken from the .pub file.
    let result = env.base_result("result", "cpu");
    let dist = env.path("dist");
    let out = env.xtask(&["release", result.to_str().unwrap(), "--key", key.to_str().unwrap(), "--out", dist.to_str().unwrap()]);
    assert_ok(&out, "release");
    assert_ok(&minisign_verify(&dist, &public), "minisign -V of a release");
    // ...and with pins.toml's key, once it is pinned there; a release with
    // another key is then refused before anything is written.
    let pins = env.project.path().join("pins.toml");
    let mut doc: toml_edit::DocumentMut = std::fs::read_to_string(&pins).unwrap().parse().unwrap();
    doc["release"]["minisign_public_key"] = toml_edit::value(report["public_key"].as_str().unwrap());
    std::fs::write(&pins, doc.to_string()).unwrap();
    let out = env.xtask(&["release", "verify", dist.to_str().unwrap()]);
    assert_ok(&out, "release verify with the pinned key");
    let (other_key, _) = minisign_keypair(&env);
    let out = env.xtask(&[
        "release",
        result.to_str().unwrap(),
        "--key",
        other_key.to_str().unwrap(),
        "--out",
        env.path("dist-other").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).1.contains("minisign_public_key"), "{}", text(&out).1);
    assert!(!env.path("dist-other").exists());
    // Keys are never overwritten.
    let out = env.xtask(&["release", "keygen", "--out", keys.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(std::fs::read_to_string(&public).unwrap(), pub_text);
}

#[test]
fn verify_reads_a_release_over_http() {
    let Some(env) = Env::new() else { return };
    if !require_command("python3") || !require_command("minisign") {
        return;
    }
    let (key, public) = minisign_keypair(&env);
    let result = env.base_result("result", "cpu");
    let dist = env.path("dist");
    assert_ok(
        &env.xtask(&["release", result.to_str().unwrap(), "--key", key.to_str().unwrap(), "--out", dist.to_str().unwrap()]),
        "release",
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut server = Command::new("python3")
        .args(["-m", "http.server", "--bind", "127.0.0.1", "--directory"])
        .arg(&dist)
        .arg(port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(std::time::Instant::now() < deadline, "the HTTP server did not start");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let url = format!("http://127.0.0.1:{port}/");
    let good = env.xtask(&["release", "verify", &url, "--public-key", public.to_str().unwrap()]);
    let archive = dist.join("pjrt-cpu-linux-x86_64-v0.1.1.tar.gz");
    let mut bytes = std::fs::read(&archive).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(&archive, bytes).unwrap();
    let bad = env.xtask(&["release", "verify", &url, "--public-key", public.to_str().unwrap()]);
    server.kill().unwrap();
    let _ = server.wait();
    assert_ok(&good, "release verify over HTTP");
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad).1);
    assert!(text(&bad).1.contains("pjrt-cpu-linux-x86_64-v0.1.1.tar.gz: sha256"), "{}", text(&bad).1);
}

#[test]
fn elf_check_refuses_a_too_new_glibc_symbol_and_a_nix_store_runpath() {
    let Some(env) = Env::new() else { return };
    // arc4random is GLIBC_2.36 (Debian 12's glibc): newer than manylinux_2_27.
    let too_new = env.path("too-new/plugin.so");
    env.plugin(&too_new, 1, "unsigned int random_value(void) { return arc4random(); }", &[]);
    let store = env.path("store/plugin.so");
    env.plugin(&store, 1, "", &["-Wl,-rpath,/nix/store/0123456789abcdfghijklmnpqrsvwxyz-glibc-2.40/lib"]);
    let clean = env.path("clean/plugin.so");
    env.plugin(&clean, 1, "const char* home(void) { return getenv(\"HOME\"); }", &[]);

    let check = |file: &Path| env.xtask(&["release", "check", file.to_str().unwrap(), "--json"]);
    let out = check(&clean);
    assert_ok(&out, "release check of a clean plugin");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["floor"], "manylinux_2_27");
    assert!(report["files"][0]["portability"]["max_versions"]["GLIBC"].as_str().unwrap().starts_with("GLIBC_2."));

    let out = check(&too_new);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out).1);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let problems = report["files"][0]["problems"].to_string();
    assert!(problems.contains("GLIBC_2.36") && problems.contains("arc4random") && problems.contains("manylinux_2_27"), "{problems}");

    let out = check(&store);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out).1);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let problems = report["files"][0]["problems"].to_string();
    assert!(
        problems.contains("/nix/store/0123456789abcdfghijklmnpqrsvwxyz-glibc-2.40/lib") && problems.contains("Nix store"),
        "{problems}"
    );

    // The same floor check refuses a release: nothing is written, and the
    // refusal names the version and the symbol.
    let result = env.result("result-too-new", "cpu", &too_new, &[], &env.xla.base, "0.1");
    let dist = env.path("dist");
    let out = env.xtask(&["release", result.to_str().unwrap(), "--unsigned", "--out", dist.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out).1;
    assert!(stderr.contains("GLIBC_2.36") && stderr.contains("arc4random") && stderr.contains("nothing was written"), "{stderr}");
    assert!(!dist.exists());
    assert!(files(env.work.path()).iter().all(|f| !f.starts_with(".release-")), "a staging directory was left behind");

    // A store RUNPATH the plugin depends on (a library found only there)
    // is refused too; shipping that library in lib/ makes it portable.
    let extra = env.libextra();
    let needs_store = env.path("needs-store/plugin.so");
    env.plugin(
        &needs_store,
        1,
        "extern int extra_value(void);\nint uses_extra(void) { return extra_value(); }",
        &["-L", extra.to_str().unwrap(), "-lextra", "-Wl,-rpath,/nix/store/0123456789abcdfghijklmnpqrsvwxyz-extra-1.0/lib"],
    );
    let result = env.result("result-needs-store", "cpu", &needs_store, &[], &env.xla.base, "0.1");
    let out = env.xtask(&["release", result.to_str().unwrap(), "--unsigned", "--out", dist.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).1.contains("needs `libextra.so`, which is neither bundled"), "{}", text(&out).1);
    assert!(!dist.exists());
    // With a clean plugin whose RUNPATH points into the store and needs
    // nothing from there: the RUNPATH is removed.
    let result = env.result("result-store", "cpu", &store, &[], &env.xla.base, "0.1");
    let out = env.xtask(&["release", result.to_str().unwrap(), "--unsigned", "--out", dist.to_str().unwrap()]);
    assert_ok(&out, "release of a plugin with a removable store RUNPATH");
    let entries = tar_entries(&dist.join("pjrt-cpu-linux-x86_64-v0.1.1.tar.gz"));
    let plugin = &entries.iter().find(|e| e.0.ends_with("pjrt_c_api_cpu_plugin.so")).unwrap().6;
    assert!(!contains(plugin, b"/nix/store"));
    let released = env.path("released.so");
    std::fs::write(&released, plugin).unwrap();
    let out = run(Command::new("readelf").arg("-d").arg(&released));
    let dynamic = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(!dynamic.contains("RUNPATH") && !dynamic.contains("RPATH"), "{dynamic}");
    assert_ok(&env.xtask(&["prebuilt", "api-version", released.to_str().unwrap()]), "loading the rewritten plugin");
}

#[test]
fn versions_tags_dev_prereleases_and_bump() {
    let Some(env) = Env::new() else { return };
    let result = env.base_result("result", "cpu");
    let r = result.to_str().unwrap();
    // A tag that is not what this checkout releases is refused.
    let out = env.xtask(&["release", r, "--unsigned", "--tag", "v0.1.2", "--out", env.path("d1").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).1.contains("this checkout releases v0.1.1"), "{}", text(&out).1);
    assert_ok(&env.xtask(&["release", r, "--unsigned", "--tag", "v0.1.1", "--out", env.path("d1").to_str().unwrap()]), "tagged release");
    // A non-empty --out is refused.
    let out = env.xtask(&["release", r, "--unsigned", "--out", env.path("d1").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).1.contains("is not empty"));

    // Pre-releases: .devYYYYMMDD from --date or SOURCE_DATE_EPOCH.
    let out = env.xtask(&["release", r, "--unsigned", "--dev", "--date", "20260301", "--out", env.path("d2").to_str().unwrap(), "--json"]);
    assert_ok(&out, "dev release");
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["version"], "v0.1.1.dev20260301");
    assert_eq!(summary["archives"][0]["file"], "pjrt-cpu-linux-x86_64-v0.1.1.dev20260301.tar.gz");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
    cmd.args(["release", r, "--unsigned", "--dev", "--out", env.path("d3").to_str().unwrap(), "--json"])
        .current_dir(env.work.path())
        .env("PJRTPKGS_ROOT", env.project.path())
        .env("PJRTPKGS_CACHE_DIR", env.project.cache.path())
        .env("XLA_REPO", env.xla.path())
        .env("SOURCE_DATE_EPOCH", "1772323200"); // 2026-03-01T00:00:00Z
    let out = run(&mut cmd);
    assert_ok(&out, "dev release from SOURCE_DATE_EPOCH");
    assert_eq!(serde_json::from_slice::<Value>(&out.stdout).unwrap()["version"], "v0.1.1.dev20260301");
    let notes = std::fs::read_to_string(env.path("d3/RELEASE_NOTES.md")).unwrap();
    assert!(notes.starts_with("# pjrtpkgs v0.1.1.dev20260301\n") && notes.contains("pre-release"), "{notes}");

    // `release bump` counts the build up, keeping every other byte.
    let pins = env.project.path().join("pins.toml");
    let before = std::fs::read_to_string(&pins).unwrap();
    assert_ok(&env.xtask(&["release", "bump"]), "release bump");
    let after = std::fs::read_to_string(&pins).unwrap();
    assert_eq!(after, before.replace("\nbuild = 1\n", "\nbuild = 2\n"));
    let out = env.xtask(&["release", r, "--unsigned", "--out", env.path("d4").to_str().unwrap(), "--json"]);
    assert_eq!(serde_json::from_slice::<Value>(&out.stdout).unwrap()["version"], "v0.1.2");
}

#[test]
fn prebuilt_plugins_carry_their_own_version_and_matching_headers() {
    let Some(env) = Env::new() else { return };
    // A Nix package of a wheel (origin "prebuilt"), at API 0.2 and 0.5, with no headers.
    let prebuilt = |name: &str, minor: u32| {
        let plugin = env.path(&format!("build-{name}/plugin.so"));
        env.plugin(&plugin, minor, "", &[]);
        let dir = env.path(name);
        std::fs::create_dir_all(dir.join("lib")).unwrap();
        std::fs::create_dir_all(dir.join("share/pjrt")).unwrap();
        std::fs::copy(&plugin, dir.join("lib/pjrt_c_api_cpu_plugin.so")).unwrap();
        let info = serde_json::json!({
            "schema": 1, "backend": "cpu", "origin": "prebuilt", "toolchains": {}, "xla_commit": null,
            "pjrt_api_version": format!("0.{minor}"), "package": "some-wheel", "version": "1.0",
            "url": "https://example.invalid/some_wheel-1.0-py3-none-manylinux_2_27_x86_64.whl",
            "sha256": "0".repeat(64), "library": "some_wheel/plugin.so",
        });
        std::fs::write(dir.join("share/pjrt/version_info.json"), info.to_string()).unwrap();
        dir
    };
    let exact = prebuilt("wheel-0.2", 2);
    let newer = prebuilt("wheel-0.5", 5);
    let dist = env.path("dist");
    let out =
        env.xtask(&["release", exact.to_str().unwrap(), newer.to_str().unwrap(), "--unsigned", "--out", dist.to_str().unwrap(), "--json"]);
    assert_ok(&out, "release of prebuilt results");
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["version"], "v0.1.1", "the release is versioned by the pinned commit");
    let info = |file: &str| -> Value {
        let entries = tar_entries(&dist.join(file));
        serde_json::from_slice(&entries.iter().find(|e| e.0.ends_with("version_info.json")).unwrap().6).unwrap()
    };
    // API 0.2: the headers of the commit that declares 0.2.
    let i = info("pjrt-cpu-linux-x86_64-v0.2.1.tar.gz");
    assert_eq!(i["release"]["version"], "0.2.1");
    assert_eq!(i["headers"]["xla_commit"], env.xla.compatible.as_str());
    assert_eq!(i["headers"]["pjrt_api_version"], "0.2");
    assert_eq!(i["package"], "some-wheel");
    assert_eq!(i["version"], "1.0");
    // API 0.5, newer than the history (0.3): the newest headers, said so.
    let i = info("pjrt-cpu-linux-x86_64-v0.5.1.tar.gz");
    assert_eq!(i["headers"]["pjrt_api_version"], "0.3");
    assert!(i["headers"]["note"].as_str().unwrap().contains("ABI-compatible subset"), "{i:#}");
    // Two plugins that would make the same archive are refused.
    let twin = prebuilt("wheel-0.2-again", 2);
    let out =
        env.xtask(&["release", exact.to_str().unwrap(), twin.to_str().unwrap(), "--unsigned", "--out", env.path("d2").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).1.contains("would both be pjrt-cpu-linux-x86_64-v0.2.1.tar.gz"), "{}", text(&out).1);
}

#[test]
fn version_info_keeps_the_keys_nix_writes() {
    let Some(env) = Env::new() else { return };
    if !require_command("nix-instantiate") {
        return;
    }
    // version_info.json exactly as nix/lib.nix versionInfo makes it for a source build.
    let lib = support::project_root().join("nix/lib.nix");
    let expr = format!(
        "(import {}).versionInfo {{ backend = \"cpu\"; origin = \"source\"; xlaCommit = \"{}\"; pjrtApiVersion = \"0.1\"; \
         toolchains = {{ bazel = \"7.4.1\"; }}; extra = {{ bazel_version_mismatch = false; bazel_flags = [ \"-c\" \"opt\" ]; }}; }}",
        lib.display(),
        env.xla.base
    );
    let out = run(Command::new("nix-instantiate").args(["--eval", "--strict", "--json", "-E", &expr]));
    assert_ok(&out, "nix-instantiate");
    let nix: serde_json::Map<String, Value> = serde_json::from_slice(&out.stdout).unwrap();
    let result = env.base_result("result", "cpu");
    std::fs::write(result.join("share/pjrt/version_info.json"), &out.stdout).unwrap();
    let dist = env.path("dist");
    assert_ok(&env.xtask(&["release", result.to_str().unwrap(), "--unsigned", "--out", dist.to_str().unwrap()]), "release");
    let entries = tar_entries(&dist.join("pjrt-cpu-linux-x86_64-v0.1.1.tar.gz"));
    let ours: serde_json::Map<String, Value> =
        serde_json::from_slice(&entries.iter().find(|e| e.0.ends_with("version_info.json")).unwrap().6).unwrap();
    for (key, value) in &nix {
        assert_eq!(ours.get(key), Some(value), "version_info.json key `{key}` differs from nix/lib.nix's");
    }
}

#[test]
fn pins_release_table_is_validated() {
    let Some(env) = Env::new() else { return };
    let pins = env.project.path().join("pins.toml");
    let good = std::fs::read_to_string(&pins).unwrap();
    for (from, to, key) in [
        ("glibc_floor = \"manylinux_2_27\"", "glibc_floor = \"manylinux_2_99\"", "release.glibc_floor"),
        ("\nbuild = 1\n", "\nbuild = 0\n", "release.build"),
        ("\nbuild = 1\n", "\nbuild = 1\nminisign_public_key = \"RWnotakey\"\n", "release.minisign_public_key"),
        ("\nbuild = 1\n", "\nbuild = 1\nsystem_libraries = [\"/usr/lib/libcuda.so.1\"]\n", "release.system_libraries"),
    ] {
        assert!(good.contains(from), "{from}");
        std::fs::write(&pins, good.replace(from, to)).unwrap();
        let out = env.xtask(&["pins", "check"]);
        assert_eq!(out.status.code(), Some(1), "{to}");
        assert!(text(&out).1.contains(&format!("`{key}`")), "{}", text(&out).1);
    }
    std::fs::write(&pins, &good).unwrap();
}

#[test]
fn upgrade_resets_the_build_counter_when_the_api_changes() {
    let Some(env) = Env::new() else { return };
    // Counting within one PJRT version, directly on the document.
    let text_with = |build: u32| {
        std::fs::read_to_string(env.project.path().join("pins.toml")).unwrap().replace("\nbuild = 1\n", &format!("\nbuild = {build}\n"))
    };
    let mut doc = xtask::pinfile::PinsDocument::parse(&text_with(4)).unwrap();
    doc.reset_release_build_for("0.1");
    assert_eq!(doc.release_build(), Some(4), "the same API version keeps counting");
    doc.reset_release_build_for("0.2");
    assert_eq!(doc.release_build(), Some(1));

    // And through `upgrade-xla` (API 0.1 -> 0.2).
    std::fs::write(env.project.path().join("pins.toml"), text_with(4)).unwrap();
    git(env.project.path(), &["commit", "-q", "-am", "build 4"]);
    let out = env.project.upgrade(env.xla.path(), &[&env.xla.compatible], &[]);
    assert_ok(&out, "upgrade-xla");
    let pins: toml::Table = env.project.read("pins.toml").parse().unwrap();
    assert_eq!(pins["xla"]["pjrt_api_version"].as_str(), Some("0.2"));
    assert_eq!(pins["release"]["build"].as_integer(), Some(1));
}

#[test]
fn notes_carry_the_header_verdict_and_the_new_changelog_entries() {
    let Some(env) = Env::new() else { return };
    if !support::require_libclang() {
        return;
    }
    let p = env.project.path();
    // v0.1.1 was released from the base commit...
    git(p, &["tag", "v0.1.1"]);
    // ...then XLA moved to 0.2 and the changelog gained an entry.
    let pins = std::fs::read_to_string(p.join("pins.toml")).unwrap();
    let pins = pins.replace(&env.xla.base, &env.xla.compatible).replace("pjrt_api_version = \"0.1\"", "pjrt_api_version = \"0.2\"");
    std::fs::write(p.join("pins.toml"), pins).unwrap();
    std::fs::write(p.join("CHANGELOG.md"), "# Changelog\n\n## 0.1.0\n\n### Added\n- Releases for non-Nix users.\n- First release.\n")
        .unwrap();
    git(p, &["commit", "-q", "-am", "XLA 0.2"]);

    let plugin = env.path("build/plugin.so");
    env.plugin(&plugin, 2, "", &[]);
    let result = env.result("result", "cpu", &plugin, &[], &env.xla.compatible, "0.2");
    let dist = env.path("dist");
    assert_ok(&env.xtask(&["release", result.to_str().unwrap(), "--unsigned", "--out", dist.to_str().unwrap()]), "release");
    let notes = std::fs::read_to_string(dist.join("RELEASE_NOTES.md")).unwrap();
    let diff = env.xtask(&[
        "diff-headers",
        &env.xla.base,
        &env.xla.compatible,
        "--xla-repo",
        env.xla.path().to_str().unwrap(),
        "--format",
        "json",
    ]);
    let verdict = serde_json::from_slice::<Value>(&diff.stdout).unwrap()["verdict"].as_str().unwrap().to_ascii_uppercase();
    assert!(notes.contains(&format!("Since v0.1.1 (XLA `{}`): **{verdict}**", &env.xla.base[..12])), "{notes}");
    assert!(notes.contains("- Releases for non-Nix users."), "{notes}");
    assert!(!notes.contains("- First release."), "an entry of the previous release is repeated:\n{notes}");
    assert!(notes.starts_with("# pjrtpkgs v0.2.1\n"));
}
