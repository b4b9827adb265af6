//! What the new XLA commit's versions mean for pins.toml's toolchain
//! sections, value by value.
//!
//! Policy (docs/upgrade-xla.md): `upgrade-xla` writes `[xla]` and, within
//! the same Bazel major, `[toolchains.bazel] version`. Everything that is
//! provided by a nixpkgs attribute — the Bazel major (`bazel_7` / `bazel_8`),
//! the CUDA package set (`cudaPackages_12_9`), and the versions of cuDNN,
//! NCCL and NVSHMEM, the compute capabilities and the ROCm distribution those
//! sets deliver — is only reported: changing the recorded value without
//! changing (and checking) the provider would make pins.toml lie.

use super::versions::{CudaConfig, XlaVersions, CUDA_SECTIONS, RECORDED_CUDA_SETTINGS};
use crate::pinfile::{version_major as major, version_major_minor as major_minor, CudaPin, Pins};

/// How loud a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// upgrade-xla wrote the new value.
    Updated,
    /// Worth a look; nothing to change necessarily.
    Note,
    /// A human decision: a nixpkgs attribute (or the Nix code) must change.
    Action,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub level: Level,
    /// `[section] key` of pins.toml.
    pub pin: String,
    pub pinned: String,
    pub xla: String,
    pub message: String,
    /// For an action: the Nix inputs (flake input, nix/ files) and pins that
    /// must change with it; the tests comparing the Nix layer with XLA's
    /// rules (`cargo test -p xtask --test nix_xla_rules`) fail until they do.
    pub nix: Option<String>,
}

/// The toolchain decision upgrade-xla takes itself: the new
/// `[toolchains.bazel] version`, if it is to be written.
#[derive(Debug, Clone, Default)]
pub struct Review {
    pub findings: Vec<Finding>,
    pub bazel_toolchain_version: Option<String>,
}

impl Review {
    /// The unaccepted Bazel major change, which stops the upgrade.
    pub fn bazel_major_change(&self) -> Option<&Finding> {
        self.findings.iter().find(|f| f.level == Level::Action && f.pin == BAZEL_ATTRIBUTE)
    }

    pub fn actions(&self) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(|f| f.level == Level::Action)
    }
}

/// The pinned `[cudaNN]` section named `section` (one of `CUDA_SECTIONS`).
fn cuda_pin<'a>(pins: &'a Pins, section: &str) -> Option<&'a CudaPin> {
    match section {
        "cuda12" => pins.cuda12.as_ref(),
        "cuda13" => pins.cuda13.as_ref(),
        _ => None,
    }
}

const BAZEL_ATTRIBUTE: &str = "[toolchains.bazel] nixpkgs_attribute";

