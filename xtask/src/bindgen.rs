//! `cargo xtask bindgen [--check]`: regenerate (or check) the Rust bindings
//! of `crates/pjrt-sys`; the generation is [`crate::bindings`]'s.

use std::process::ExitCode;

use anyhow::Result;

use crate::bindings::{generate, generator_name, pinned_xla_commit, BINDINGS_PATH};
use crate::xla_repo::{open_for, resolve_commit, XlaRepoArg};

/// Exit status of `--check` when the checked-in bindings are stale.
pub const EXIT_STALE: u8 = 2;

#[derive(Debug, clap::Args)]
#[command(
    about = "Regenerate crates/pjrt-sys bindings for the pinned XLA commit",
    long_about = "Regenerate crates/pjrt-sys/src/bindings.rs from the public PJRT C API headers \
(pjrt_c_api.h and every public extension header) of the XLA commit pinned in pins.toml, with \
the bindgen library pinned in Cargo.lock. Output is deterministic: anonymous enums are named \
after their first constant, so an upstream insertion does not renumber the file.\n\n\
With --check, nothing is written: the command fails with exit status 2 when the checked-in \
bindings differ from what would be generated.",
    after_help = "Examples:\n  cargo xtask bindgen --xla-repo ~/src/xla\n  XLA_REPO=~/src/xla cargo xtask bindgen --check\n\n\
Exit status: 0 up to date / written, 2 stale (--check), 1 error."
)]
pub struct Args {
    /// Do not write: fail (exit 2) if the checked-in bindings are stale.
    #[arg(long)]
    pub check: bool,
    #[command(flatten)]
    pub xla_repo: XlaRepoArg,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let root = crate::project::root()?;
    let commit = pinned_xla_commit(&crate::project::pins_toml()?)?;
    let repo = open_for(&args.xla_repo, &[&commit])?;
    let oid = resolve_commit(&repo, &commit)?;
    let spinner = indicatif::ProgressBar::new_spinner().with_message(format!("generating bindings for XLA {commit:.12}"));
    spinner.enable_steady_tick(std::time::Duration::from_millis(120));
    let generated = generate(&repo, oid, &generator_name(&root)?);
    spinner.finish_and_clear();
    let generated = generated?;
    let target = root.join(BINDINGS_PATH);
    let current = std::fs::read_to_string(&target).unwrap_or_default();
    let up_to_date = current == generated.source;
    let api_version = generated.api_version;
    if args.check {
        if up_to_date {
            eprintln!("{BINDINGS_PATH} is up to date (XLA {commit:.12}, PJRT API {api_version})");
            return Ok(ExitCode::SUCCESS);
        }
        eprintln!(
            "{BINDINGS_PATH} is stale for XLA {commit:.12} (PJRT API {api_version}){}: run `cargo xtask bindgen` and commit the result",
            first_difference(&current, &generated.source).map(|l| format!(", first difference at line {l}")).unwrap_or_default()
        );
        return Ok(ExitCode::from(EXIT_STALE));
    }
    if up_to_date {
        eprintln!("{BINDINGS_PATH} already up to date (XLA {commit:.12}, PJRT API {api_version})");
    } else {
        crate::fsutil::write_atomic(&target, generated.source.as_bytes())?;
        eprintln!(
            "wrote {BINDINGS_PATH}: XLA {commit:.12}, PJRT API {api_version}, {} headers{}",
            generated.headers.len(),
            if generated.stand_ins.is_empty() {
                String::new()
            } else {
                format!(", {} C++-only includes stood in", generated.stand_ins.len())
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn first_difference(a: &str, b: &str) -> Option<usize> {
    let mut lines = a.lines().zip(b.lines()).enumerate();
    lines
        .find(|(_, (x, y))| x != y)
        .map(|(i, _)| i + 1)
        .or_else(|| (a.lines().count() != b.lines().count()).then(|| a.lines().count().min(b.lines().count()) + 1))
}
