//! Running the real `nix`, and turning the command line's targets (flake
//! outputs or store paths) into store paths.
//!
//! Every call enables `nix-command flakes` (Nix 2.4 to today need it) and
//! honours `NIX_CONFIG`, so substituters, sandbox paths and the store can be
//! set from the environment as usual.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

pub struct Nix {
    /// `--store` for every call: the store to build in / copy from.
    pub store: Option<String>,
}

impl Nix {
    pub fn command(&self) -> Result<Command> {
        let mut cmd = crate::tools::Tool::Nix.command()?;
        cmd.args(["--extra-experimental-features", "nix-command flakes"]);
        if let Some(store) = &self.store {
            cmd.args(["--store", store]);
        }
        Ok(cmd)
    }

    /// Runs `nix ARGS`, its progress going to our stderr; returns stdout.
    pub fn output(&self, args: &[&str], what: &str) -> Result<String> {
        let mut cmd = self.command()?;
        cmd.args(args).stdin(Stdio::null()).stderr(Stdio::inherit());
        let out = cmd.output().map_err(|e| not_runnable(e, what))?;
        if !out.status.success() {
            bail!("{what} failed (`nix {}` exited with {}); Nix said why above", args.join(" "), out.status);
        }
        String::from_utf8(out.stdout).with_context(|| format!("{what}: `nix` printed something that is not UTF-8"))
    }

    /// Runs `nix ARGS` with its output going to our stderr.
    pub fn run(&self, args: &[&str], what: &str) -> Result<()> {
        let mut cmd = self.command()?;
        cmd.args(args).stdin(Stdio::null()).stdout(Stdio::inherit()).stderr(Stdio::inherit());
        let status = cmd.status().map_err(|e| not_runnable(e, what))?;
        if !status.success() {
            bail!("{what} failed (`nix {}` exited with {status}); Nix said why above", args.join(" "));
        }
        Ok(())
    }

    pub fn current_system(&self) -> Result<String> {
        Ok(self.output(&["eval", "--impure", "--raw", "--expr", "builtins.currentSystem"], "finding the current system")?.trim().to_owned())
    }

    /// `(path, narSize)` of every path in the closure of `paths`.
    pub fn closure(&self, paths: &[String]) -> Result<Vec<(String, u64)>> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Info {
            path: String,
            nar_size: Option<u64>,
        }
        let mut args = vec!["path-info", "--json", "--recursive"];
        args.extend(paths.iter().map(String::as_str));
        let text = self.output(&args, "listing the closure")?;
        let infos: Vec<Info> = serde_json::from_str(&text).context("`nix path-info --json` printed something unexpected")?;
        Ok(infos.into_iter().map(|i| (i.path, i.nar_size.unwrap_or(0))).collect())
    }
}

fn not_runnable(e: std::io::Error, what: &str) -> anyhow::Error {
    if e.kind() == std::io::ErrorKind::NotFound {
        anyhow::anyhow!("{what}: `nix` is not on PATH; install Nix (https://nixos.org/download, or `apt install nix-bin`)")
    } else {
        anyhow::anyhow!("{what}: cannot run `nix`: {e}")
    }
}

/// What the user asked to push or check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// An absolute store path, used as is.
    StorePath(String),
    /// A flake installable, `FLAKE#ATTR`.
    Installable(String),
}

/// Store paths are absolute; `X#Y` is an installable as written; a bare name
/// is an output of the project flake (`FLAKE#NAME`, which Nix resolves to
/// `packages.<system>.NAME`).
pub fn parse_targets(args: &[String], flake: &str) -> Vec<Target> {
    args.iter()
        .map(|a| {
            if a.starts_with('/') {
                Target::StorePath(a.trim_end_matches('/').to_owned())
            } else if a.contains('#') {
                Target::Installable(a.clone())
            } else {
                Target::Installable(format!("{flake}#{a}"))
            }
        })
        .collect()
}

/// Every package of the flake for this system, as installables.
pub fn all_packages(nix: &Nix, flake: &str) -> Result<Vec<Target>> {
    let system = nix.current_system()?;
    let attr = format!("{flake}#packages.{system}");
    let text =
        nix.output(&["eval", "--json", &attr, "--apply", "builtins.attrNames"], &format!("listing the packages of {flake} for {system}"))?;
    let names: Vec<String> = serde_json::from_str(&text).context("`nix eval --json` printed something unexpected")?;
    if names.is_empty() {
        bail!("{flake} has no packages for {system}: name the outputs or store paths to use");
    }
    Ok(names.into_iter().map(|n| Target::Installable(format!("{attr}.\"{n}\""))).collect())
}

/// Every output (`out`, `dev`, `doc`...) of an installable, with the store
/// path evaluation gives it; nothing is built.
fn outputs_of(nix: &Nix, installable: &str) -> Result<BTreeMap<String, String>> {
    let text = nix.output(
        &[
            "eval",
            "--json",
            installable,
            "--apply",
            "p: builtins.listToAttrs (map (o: { name = o; value = p.${o}.outPath; }) (p.outputs or [\"out\"]))",
        ],
        &format!("evaluating the outputs of {installable}"),
    )?;
    serde_json::from_str(&text).context("`nix eval --json` printed something unexpected")
}

/// Builds every output of the installables (a binary cache serves `dev` and
/// `doc` outputs too, so not only the default ones `nix build` would pick)
/// and returns the store paths: built outputs, then the store paths given.
pub fn build(nix: &Nix, targets: &[Target]) -> Result<Vec<String>> {
    #[derive(Deserialize)]
    struct Built {
        outputs: BTreeMap<String, String>,
    }
    let mut installables = Vec::new();
    for target in targets {
        if let Target::Installable(i) = target {
            installables.extend(outputs_of(nix, i)?.into_keys().map(|o| format!("{i}.{o}")));
        }
    }
    let mut paths = Vec::new();
    if !installables.is_empty() {
        let mut args = vec!["build", "--no-link", "--json"];
        args.extend(installables.iter().map(String::as_str));
        let text = nix.output(&args, "building the targets")?;
        let built: Vec<Built> = serde_json::from_str(&text).context("`nix build --json` printed something unexpected")?;
        paths.extend(built.into_iter().flat_map(|b| b.outputs.into_values()));
    }
    paths.extend(targets.iter().filter_map(|t| match t {
        Target::StorePath(p) => Some(p.clone()),
        Target::Installable(_) => None,
    }));
    dedup_keep_order(&mut paths);
    Ok(paths)
}

/// The output paths of the installables without building anything, and the
/// store paths given directly.
pub fn evaluate(nix: &Nix, targets: &[Target]) -> Result<Vec<String>> {
    let mut paths = Vec::new();
    for target in targets {
        match target {
            Target::StorePath(p) => paths.push(p.clone()),
            Target::Installable(i) => paths.extend(outputs_of(nix, i)?.into_values()),
        }
    }
    dedup_keep_order(&mut paths);
    Ok(paths)
}

fn dedup_keep_order(paths: &mut Vec<String>) {
    let mut seen = std::collections::HashSet::new();
    paths.retain(|p| seen.insert(p.clone()));
}
