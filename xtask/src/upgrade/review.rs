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

use super::versions::{CudaConfig, XlaVersions, CUDA_SECTIONS};
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
        r.findings.push(Finding { level, pin, pinned: pinned.to_string(), xla: xla.to_string(), message });
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
                push(
                    Level::Action,
                    format!("[{section}] {key}"),
                    old,
                    new,
                    format!("XLA's pjrt_{section} now wants {lib} {new}: check `{attr}.{lib}` provides it, then edit [{section}] {key}"),
                );
            }
        }
    }
    if let Some(new) = &cfg.compute_capabilities {
        let old = &pinned.compute_capabilities;
        if new != old {
            push(
                Level::Note,
                format!("[{section}] compute_capabilities"),
                &old.join(","),
                &new.join(","),
                format!("XLA's pjrt_{section} targets changed; pins.toml keeps its explicit list until you edit it"),
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
                }),
            )]
            .into(),
            rocm_distro: Some((rocm.into(), "rocm_ci_hermetic".into())),
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
}