/// Compares `new` with `pins`. `accept_bazel_major`: the maintainer chose to
/// move to the new Bazel major (`--accept-bazel-major`).
pub fn review(pins: &Pins, new: &XlaVersions, accept_bazel_major: bool) -> Review {
    let mut r = Review::default();
    let mut push = |level, pin: String, pinned: &str, xla: &str, message: String| {
        let nix = (level == Level::Action).then(|| nix_inputs(&pin, pins)).flatten();
        r.findings.push(Finding { level, pin, pinned: pinned.to_string(), xla: xla.to_string(), message, nix });
    };

    // Bazel.
    if let Some(xla_bazel) = &new.bazel {
        let tool = &pins.toolchains.bazel.version;
        let attr = &pins.toolchains.bazel.nixpkgs_attribute;
        if major(xla_bazel) != major(tool) && accept_bazel_major {
            push(
                Level::Updated,
                BAZEL_ATTRIBUTE.into(),
                &format!("{attr} ({tool})"),
                &format!("bazel_{} ({xla_bazel})", major(xla_bazel)),
                format!(
                    "Bazel major version {} -> {}, accepted with --accept-bazel-major: check that nixpkgs' `bazel_{}` provides {xla_bazel} \
                     and that the Nix build support handles Bazel {}",
                    major(tool),
                    major(xla_bazel),
                    major(xla_bazel),
                    major(xla_bazel)
                ),
            );
            r.bazel_toolchain_version = Some(xla_bazel.clone());
        } else if major(xla_bazel) != major(tool) {
            push(
                Level::Action,
                BAZEL_ATTRIBUTE.into(),
                &format!("{attr} ({tool})"),
                xla_bazel,
                format!(
                    "Bazel major version {} -> {}: the build needs nixpkgs' `bazel_{}` instead of `{attr}` (and its build support)",
                    major(tool),
                    major(xla_bazel),
                    major(xla_bazel)
                ),
            );
        } else if xla_bazel != tool {
            push(
                Level::Updated,
                "[toolchains.bazel] version".into(),
                tool,
                xla_bazel,
                format!("same Bazel major; `{attr}` must provide {xla_bazel} (check nixpkgs' version of it)"),
            );
        }
        if major(xla_bazel) == major(tool) && xla_bazel != tool {
            r.bazel_toolchain_version = Some(xla_bazel.clone());
        }
    } else {
        push(Level::Note, "[xla] bazel_version".into(), "", "(none)", "the commit has no .bazelversion; the pinned value is kept".into());
    }

    // CUDA flavours.
    for section in CUDA_SECTIONS {
        let Some(pinned) = cuda_pin(pins, section) else {
            continue;
        };
        let Some(Some(cfg)) = new.cuda.get(*section) else {
            push(
                Level::Action,
                format!("[{section}]"),
                "",
                "(no config)",
                format!("XLA defines no `pjrt_{section}` bazelrc config at this commit: check how it builds the {section} plugin now"),
            );
            continue;
        };
        cuda_findings(&mut push, pinned, section, cfg);
    }

    // rules_ml_toolchain: its NVSHMEM template says what the CUDA builds install.
    if let (Some(pinned), Some(new_commit)) = (&pins.rules_ml_toolchain, &new.rules_ml_toolchain) {
        if &pinned.commit != new_commit {
            push(
                Level::Action,
                "[rules_ml_toolchain] commit".into(),
                &pinned.commit,
                new_commit,
                format!(
                    "XLA now builds with rules_ml_toolchain {new_commit}: check which shared libraries its gpu/nvshmem/nvidia_nvshmem.BUILD.tpl \
                     imports there (pinned: {}), then edit [rules_ml_toolchain]",
                    pinned.nvshmem_libraries.join(", ")
                ),
            );
        }
    }

    // ROCm.
    if let Some(rocm) = &pins.rocm7 {
        let pinned = &rocm.distro_version;
        match &new.rocm_distro {
            None => push(
                Level::Action,
                "[rocm7] distro_version".into(),
                pinned,
                "(none)",
                "XLA sets no ROCM_DISTRO_VERSION in any bazelrc config at this commit: check how it builds ROCm now".into(),
            ),
            Some((distro, config)) if distro != pinned => {
                let attr = &rocm.nixpkgs_attribute;
                push(
                    Level::Action,
                    "[rocm7] distro_version".into(),
                    pinned,
                    distro,
                    format!(
                        "XLA's `{config}` config now uses {distro}: check that `{attr}` provides that ROCm release{}, then edit pins.toml",
                        if rocm_major(distro) != rocm_major(pinned) {
                            " (a new ROCm MAJOR: a new [rocmN] section and package set)"
                        } else {
                            ""
                        }
                    ),
                );
            }
            Some(_) => {}
        }
    }
    r
}

