//! The semantic API/ABI diff of the PJRT C API between two XLA commits (or
//! two XLA source trees), for `diff-headers`, `upgrade-xla`, `release` and
//! `conform --history`. libclang models
//! every public header at each side; the models are compared and each
//! change classified by PJRT's versioning rules. The protobuf schemas PJRT
//! consumers serialize are compared too ([`proto`]), by protoc's reading.

mod compare;
pub mod model;
mod parse;
pub mod proto;
mod render;
mod source;

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, Result};
use git2::{Oid, Repository};

pub use compare::{Abi, Change, ChangeKind, Compat};
pub use model::ApiModel;
use model::DeclKind;
use source::{Snapshot, TuInput};

/// Exit status when NEW breaks OLD's API or ABI.
pub const EXIT_BREAKING: u8 = 2;

/// The overall weight of a diff.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verdict {
    /// No modelled declaration changed.
    Unchanged,
    /// Only compatible (or neutral) changes: a MINOR bump at most.
    Compatible,
    /// At least one breaking change: needs a MAJOR bump.
    Breaking,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Unchanged => "unchanged",
            Verdict::Compatible => "compatible",
            Verdict::Breaking => "breaking",
        }
    }
}

/// The overall effect of a diff on the ABI (binaries built against OLD).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AbiVerdict {
    /// No change breaks the ABI (a `Breaking` verdict then means
    /// source-breaking only: renames).
    Compatible,
    /// Some breaking change is a macro whose ABI effect is not modelled.
    Undetermined,
    /// At least one change breaks the ABI.
    Breaking,
}

impl AbiVerdict {
    pub fn as_str(self) -> &'static str {
        match self {
            AbiVerdict::Compatible => "compatible",
            AbiVerdict::Undetermined => "undetermined",
            AbiVerdict::Breaking => "breaking",
        }
    }
}

/// One side of a diff.
#[derive(Debug, Clone)]
pub struct Side {
    /// What the user named (a revision or a directory).
    pub label: String,
    /// The commit, when the side is a commit.
    pub commit: Option<String>,
    pub model: ApiModel,
}

/// The result of a diff.
#[derive(Debug, Clone)]
pub struct Report {
    pub old: Side,
    pub new: Side,
    pub changes: Vec<Change>,
    warnings: Vec<String>,
    /// How the models were built (stubbed includes, ignored C++ errors).
    pub notes: Vec<String>,
    /// The protobuf diff; `None` when not asked for (`--no-protos`).
    pub protos: Option<proto::ProtoReport>,
}

impl Report {
    /// The C API verdict and the protobuf verdict together, the weightier
    /// wins: what the exit status says.
    pub fn overall_verdict(&self) -> Verdict {
        self.verdict().max(self.protos.as_ref().map_or(Verdict::Unchanged, |p| p.verdict()))
    }

    pub fn verdict(&self) -> Verdict {
        match self.changes.iter().map(|c| c.compat).max() {
            None => Verdict::Unchanged,
            Some(Compat::Breaking) => Verdict::Breaking,
            Some(_) => Verdict::Compatible,
        }
    }

    /// Whether binaries built against OLD still work with NEW: `Breaking`
    /// if any change breaks the ABI, `Compatible` if every breaking change
    /// keeps it (renames), `Undetermined` if a breaking change's ABI effect
    /// is not clear (a macro's value).
    pub fn abi_verdict(&self) -> AbiVerdict {
        if self.changes.iter().any(|c| c.abi == Some(Abi::Breaking)) {
            AbiVerdict::Breaking
        } else if self.changes.iter().filter(|c| c.compat == Compat::Breaking).all(|c| c.abi == Some(Abi::Compatible)) {
            AbiVerdict::Compatible
        } else {
            AbiVerdict::Undetermined
        }
    }

    /// Version macros that do not match what changed, stale STRUCT_SIZEs.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// `MAJOR.MINOR` of OLD, from `PJRT_API_MAJOR` / `PJRT_API_MINOR`.
    pub fn old_api_version(&self) -> Option<String> {
        self.old.model.api_version()
    }

    pub fn new_api_version(&self) -> Option<String> {
        self.new.model.api_version()
    }

    pub fn to_text(&self) -> String {
        render::text(self)
    }

    /// Markdown for the C API and, when compared, the protobuf schemas.
    pub fn to_markdown(&self) -> String {
        render::markdown(self)
    }

    /// Markdown for the C API headers only (the upgrade report gives the
    /// protobuf diff its own section).
    pub fn headers_markdown(&self) -> String {
        render::headers_markdown(self)
    }

    pub fn to_json(&self) -> serde_json::Value {
        render::json(self)
    }
}

/// What a diff compares besides the C API headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// The protobuf schemas ([`proto::ROOTS`] and what they import).
    pub protos: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options { protos: true }
    }
}

/// Diffs the PJRT headers and protobuf schemas of two commits of `repo`.
pub fn diff_commits(repo: &Repository, old: Oid, new: Oid) -> Result<Report> {
    diff_commits_with(repo, old, new, Options::default())
}

pub fn diff_commits_with(repo: &Repository, old: Oid, new: Oid, options: Options) -> Result<Report> {
    diff_snapshots([Snapshot::commit(repo, old)?, Snapshot::commit(repo, new)?], options)
}

