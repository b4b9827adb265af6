//! `cargo xtask pins check` / `pins show`: validate or print pins.toml.
//! The model and its rules are [`crate::pinfile`]'s.

use std::process::ExitCode;

use anyhow::{Context, Result};

use crate::pinfile::{check, Pins};

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Validate pins.toml: syntax, formats, cross-field rules and staleness.
    #[command(
        long_about = "Validate pins.toml: syntax and types (unknown keys are errors), formats (40-hex commits, SRI and hex sha256, versions, RFC 3339 dates, Nix systems, sm_XX/compute_XX, gfx targets), cross-field rules (Bazel major versions, prebuilt wheel names against version and system) and staleness ([bazel_deps] hashes that are the placeholder or were computed for another XLA commit).\n\nEvery finding names the key and its line:column.",
        after_help = "Exit status: 0 valid, 1 invalid (or unreadable), 3 valid but some pins are stale.\n\nExamples:\n  cargo xtask pins check\n  PJRTPKGS_ROOT=/tmp/scratch cargo xtask pins check"
    )]
    Check,
    /// Print pins.toml's values, resolved and validated.
    #[command(
        long_about = "Print the pinned values: a readable summary, or with --json the whole typed model (the same shape as pins.toml) plus the list of findings of `pins check`.",
        after_help = "Exit status: the same as `pins check` (0 valid, 1 invalid, 3 valid but some pins are stale).\n\nExamples:\n  cargo xtask pins show\n  cargo xtask pins show --json | jq -r .pins.xla.commit"
    )]
    Show {
        /// Machine-readable output: {"pins": ..., "findings": [...]}.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(cmd: Command) -> Result<ExitCode> {
    let path = crate::project::pins_toml()?;
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let report = check(&text, &path.display().to_string());
    match cmd {
        Command::Check => {
            for finding in &report.findings {
                eprintln!("{finding}");
            }
            let (errors, stale) = report.counts();
            if errors > 0 {
                eprintln!("{}: invalid ({errors} error(s), {stale} stale pin(s))", path.display());
            } else if stale > 0 {
                eprintln!("{}: valid, but {stale} stale pin(s): run `cargo xtask deps-hash refresh` to recompute them", path.display());
            } else {
                eprintln!("{}: valid", path.display());
            }
            Ok(ExitCode::from(report.exit_code()))
        }
        Command::Show { json } => {
            if json {
                let value = serde_json::json!({ "pins": report.pins, "findings": report.findings });
                crate::output::emit_line(&serde_json::to_string_pretty(&value)?)?;
            } else {
                let Some(pins) = &report.pins else {
                    anyhow::bail!("{}", report.errors_text());
                };
                crate::output::emit(&summary(pins))?;
                for finding in &report.findings {
                    eprintln!("{finding}");
                }
            }
            Ok(ExitCode::from(report.exit_code()))
        }
    }
}

/// The human-readable `pins show`.
fn summary(pins: &Pins) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let x = &pins.xla;
    let _ = writeln!(out, "xla        {} @ {}", x.repository, x.commit);
    let _ = writeln!(out, "           {} ({}), PJRT API {}, Bazel {}", x.date, x.hash, x.pjrt_api_version, x.bazel_version);
    let b = &pins.toolchains.bazel;
    let _ = writeln!(out, "bazel      {} (nixpkgs {})", b.version, b.nixpkgs_attribute);
    for (name, cuda) in [("cuda12", &pins.cuda12), ("cuda13", &pins.cuda13)] {
        if let Some(c) = cuda {
            let _ = writeln!(
                out,
                "{name:<10} CUDA {} cuDNN {} NCCL {} NVSHMEM {} (nixpkgs {}), {}",
                c.cuda_version,
                c.cudnn_version,
                c.nccl_version,
                c.nvshmem_version,
                c.nixpkgs_attribute,
                c.compute_capabilities.join(" ")
            );
            if !c.overrides.is_empty() {
                let _ =
                    writeln!(out, "           given differently than XLA: {}", c.overrides.keys().cloned().collect::<Vec<_>>().join(" "));
            }
        }
    }
    if let Some(r) = &pins.rules_ml_toolchain {
        let _ = writeln!(out, "rules_ml_toolchain {} (NVSHMEM: {})", r.commit, r.nvshmem_libraries.join(" "));
    }
    if let Some(r) = &pins.rocm7 {
        let _ = writeln!(out, "rocm7      {} (nixpkgs {}), {}", r.distro_version, r.nixpkgs_attribute, r.gpu_targets.join(" "));
    }
    for (name, p) in &pins.prebuilt {
        let systems: Vec<&str> = p.platforms.keys().map(String::as_str).collect();
        let _ = writeln!(out, "prebuilt   {name} {} ({}), PJRT API {}, {}", p.version, p.backend, p.pjrt_api_version, systems.join(" "));
    }
    if let Some(r) = &pins.release {
        let next = format!("v{}.{}", x.pjrt_api_version, r.build);
        let key = r.minisign_public_key.as_deref().unwrap_or("no signing key yet");
        let _ = writeln!(out, "release    next {next}, glibc floor {}, {key}", r.glibc_floor);
    }
    for (backend, systems) in &pins.bazel_deps {
        for (system, deps) in systems {
            let state = if deps.is_stale(&pins.xla.commit) { "STALE" } else { "ok" };
            let _ = writeln!(out, "bazel_deps {backend}.{system} {} [{state}]", deps.hash);
        }
    }
    out
}
