//! `cargo xtask release` on the pinned CPU wheels from PyPI, three PJRT API
//! versions (xla-cpu-pjrt 0.81, fastatomstruct-xla-cpu 0.106,
//! lammps-jax-pjrt-cpu 0.115): archives built and signed, checked with
//! `sha256sum -c` and Debian's `minisign`, extracted on this plain Debian
//! machine, and `cargo xtask smoke` run on each extracted plugin; a second
//! run with the inputs in the other order gives the same bytes.
//!
//! Needs the network (PyPI, unless the wheels are cached), real XLA history
//! (the pinned commit's header; the headers of 0.106 and 0.115), minisign
//! and sha256sum: skipped without them, failed without them under CI=true.

mod release_support;
mod support;
mod upgrade_support;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;
use support::{require, require_command};

const WHEELS: [(&str, &str); 3] = [("xla-cpu-pjrt", "0.81"), ("fastatomstruct-xla-cpu", "0.106"), ("lammps-jax-pjrt-cpu", "0.115")];

fn xtask(cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .current_dir(cwd)
        .env("PJRTPKGS_ROOT", support::project_root())
        .env_remove("PJRTPKGS_RELEASE_KEY_FILE")
        .output()
        .expect("the xtask binary runs")
}

fn assert_ok(out: &Output, what: &str) {
    assert!(out.status.success(), "{what} failed ({:?}):\n{}", out.status, String::from_utf8_lossy(&out.stderr));
}