/// Models the PJRT headers of each commit of `repo`, in order; a header
/// shared by several commits is parsed once. For tools that follow the API
/// through history (`conform --history`).
pub fn model_commits(repo: &Repository, commits: &[Oid]) -> Result<Vec<ApiModel>> {
    let snapshots = commits.iter().map(|&commit| Snapshot::commit(repo, commit)).collect::<Result<Vec<_>>>()?;
    models(&snapshots)
}

/// Diffs the PJRT headers and protobuf schemas of two directories holding
/// XLA source trees.
pub fn diff_dirs(old: &Path, new: &Path) -> Result<Report> {
    diff_dirs_with(old, new, Options::default())
}

pub fn diff_dirs_with(old: &Path, new: &Path, options: Options) -> Result<Report> {
    diff_snapshots([Snapshot::dir(old)?, Snapshot::dir(new)?], options)
}

fn diff_snapshots(snapshots: [Snapshot; 2], options: Options) -> Result<Report> {
    let [old, new] = &snapshots;
    // protoc runs while libclang parses.
    let protos = if options.protos { Some(proto::start(old, new)?) } else { None };
    let [old_model, new_model]: [ApiModel; 2] = models(&snapshots)?.try_into().expect("two snapshots, two models");
    let protos = protos.map(proto::Pending::finish).transpose()?;
    let mut report = report(side(old, old_model), side(new, new_model));
    report.protos = protos;
    Ok(report)
}

/// A side of the report: a commit is labelled by its id, a directory by its path.
fn side(snapshot: &Snapshot, model: ApiModel) -> Side {
    match snapshot {
        Snapshot::Commit { commit, .. } => Side { label: commit.to_string(), commit: Some(commit.to_string()), model },
        Snapshot::Dir(root) => Side { label: root.display().to_string(), commit: None, model },
    }
}

/// Whether libclang can be loaded (and released again), with the error
/// `diff_commits` would give when it cannot.
pub fn libclang_available() -> Result<()> {
    parse::parse_all(&[], |_| {}).map(|_| ())
}

fn report(old: Side, new: Side) -> Report {
    let changes = compare::compare(&old.model, &new.model);
    let warnings = compare::version_warnings(&old.model, &new.model, &changes);
    let mut notes: Vec<String> = old.model.notes.iter().chain(&new.model.notes).cloned().collect();
    notes.sort();
    notes.dedup();
    Report { old, new, changes, warnings, notes, protos: None }
}

/// Models every snapshot. A header whose text and includes are identical
/// on several sides is parsed once: between nearby commits only the
/// headers that changed cost a parse.
fn models(snapshots: &[Snapshot]) -> Result<Vec<ApiModel>> {
    let mut per_snapshot = Vec::new();
    let mut unique: Vec<TuInput> = Vec::new();
    let mut index_of: HashMap<TuInput, usize> = HashMap::new();
    for snapshot in snapshots {
        let headers = snapshot.public_headers()?;
        let mut ids = Vec::new();
        for header in &headers {
            let input = source::tu_input(snapshot, header)
                .with_context(|| format!("cannot collect the includes of {} at {}", header.path, snapshot.describe()))?;
            let id = *index_of.entry(input.clone()).or_insert_with(|| {
                unique.push(input);
                unique.len() - 1
            });
            ids.push(id);
        }
        per_snapshot.push(ids);
    }
    let progress = indicatif::ProgressBar::new(unique.len() as u64).with_style(
        indicatif::ProgressStyle::with_template("{spinner} parsing PJRT headers {pos}/{len} {wide_msg}").expect("valid template"),
    );
    let inputs: Vec<&TuInput> = unique.iter().collect();
    let parsed = parse::parse_all(&inputs, |main| {
        progress.set_message(main.to_string());
        progress.inc(1);
    });
    progress.finish_and_clear();
    let parsed = parsed?;

    Ok(per_snapshot
        .iter()
        .map(|ids| {
            let mut model = ApiModel::default();
            for &id in ids {
                let tu = &parsed[id];
                model.headers.insert(unique[id].main.clone(), tu.header.clone());
                model.notes.extend(tu.notes.iter().cloned());
                for decl in &tu.decls {
                    model.decls.entry(decl.key()).or_insert_with(|| decl.clone());
                }
            }
            fill_struct_sizes(&mut model);
            model
        })
        .collect())
}

/// A STRUCT_SIZE's value, from the layout: offsetof(last) + sizeof(last).
fn fill_struct_sizes(model: &mut ApiModel) {
    let values: Vec<((&'static str, String), Option<u64>)> = model
        .decls
        .iter()
        .filter_map(|(key, decl)| match &decl.kind {
            DeclKind::StructSize(size) => {
                let field = model.structure(&decl.name)?.fields.iter().find(|f| f.name == size.last_field);
                Some((key.clone(), field.and_then(|f| Some(f.offset_bytes() + f.size?))))
            }
            _ => None,
        })
        .collect();
    for (key, value) in values {
        if let Some(DeclKind::StructSize(size)) = model.decls.get_mut(&key).map(|d| &mut d.kind) {
            size.value = value;
        }
    }
}