/// Which Nix inputs and pins a change of `pin` (a finding's key) touches.
fn nix_inputs(pin: &str, pins: &Pins) -> Option<String> {
    let (section, key) = match pin.split_once("] ") {
        Some((s, k)) => (s.trim_start_matches('['), k),
        None => (pin.trim_start_matches('[').trim_end_matches(']'), ""),
    };
    let attr = |s: &str| cuda_pin(pins, s).map(|c| c.nixpkgs_attribute.clone()).unwrap_or_else(|| "cudaPackages_*".into());
    let text = match (section, key) {
        ("toolchains.bazel", _) => "the flake's nixpkgs input (flake.nix, flake.lock) must provide that Bazel major; pins.toml [toolchains.bazel] \
            nixpkgs_attribute and version; nix/source-plugin.nix (the buildBazelPackage of that major); every [bazel_deps] hash"
            .to_string(),
        (s, "cuda_version") => format!(
            "pins.toml [{s}] cuda_version (XLA's value, for the record) and nixpkgs_attribute: the CUDA package set nix/packages.nix \
             gives the build (LOCAL_CUDA_PATH, nix/cuda-local.nix) and whose release label nix/lib.nix tells XLA; the flake's nixpkgs \
             input if it lacks that set; the [bazel_deps.{s}.*] hashes"
        ),
        (s, "cudnn_version") => format!(
            "pins.toml [{s}] cudnn_version; nixpkgs' `{}.cudnn` (LOCAL_CUDNN_PATH, nix/cuda-local.nix) is what the build gets",
            attr(s)
        ),
        (s, "nccl_version") => format!(
            "pins.toml [{s}] nccl_version (nix/lib.nix passes it as HERMETIC_NCCL_VERSION); nixpkgs' `{}.nccl` (LOCAL_NCCL_PATH) is \
             the NCCL the build gets",
            attr(s)
        ),
        (s, "nvshmem_version") => format!(
            "pins.toml [{s}] nvshmem_version (nix/lib.nix passes it as HERMETIC_NVSHMEM_VERSION: the source build's Bazel fetch \
             downloads it, so the [bazel_deps.{s}.*] hashes change) and [{s}.nvshmem_wheel.*] (NVIDIA's nvidia-nvshmem-cu{} wheel of \
             that version for the prebuilt plugins, nix/prebuilt-plugin.nix; url and sha256 from https://pypi.org/pypi/nvidia-nvshmem-cu{}/json)",
            &s[4..],
            &s[4..]
        ),
        (s, "compute_capabilities") => format!(
            "pins.toml [{s}] compute_capabilities (nix/lib.nix passes them as HERMETIC_CUDA_COMPUTE_CAPABILITIES and to configure.py)"
        ),
        (s, k) if k.starts_with("HERMETIC_") => format!(
            "nix/lib.nix bazelConfig passes no {k}: add a pins.toml [{s}] field recording XLA's value and the --repo_env flag that \
             passes it, or list {k} under [{s}.overrides] with the reason"
        ),
        (s, "") if s.starts_with("cuda") => {
            format!("nix/lib.nix bazelConfig (the flags of the {s} build) and pins.toml [{s}], after reading how XLA builds it now")
        }
        ("rules_ml_toolchain", _) => "pins.toml [rules_ml_toolchain] commit and nvshmem_libraries (read from \
            gpu/nvshmem/nvidia_nvshmem.BUILD.tpl at the new commit): nix/source-plugin.nix installs exactly those NVSHMEM libraries \
            and fails while the generated BUILD imports others; nix/prebuilt-plugin.nix takes the same ones from NVIDIA's wheel"
            .to_string(),
        ("rocm7", _) => "pins.toml [rocm7] nixpkgs_attribute (the flake's nixpkgs ROCm set) and distro_version; nix/gpu-libraries.nix \
            when XLA's rocm_configure.bzl / find_rocm_config.py require other libraries"
            .to_string(),
        _ => return None,
    };
    Some(text)
}

fn rocm_major(distro: &str) -> String {
    // rocm_7.10.0_gfx90X -> 7
    distro.trim_start_matches("rocm_").split(['.', '_']).next().unwrap_or("").to_string()
}

