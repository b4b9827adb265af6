//! `cargo xtask diff-headers OLD NEW`: the semantic API/ABI diff of the
//! PJRT C API between two XLA commits or source trees, printed. The diff
//! engine is [`crate::header_diff`]'s.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Result};

use crate::header_diff::{diff_commits_with, diff_dirs_with, ApiModel, Options, Verdict, EXIT_BREAKING};
use crate::xla_repo::{self, XlaRepoArg};

#[derive(Debug, clap::Args)]
#[command(
    about = "Semantic API/ABI diff of the PJRT C API between two XLA commits",
    long_about = "Semantic API/ABI diff of the PJRT C API between two XLA commits, or two directories holding XLA source trees.\n\n\
Parses xla/pjrt/c/pjrt_c_api.h and every public extension header (discovered at each commit) with libclang, \
for x86_64-linux, and compares the two models: version macros, structs with every field's type, offset and size, \
the PJRT_Api member list, function-pointer typedefs, enums and their values, typedefs and *_STRUCT_SIZE declarations. \
Each change is classified by PJRT's rules: appending is compatible (MINOR bump), removing, retyping, reordering or \
inserting before the end is breaking (MAJOR bump). A rename (a field or PJRT_Api member at the same offset with the same type, \
an enumerator with the same value) is reported as `renamed`: breaking for source, ABI-compatible. \
Warns when the version macros do not match what changed.\n\n\
Also compares the protobuf schemas PJRT consumers serialize (xla/pjrt/proto/compile_options.proto, xla/xla.proto, \
xla/xla_data.proto, xla/service/hlo.proto and what they import), compiled by protoc: messages, fields (number, name, \
type, label, presence, oneof), enums and values; each change says whether it breaks generated source and whether \
it breaks serialized data (wire). --no-protos skips it.\n\n\
Headers and protos are read straight from git objects, so partial clones work.",
    after_help = "Exit status: 0 unchanged or compatible, 2 breaking (the C API or a protobuf schema), 1 error.\n\n\
Examples:\n  cargo xtask diff-headers HEAD~1 HEAD --xla-repo ~/src/xla\n  \
XLA_REPO=~/src/xla.git cargo xtask diff-headers 70fe662~ 70fe662 --format markdown >> CHANGELOG.md\n  \
cargo xtask diff-headers old-xla/ new-xla/ --format json | jq .verdict"
)]
pub struct Args {
    /// The older side: a commit, tag or branch of the XLA repository, or a
    /// directory holding an XLA source tree.
    pub old: String,
    /// The newer side, like OLD.
    pub new: String,
    #[command(flatten)]
    pub xla_repo: XlaRepoArg,
    /// Report format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    /// Compare the C API headers only, not the protobuf schemas.
    #[arg(long)]
    pub no_protos: bool,
    /// Print both models (everything libclang found) as JSON instead of
    /// the diff: for debugging this tool.
    #[arg(long, hide = true)]
    pub dump_models: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A readable report, grouped by header.
    Text,
    /// Markdown for a CHANGELOG or a pull request.
    Markdown,
    /// JSON, schema documented in docs/diff-headers.md.
    Json,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let options = Options { protos: !args.no_protos };
    let report = match (as_dir(&args.old)?, as_dir(&args.new)?) {
        (Some(old), Some(new)) => diff_dirs_with(&old, &new, options)?,
        (Some(_), None) | (None, Some(_)) => {
            bail!("one of OLD and NEW is a directory holding an XLA tree and the other is not; give two commits or two directories")
        }
        (None, None) => {
            let repo = xla_repo::open_for(&args.xla_repo, &[&args.old, &args.new])?;
            let old = xla_repo::resolve_commit(&repo, &args.old)?;
            let new = xla_repo::resolve_commit(&repo, &args.new)?;
            let mut report = diff_commits_with(&repo, old, new, options)?;
            report.old.label = args.old.clone();
            report.new.label = args.new.clone();
            report
        }
    };
    if args.dump_models {
        let dump =
            |m: &ApiModel| serde_json::json!({"headers": m.headers, "decls": m.decls.values().collect::<Vec<_>>(), "notes": m.notes});
        crate::output::emit_line(&serde_json::to_string_pretty(
            &serde_json::json!({"old": dump(&report.old.model), "new": dump(&report.new.model)}),
        )?)?;
        return Ok(ExitCode::SUCCESS);
    }
    match args.format {
        Format::Text => crate::output::emit(&report.to_text())?,
        Format::Markdown => crate::output::emit(&report.to_markdown())?,
        Format::Json => crate::output::emit_line(&serde_json::to_string_pretty(&report.to_json())?)?,
    }
    Ok(match report.overall_verdict() {
        Verdict::Breaking => ExitCode::from(EXIT_BREAKING),
        Verdict::Unchanged | Verdict::Compatible => ExitCode::SUCCESS,
    })
}

/// `side` as a directory holding an XLA tree; None when it names no
/// directory (then it is a revision). A directory that holds no XLA tree is
/// an error saying so, not an "unknown revision".
fn as_dir(side: &str) -> Result<Option<PathBuf>> {
    let path = PathBuf::from(side);
    if !path.is_dir() {
        return Ok(None);
    }
    if path.join("xla").is_dir() {
        return Ok(Some(path));
    }
    bail!(
        "`{side}` is a directory, but not an XLA source tree: there is no xla/ in it (the core header is xla/pjrt/c/pjrt_c_api.h). \
         Give the root of an XLA checkout, or a commit (a revision named like this directory: write `{side}^{{commit}}`)"
    )
}
