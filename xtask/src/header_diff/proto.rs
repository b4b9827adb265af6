//! The protobuf half of diff-headers: the schemas PJRT consumers serialize
//! (a `CompileOptionsProto` for every `PJRT_Client_Compile`, HLO modules,
//! shapes and shardings), compiled by protoc at each side and compared
//! semantically: messages (nested too), fields (number, name, type, label,
//! presence, oneof), enums and their values, each change weighed for
//! generated source (`compat`) and for serialized data (`wire`).

mod compare;
mod descriptor;
pub mod model;
mod render;
mod source;

use std::path::Path;

use anyhow::Result;
use git2::{Oid, Repository};

pub use compare::{ProtoChange, ProtoChangeKind, Wire};
pub use model::{Enum, EnumValue, Field, FieldType, Label, Message, Presence, ProtoModel};
pub use source::imports;

use super::source::Snapshot;
use super::{Compat, Verdict};
use source::{Compilation, ProtoFiles};

/// The .proto files compared, each with the paths it had over time (the
/// first found at a commit is used); what they import is compiled with
/// them, and what PJRT consumers can reach from them is compared.
pub const ROOTS: &[&[&str]] = &[
    // CompileOptionsProto, ExecutableBuildOptionsProto: the `compile_options`
    // of PJRT_Client_Compile (moved to xla/pjrt/proto/ on 2025-05-15).
    &["xla/pjrt/proto/compile_options.proto", "xla/pjrt/compile_options.proto"],
    // DebugOptions, ExecutionOptions, ...: carried inside CompileOptionsProto.
    &["xla/xla.proto"],
    // ShapeProto, LayoutProto, OpSharding: shapes, layouts and shardings
    // that cross the C API serialized.
    &["xla/xla_data.proto"],
    // HloModuleProto: programs in the "hlo" format, and optimized programs.
    &["xla/service/hlo.proto"],
];

/// The protobuf diff between two sides.
#[derive(Debug, Clone)]
pub struct ProtoReport {
    pub old: ProtoModel,
    pub new: ProtoModel,
    pub changes: Vec<ProtoChange>,
}

impl ProtoReport {
    /// `breaking` if any change breaks generated source or the wire, else
    /// `compatible` if anything changed, else `unchanged`.
    pub fn verdict(&self) -> Verdict {
        match self.changes.iter().map(|c| c.compat).max() {
            None => Verdict::Unchanged,
            Some(Compat::Breaking) => Verdict::Breaking,
            Some(_) => Verdict::Compatible,
        }
    }

    /// Whether data serialized with one schema still reads with the other.
    pub fn wire_verdict(&self) -> Wire {
        self.changes.iter().map(|c| c.wire).max().unwrap_or(Wire::Compatible)
    }

    /// Whether either side has any of the [`ROOTS`].
    pub fn has_schemas(&self) -> bool {
        !(self.old.roots.is_empty() && self.new.roots.is_empty())
    }

    /// One line, `verdict: details`: the counts, what it means for
    /// serialized data.
    pub fn verdict_line(&self) -> String {
        render::verdict_line(self)
    }

    pub fn to_text(&self) -> String {
        render::text(self)
    }

    pub fn to_markdown(&self) -> String {
        render::markdown(self)
    }

    pub fn to_json(&self) -> serde_json::Value {
        render::json(self)
    }
}

/// The protoc runs of both sides, under way (they run beside libclang).
pub(super) enum Pending {
    /// The two sides' files differ.
    Two(Box<Compilation>, Box<Compilation>),
    /// Every file is the same at both sides: compiled once.
    Same(Box<Compilation>),
}

pub(super) fn start(old: &Snapshot, new: &Snapshot) -> Result<Pending> {
    let old_files = ProtoFiles::collect(old, ROOTS)?;
    let new_files = ProtoFiles::collect(new, ROOTS)?;
    if old_files.roots == new_files.roots && old_files.files == new_files.files {
        return Ok(Pending::Same(Box::new(old_files.compile()?)));
    }
    Ok(Pending::Two(Box::new(old_files.compile()?), Box::new(new_files.compile()?)))
}

impl Pending {
    pub(super) fn finish(self) -> Result<ProtoReport> {
        let (old, new) = match self {
            Pending::Two(old, new) => (old.finish()?, new.finish()?),
            Pending::Same(both) => {
                let model = both.finish()?;
                (model.clone(), model)
            }
        };
        let changes = compare::compare(&old, &new);
        Ok(ProtoReport { old, new, changes })
    }
}

/// The protobuf diff alone between two commits of `repo` (diff-headers
/// runs it beside the header diff).
pub fn diff_commits(repo: &Repository, old: Oid, new: Oid) -> Result<ProtoReport> {
    start(&Snapshot::commit(repo, old)?, &Snapshot::commit(repo, new)?)?.finish()
}

/// The protobuf diff alone between two directories holding XLA trees.
pub fn diff_dirs(old: &Path, new: &Path) -> Result<ProtoReport> {
    start(&Snapshot::dir(old)?, &Snapshot::dir(new)?)?.finish()
}

/// The schemas at one commit, compiled: for checks against them (smoke's
/// hand-written `CompileOptionsProto`).
pub fn model_at(repo: &Repository, commit: Oid) -> Result<ProtoModel> {
    ProtoFiles::collect(&Snapshot::commit(repo, commit)?, ROOTS)?.compile()?.finish()
}