fn cuda_findings(push: &mut impl FnMut(Level, String, &str, &str, String), pinned: &CudaPin, section: &str, cfg: &CudaConfig) {
    let attr = &pinned.nixpkgs_attribute;
    if let Some(new) = &cfg.cuda_version {
        let old = &pinned.cuda_version;
        if major_minor(new) != major_minor(old) {
            let wanted = format!("cudaPackages_{}", major_minor(new).replace('.', "_"));
            push(
                Level::Action,
                format!("[{section}] cuda_version"),
                old,
                new,
                format!(
                    "CUDA {} -> {}: the build needs nixpkgs' `{wanted}` instead of `{attr}`; edit [{section}] by hand",
                    major_minor(old),
                    major_minor(new)
                ),
            );
        } else if new != old {
            push(
                Level::Action,
                format!("[{section}] cuda_version"),
                old,
                new,
                format!("CUDA patch release: check that `{attr}` provides {new}, then edit [{section}] cuda_version"),
            );
        }
    }
    for (key, new, old) in [
        ("cudnn_version", &cfg.cudnn_version, &pinned.cudnn_version),
        ("nccl_version", &cfg.nccl_version, &pinned.nccl_version),
        ("nvshmem_version", &cfg.nvshmem_version, &pinned.nvshmem_version),
    ] {
        if let Some(new) = new {
            if new != old {
                let lib = key.trim_end_matches("_version");
                let message = if key == "nvshmem_version" {
                    format!("XLA's pjrt_{section} now wants NVSHMEM {new} (XLA's own download, not nixpkgs'): edit [{section}] {key} and its nvshmem_wheel pins")
                } else {
                    format!("XLA's pjrt_{section} now wants {lib} {new}: check `{attr}.{lib}` provides it, then edit [{section}] {key}")
                };
                push(Level::Action, format!("[{section}] {key}"), old, new, message);
            }
        }
    }
    if let Some(new) = &cfg.compute_capabilities {
        let old = &pinned.compute_capabilities;
        if new != old {
            push(
                Level::Action,
                format!("[{section}] compute_capabilities"),
                &old.join(","),
                &new.join(","),
                format!("XLA's pjrt_{section} targets changed; the source build passes pins.toml's list to Bazel until you edit it"),
            );
        }
    }
    // A setting pins.toml has no field for (and the build does not override).
    for (setting, value) in &cfg.hermetic {
        let recorded = RECORDED_CUDA_SETTINGS.iter().any(|(s, _)| s == setting);
        if !recorded && !pinned.overrides.contains_key(setting) {
            push(
                Level::Action,
                format!("[{section}] {setting}"),
                "",
                value,
                format!("XLA's pjrt_{section} sets {setting}={value}, which neither pins.toml records nor the Nix build passes"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::versions::ApiVersion;
    use super::*;

    fn pins() -> Pins {
        let text = r#"
schema_version = 1

[xla]
repository = "https://github.com/openxla/xla"
commit = "964a0a45a0c3090cd484a3c51e8f9d05ed10b968"
hash = "sha256-K0lveAY1nXeFA9FIV3nXhEJ0r589CNaVp/M5heUo1BY="
date = "2026-02-20T22:36:47-08:00"
pjrt_api_version = "0.93"
bazel_version = "7.4.1"

[toolchains.bazel]
version = "7.4.1"
nixpkgs_attribute = "bazel_7"

[cuda12]
cuda_version = "12.9.1"
cudnn_version = "9.8.0"
nccl_version = "2.27.7"
nvshmem_version = "3.2.5"
nixpkgs_attribute = "cudaPackages_12_9"
compute_capabilities = ["sm_50", "compute_120"]

[rocm7]
distro_version = "rocm_7.10.0_gfx90X"
nixpkgs_attribute = "rocmPackages"
gpu_targets = ["gfx90a"]

[rules_ml_toolchain]
commit = "de6fc6c38ea0368a198daa3f8c7cb829cc8db185"
nvshmem_libraries = ["libnvshmem_host", "nvshmem_bootstrap_uid", "nvshmem_transport_ibrc"]
"#;
        Pins::parse(text, "review test pins").unwrap()
    }

    fn versions(bazel: &str, cuda: &str, rocm: &str) -> XlaVersions {
        XlaVersions {
            pjrt_api: ApiVersion { major: 0, minor: 1 },
            bazel: Some(bazel.into()),
            cuda: [(
                "cuda12".to_string(),
                Some(CudaConfig {
                    cuda_version: Some(cuda.into()),
                    cudnn_version: Some("9.8.0".into()),
                    nccl_version: Some("2.27.7".into()),
                    nvshmem_version: Some("3.2.5".into()),
                    compute_capabilities: Some(vec!["sm_50".into(), "compute_120".into()]),
                    hermetic: [("HERMETIC_CUDA_VERSION".to_string(), cuda.to_string())].into(),
                }),
            )]
            .into(),
            rocm_distro: Some((rocm.into(), "rocm_ci_hermetic".into())),
            rules_ml_toolchain: None,
        }
    }

    #[test]
    fn same_major_bazel_is_updated_and_nixpkgs_selectors_are_actions() {
        let r = review(&pins(), &versions("7.7.0", "12.9.1", "rocm_7.10.0_gfx90X"), false);
        assert_eq!(r.bazel_toolchain_version.as_deref(), Some("7.7.0"));
        assert_eq!(r.actions().count(), 0, "{:?}", r.findings);

        let r = review(&pins(), &versions("8.0.0", "13.1.0", "rocm_8.0.0_gfx90X"), false);
        assert!(r.bazel_major_change().is_some());
        assert_eq!(r.bazel_toolchain_version, None);
        let msgs: Vec<_> = r.actions().map(|f| f.message.clone()).collect();
        assert!(msgs.iter().any(|m| m.contains("`bazel_8` instead of `bazel_7`")), "{msgs:?}");
        assert!(msgs.iter().any(|m| m.contains("`cudaPackages_13_1` instead of `cudaPackages_12_9`")), "{msgs:?}");
        assert!(msgs.iter().any(|m| m.contains("new ROCm MAJOR")), "{msgs:?}");
        let accepted = review(&pins(), &versions("8.0.0", "12.9.1", "rocm_7.10.0_gfx90X"), true);
        assert!(accepted.bazel_major_change().is_none());
        assert_eq!(accepted.bazel_toolchain_version.as_deref(), Some("8.0.0"));
    }

    /// What XLA's pjrt_cudaNN sets and pins.toml does not record, a new
    /// NVSHMEM and a moved rules_ml_toolchain each name the Nix inputs and
    /// pins to change.
    #[test]
    fn actions_name_the_nix_inputs_to_change() {
        let mut v = versions("7.7.0", "12.9.1", "rocm_7.10.0_gfx90X");
        let cfg = v.cuda.get_mut("cuda12").unwrap().as_mut().unwrap();
        cfg.nvshmem_version = Some("3.4.5".into());
        cfg.hermetic.insert("HERMETIC_CUDA_UMD_VERSION".into(), "13.0.1".into());
        v.rules_ml_toolchain = Some("0123456789abcdef0123456789abcdef01234567".into());
        let r = review(&pins(), &v, false);
        let nix =
            |pin: &str| r.actions().find(|f| f.pin == pin).and_then(|f| f.nix.clone()).unwrap_or_else(|| panic!("{pin}: {:?}", r.findings));
        assert!(nix("[cuda12] nvshmem_version").contains("[cuda12.nvshmem_wheel.*]"));
        assert!(nix("[cuda12] nvshmem_version").contains("HERMETIC_NVSHMEM_VERSION"));
        let umd = nix("[cuda12] HERMETIC_CUDA_UMD_VERSION");
        assert!(umd.contains("nix/lib.nix") && umd.contains("[cuda12.overrides]"), "{umd}");
        assert!(nix("[rules_ml_toolchain] commit").contains("nvshmem_libraries"));
        // A setting listed as a deliberate override is no action.
        let mut p = pins();
        p.cuda12.as_mut().unwrap().overrides.insert("HERMETIC_CUDA_UMD_VERSION".into(), "the host's driver".into());
        assert!(review(&p, &v, false).actions().all(|f| f.pin != "[cuda12] HERMETIC_CUDA_UMD_VERSION"));
    }
}