#[test]
fn pinned_cpu_wheels_release_extract_and_smoke() {
    if !require_command("minisign") || !require_command("sha256sum") || !require_command("tar") {
        return;
    }
    let Some(xla) = support::xla_repo() else { return };
    if !require("network access to pypi.org", support::reachable("pypi.org")) {
        return;
    }
    let work = tempfile::Builder::new().prefix("release-wheels-").tempdir().unwrap();
    let w = work.path();
    let (key, public) = (w.join("test.key"), w.join("test.pub"));
    let out = Command::new("minisign").args(["-G", "-W", "-p"]).arg(&public).arg("-s").arg(&key).stdin(Stdio::null()).output().unwrap();
    assert_ok(&out, "minisign -G");

    let xla = xla.to_str().unwrap();
    let names: Vec<&str> = WHEELS.iter().map(|(n, _)| *n).collect();
    let dist = w.join("dist");
    let mut args = vec!["release"];
    args.extend(&names);
    args.extend(["--key", key.to_str().unwrap(), "--xla-repo", xla, "--out", dist.to_str().unwrap(), "--json"]);
    let out = xtask(w, &args);
    assert_ok(&out, "release of the pinned CPU wheels");
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    let release_tag = summary["version"].as_str().unwrap().to_owned();
    let build = release_tag.rsplit('.').next().unwrap().to_owned();

    // The standard tools accept it, the signature naming the tag; so does
    // `release verify`, and CycloneDX's validator every SBOM.
    assert_ok(&Command::new("sha256sum").args(["-c", "SHA256SUMS"]).current_dir(&dist).output().unwrap(), "sha256sum -c");
    let out = Command::new("minisign").args(["-V", "-m"]).arg(dist.join("SHA256SUMS")).arg("-p").arg(&public).output().unwrap();
    assert_ok(&out, "minisign -V");
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("Trusted comment: pjrtpkgs {release_tag} SHA256SUMS")));
    let out =
        xtask(w, &["release", "verify", dist.to_str().unwrap(), "--tag", &release_tag, "--public-key", public.to_str().unwrap(), "--json"]);
    assert_ok(&out, "release verify");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], true);
    let listed: Vec<&str> = report["files"].as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap()).collect();
    assert_eq!(listed.len(), 3 * 2 + 2, "3 archives, 3 SBOMs, compat.json, the notes: {listed:?}");
    for sbom in listed.iter().filter(|n| n.ends_with(".cdx.json")) {
        if let Some(result) = release_support::validate_cyclonedx(&dist.join(sbom)) {
            result.unwrap_or_else(|e| panic!("{sbom} is not valid CycloneDX 1.6: {e}"));
        }
    }
    // The feed: each plugin as it reported itself to conform.
    let compat: Value = serde_json::from_slice(&std::fs::read(dist.join("compat.json")).unwrap()).unwrap();
    assert_eq!(compat["release"]["tag"], release_tag.as_str());
    for (name, api) in WHEELS {
        let entry = compat["archives"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["pjrt"]["api_version"] == api)
            .unwrap_or_else(|| panic!("{name}: {compat:#}"));
        assert_eq!(entry["conform"]["ran"], true, "{name}: {entry:#}");
        assert!(entry["pjrt"]["api_struct_size"].as_u64().unwrap() > 900, "{entry:#}");
        assert!(!entry["pjrt"]["extensions"].as_array().unwrap().is_empty(), "{entry:#}");
        assert!(entry["stablehlo"]["current"].is_string(), "{entry:#}");
        assert!(entry["conform"]["counts"]["PASS"].as_u64().unwrap() > 100, "{entry:#}");
        eprintln!(
            "{name}: PJRT {api}, PJRT_Api {} bytes, StableHLO {}, conform {}",
            entry["pjrt"]["api_struct_size"], entry["stablehlo"], entry["conform"]["counts"]
        );
    }

    // Each archive, extracted with tar, holds a plugin that loads and
    // computes on this machine, reports the version in the archive's name
    // and passes the portability check as it is.
    for (name, api) in WHEELS {
        let top = format!("pjrt-cpu-linux-x86_64-v{api}.{build}");
        let archive = dist.join(format!("{top}.tar.gz"));
        assert!(archive.is_file(), "{} missing: {:?}", archive.display(), std::fs::read_dir(&dist).unwrap().collect::<Vec<_>>());
        let x = w.join(format!("x-{name}"));
        std::fs::create_dir_all(&x).unwrap();
        assert_ok(&Command::new("tar").arg("-xzf").arg(&archive).arg("-C").arg(&x).output().unwrap(), "tar -xzf");
        let plugin = x.join(&top).join("lib/pjrt_c_api_cpu_plugin.so");
        let out = xtask(w, &["smoke", plugin.to_str().unwrap(), "--json"]);
        let report: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("smoke printed no JSON ({e}): {}", String::from_utf8_lossy(&out.stderr)));
        assert_eq!(out.status.code(), Some(0), "smoke of the released {name} failed: {report:#}");
        assert_eq!(report["api_version"].as_str(), Some(api));
        assert_eq!(report["result"], report["expected"]);
        assert_ok(&xtask(w, &["release", "check", plugin.to_str().unwrap()]), "release check of the extracted plugin");

        let info: Value = serde_json::from_slice(&std::fs::read(x.join(&top).join("share/pjrt/version_info.json")).unwrap()).unwrap();
        assert_eq!(info["package"], name);
        assert_eq!(info["origin"], "prebuilt");
        assert_eq!(info["pjrt_api_version"], api);
        assert_eq!(info["release"]["tag"], release_tag.as_str());
        assert!(x.join(&top).join("include/xla/pjrt/c/pjrt_c_api.h").is_file());
        eprintln!("{name}: {top}.tar.gz, headers {}, smoke ok", info["headers"]);
    }
    // xla-cpu-pjrt ships the header it was built with: that one is archived.
    let info: Value = serde_json::from_slice(
        &std::fs::read(w.join(format!("x-xla-cpu-pjrt/pjrt-cpu-linux-x86_64-v0.81.{build}/share/pjrt/version_info.json"))).unwrap(),
    )
    .unwrap();
    assert_eq!(info["headers"]["source"], "plugin");

    // Another run, the inputs in the other order: the same bytes, every file
    // but the signature (minisign signs with a fresh nonce).
    let again = w.join("dist-again");
    let mut args = vec!["release"];
    args.extend(names.iter().rev());
    args.extend(["--key", key.to_str().unwrap(), "--xla-repo", xla, "--out", again.to_str().unwrap()]);
    assert_ok(&xtask(w, &args), "second release");
    let files = |d: &Path| {
        let mut v: Vec<String> = std::fs::read_dir(d).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        v.sort();
        v
    };
    assert_eq!(files(&dist), files(&again));
    for file in files(&dist).iter().filter(|f| !f.ends_with(".minisig")) {
        assert!(std::fs::read(dist.join(file)).unwrap() == std::fs::read(again.join(file)).unwrap(), "{file} differs between runs");
    }
}
