//! `cargo xtask conform --history [--check]`: the history of the PJRT C API
//! as a table, `crates/pjrt-sys/src/history_table.rs`, read from real XLA
//! history with the diff-headers machinery.
//!
//! The first commit of every PJRT minor version (on the first-parent line
//! of the tip) is modelled with libclang; each struct field (PJRT_Api
//! members included) and each enumerator is then followed across the
//! versions as *runs*: the minor versions over which it existed with one
//! offset and type (an enumerator: one value). A rename at the same offset
//! and type continues the run, as it keeps the ABI. Taking the first commit
//! of each version is conservative: a member added without a bump counts
//! from the next version.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use git2::{Oid, Repository, Sort};

use crate::header_diff::model::{ApiModel, Decl, DeclKind};
use crate::xla_headers::{parse_api_version, CORE_HEADER};
use crate::xla_repo::{self, XlaRepoArg};

/// The generated table, relative to the project root.
pub const TABLE_PATH: &str = "crates/pjrt-sys/src/history_table.rs";

/// Exit status of `--check` when the table is stale.
pub const EXIT_STALE: u8 = 2;

/// One PJRT minor version: the first commit that carried it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub minor: u32,
    pub commit: Oid,
}

/// A field of a struct over a range of minor versions (`until: None`: still
/// there at the tip).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct FieldRun {
    pub strukt: String,
    pub offset: u64,
    pub since: u32,
    pub name: String,
    pub size: u64,
    /// A pointer to a function (an entry point).
    pub function: bool,
    pub until: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct EnumeratorRun {
    pub enumeration: String,
    pub value: i64,
    pub since: u32,
    pub name: String,
    pub until: Option<u32>,
}

/// The whole table, before rendering.
#[derive(Debug, Clone)]
pub struct History {
    pub tip: Oid,
    pub versions: Vec<Version>,
    pub fields: Vec<FieldRun>,
    pub enumerators: Vec<EnumeratorRun>,
    pub changes: Vec<Change>,
    pub declared_sizes: Vec<DeclaredSize>,
}

/// A field whose meaning changed in place from one minor version to the
/// next: same struct and offset, another name or type (see
/// `pjrt_sys::history::Change`). Moves (the API reordered before 0.30) are
/// not changes of meaning: the field lives on elsewhere.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Change {
    pub strukt: String,
    pub offset: u64,
    pub minor: u32,
    pub kind: &'static str,
    pub before_name: String,
    pub after_name: String,
    pub before_type: String,
    pub after_type: String,
}

/// A struct whose declared `*_STRUCT_SIZE` is not the end of its last field
/// over a run of versions: what a plugin built then reports as its size.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct DeclaredSize {
    pub strukt: String,
    pub since: u32,
    pub until: Option<u32>,
    pub declared: u64,
    pub last_field: String,
    pub end: u64,
}

/// The tip a table was generated from, read back from its `TIP_COMMIT`.
pub fn recorded_tip(table: &str) -> Option<String> {
    let line = table.lines().find(|l| l.starts_with("pub const TIP_COMMIT: &str = \""))?;
    let tip = line.split('"').nth(1)?;
    (tip.len() == 40 && tip.bytes().all(|b| b.is_ascii_hexdigit())).then(|| tip.to_string())
}

/// `--history`: regenerate (or `--check`) the table.
pub fn run(xla: &XlaRepoArg, tip: Option<&str>, check: bool) -> Result<ExitCode> {
    let root = crate::project::root()?;
    let target = root.join(TABLE_PATH);
    let current = std::fs::read_to_string(&target).unwrap_or_default();
    let tip = match (tip, recorded_tip(&current)) {
        (Some(tip), _) => tip.to_string(),
        (None, Some(recorded)) => recorded,
        (None, None) => {
            bail!("{TABLE_PATH} is missing or records no TIP_COMMIT: name the XLA commit whose history to tabulate with --tip REV")
        }
    };
    let repo = xla_repo::open_for(xla, &[&tip])?;
    let tip_oid = xla_repo::resolve_commit(&repo, &tip)?;
    let history = build(&repo, tip_oid)?;
    let generated = render(&history);
    let newest = history.versions.last().map(|v| v.minor).unwrap_or_default();
    if check {
        if current == generated {
            eprintln!("{TABLE_PATH} is up to date (XLA {tip_oid:.12}, PJRT 0.1 to 0.{newest})");
            return Ok(ExitCode::SUCCESS);
        }
        eprintln!("{TABLE_PATH} is stale for XLA {tip_oid:.12}: run `cargo xtask conform --history` and commit the result");
        return Ok(ExitCode::from(EXIT_STALE));
    }
    if current == generated {
        eprintln!("{TABLE_PATH} already up to date (XLA {tip_oid:.12}, PJRT 0.{newest})");
    } else {
        crate::fsutil::write_atomic(&target, generated.as_bytes())?;
        eprintln!(
            "wrote {TABLE_PATH}: XLA {tip_oid:.12}, {} minor versions up to 0.{newest}, {} field runs, {} enumerator runs",
            history.versions.len(),
            history.fields.len(),
            history.enumerators.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The first commit of each PJRT minor version (MAJOR 0) on the
/// first-parent line that ends at `tip`, oldest first.
pub fn versions(repo: &Repository, tip: Oid) -> Result<Vec<Version>> {
    let mut walk = repo.revwalk()?;
    walk.push(tip)?;
    walk.simplify_first_parent()?;
    walk.set_sorting(Sort::TOPOLOGICAL)?;
    let header_blob = |commit: Oid| -> Result<Option<Oid>> {
        let tree = xla_repo::commit_tree(repo, commit)?;
        Ok(tree.get_path(Path::new(CORE_HEADER)).ok().map(|e| e.id()))
    };
    // Newest first: a commit changed the header when its blob differs from
    // the one of the commit before it (its first parent).
    let mut changes: Vec<(Oid, Oid)> = Vec::new();
    let mut newer: Option<(Oid, Oid)> = None;
    for commit in walk {
        let commit = commit?;
        let blob = header_blob(commit)?;
        if let Some((newer_commit, newer_blob)) = newer {
            if blob != Some(newer_blob) {
                changes.push((newer_commit, newer_blob));
            }
        }
        match blob {
            Some(blob) => newer = Some((commit, blob)),
            None => {
                newer = None;
                break;
            }
        }
    }
    if let Some(first) = newer {
        changes.push(first); // the root of the walk carries the header
    }
    changes.reverse();
    let mut out: Vec<Version> = Vec::new();
    for (commit, blob) in changes {
        let blob = repo.find_blob(blob).with_context(|| format!("{CORE_HEADER} of commit {commit} is missing (partial clone?)"))?;
        let Ok(version) = parse_api_version(&String::from_utf8_lossy(blob.content())) else { continue };
        if version.major != 0 {
            continue;
        }
        // A revert that lowers the version is not a new version.
        if out.last().is_none_or(|last| version.minor > last.minor) {
            out.push(Version { minor: version.minor, commit });
        }
    }
    if out.is_empty() {
        bail!("no commit on the first-parent line of {tip} defines PJRT_API_MINOR in {CORE_HEADER}");
    }
    Ok(out)
}

/// Models every version and follows the fields and enumerators across them.
pub fn build(repo: &Repository, tip: Oid) -> Result<History> {
    let versions = versions(repo, tip)?;
    let commits: Vec<Oid> = versions.iter().map(|v| v.commit).collect();
    let models = crate::header_diff::model_commits(repo, &commits)?;
    let minors: Vec<u32> = versions.iter().map(|v| v.minor).collect();
    Ok(History {
        tip,
        fields: field_runs(&minors, &models),
        enumerators: enumerator_runs(&minors, &models),
        changes: changes(&minors, &models),
        declared_sizes: declared_sizes(&minors, &models),
        versions,
    })
}

/// Structs whose layout a caller of the C API depends on: `PJRT_Api`, every
/// struct that starts with `struct_size` (args structs, versioned tables)
/// or with a `PJRT_Extension_Base` (extensions), the chain element itself
/// (`PJRT_Extension_Base`, `PJRT_Structure_Base` before 0.41), and the
/// extensions of 0.31 to 0.44, which start with their type (no size).
fn versioned_structs(model: &ApiModel) -> impl Iterator<Item = (&str, &crate::header_diff::model::Struct)> {
    model.decls.values().filter_map(|decl| match &decl.kind {
        DeclKind::Struct(s) if !s.union => {
            let first = s.fields.first()?;
            let chain_type = |c: &str| c == "PJRT_Extension_Type" || c == "PJRT_Structure_Type";
            let versioned = decl.name == "PJRT_Api"
                || decl.name == "PJRT_Extension_Base"
                || decl.name == "PJRT_Structure_Base"
                || first.name == "struct_size"
                || (first.name == "base" && first.canonical == "PJRT_Extension_Base")
                || (first.name == "type" && chain_type(&first.canonical));
            versioned.then_some((decl.name.as_str(), s))
        }
        _ => None,
    })
}

/// Runs of `key -> payload` over the versions: a key present in version i
/// and not in i+1 closes there. A key that appears as another closes with
/// the same `continues` identity (a rename) continues its run.
struct Runs<K: Ord + Clone, C: Ord + Clone> {
    open: BTreeMap<K, u32>,
    closed: Vec<(K, u32, Option<u32>)>,
    /// What a rename keeps (the slot: struct, offset, type; an
    /// enumerator's value).
    identity: fn(&K) -> C,
    /// (owner, name): a key whose name lives on elsewhere in its owner
    /// moved; only one whose name is gone was renamed.
    name: fn(&K) -> (String, String),
}

impl<K: Ord + Clone, C: Ord + Clone> Runs<K, C> {
    fn new(identity: fn(&K) -> C, name: fn(&K) -> (String, String)) -> Self {
        Runs { open: BTreeMap::new(), closed: Vec::new(), identity, name }
    }

    fn step(&mut self, minor: u32, previous: Option<u32>, present: BTreeSet<K>) {
        let ended: Vec<(K, u32)> = self.open.iter().filter(|(k, _)| !present.contains(k)).map(|(k, s)| (k.clone(), *s)).collect();
        let names: BTreeSet<(String, String)> = present.iter().map(self.name).collect();
        let mut renamed_from: BTreeMap<C, u32> = BTreeMap::new();
        for (key, since) in ended {
            self.open.remove(&key);
            if !names.contains(&(self.name)(&key)) {
                renamed_from.insert((self.identity)(&key), since);
            }
            self.closed.push((key, since, previous));
        }
        for key in present {
            if !self.open.contains_key(&key) {
                let since = renamed_from.get(&(self.identity)(&key)).copied().unwrap_or(minor);
                self.open.insert(key, since);
            }
        }
    }

    fn finish(mut self) -> Vec<(K, u32, Option<u32>)> {
        self.closed.extend(std::mem::take(&mut self.open).into_iter().map(|(k, s)| (k, s, None)));
        self.closed
    }
}

/// (struct, offset, canonical type, name, size)
type FieldKey = (String, u64, String, String, u64);

fn field_runs(minors: &[u32], models: &[ApiModel]) -> Vec<FieldRun> {
    let mut runs: Runs<FieldKey, (String, u64, String, u64)> =
        Runs::new(|k| (k.0.clone(), k.1, k.2.clone(), k.4), |k| (k.0.clone(), k.3.clone()));
    for (i, model) in models.iter().enumerate() {
        let mut present = BTreeSet::new();
        for (name, s) in versioned_structs(model) {
            for field in &s.fields {
                if field.bit_width.is_some() {
                    continue;
                }
                // C and C++ spell a boolean differently; headers moved between the two.
                let canonical = field.canonical.replace("_Bool", "bool");
                present.insert((name.to_string(), field.offset_bytes(), canonical, field.name.clone(), field.size.unwrap_or(0)));
            }
        }
        runs.step(minors[i], i.checked_sub(1).map(|p| minors[p]), present);
    }
    let mut out: Vec<FieldRun> = runs
        .finish()
        .into_iter()
        .map(|((strukt, offset, canonical, name, size), since, until)| FieldRun {
            strukt,
            offset,
            since,
            name,
            size,
            function: canonical.contains("(*)"),
            until,
        })
        .collect();
    out.sort();
    out
}

/// (enum, value, name)
type EnumeratorKey = (String, i64, String);

fn enumerator_runs(minors: &[u32], models: &[ApiModel]) -> Vec<EnumeratorRun> {
    let mut runs: Runs<EnumeratorKey, (String, i64)> = Runs::new(|k| (k.0.clone(), k.1), |k| (k.0.clone(), k.2.clone()));
    for (i, model) in models.iter().enumerate() {
        let mut present = BTreeSet::new();
        for decl in model.decls.values() {
            if let DeclKind::Enum(e) = &decl.kind {
                for en in &e.enumerators {
                    present.insert((decl.name.clone(), en.value, en.name.clone()));
                }
            }
        }
        runs.step(minors[i], i.checked_sub(1).map(|p| minors[p]), present);
    }
    let mut out: Vec<EnumeratorRun> = runs
        .finish()
        .into_iter()
        .map(|((enumeration, value, name), since, until)| EnumeratorRun { enumeration, value, since, name, until })
        .collect();
    out.sort();
    out
}

/// How a field's type changed: `requalified` (only `const` differs),
/// `typed` (`void*` became a typed pointer), `enum_renamed` (another enum
/// of the same size: `PJRT_Structure_Type` became `PJRT_Extension_Type`),
/// `embedded` (an extension's leading `struct_size, type, next` folded into
/// one `PJRT_Extension_Base base`), `resized`, `retyped`, or `renamed`
/// (same type, another name).
fn change_kind(
    before: &crate::header_diff::model::Field,
    after: &crate::header_diff::model::Field,
    old: &ApiModel,
    new: &ApiModel,
) -> &'static str {
    let unqualified = |t: &str| t.replace("const ", "").replace(" const", "").replace("_Bool", "bool");
    let (b, a) = (unqualified(&before.canonical), unqualified(&after.canonical));
    let is_enum = |model: &ApiModel, t: &str| model.get("enum", t).is_some();
    if before.name == "struct_size" && after.name == "base" && after.canonical == "PJRT_Extension_Base" {
        "embedded"
    } else if before.size == after.size && b != a && is_enum(old, &b) && is_enum(new, &a) {
        "enum_renamed"
    } else if before.size != after.size {
        "resized"
    } else if b == a && before.canonical.replace("_Bool", "bool") != after.canonical.replace("_Bool", "bool") {
        "requalified"
    } else if b == a {
        "renamed"
    } else if b == "void *" && a.ends_with('*') {
        "typed"
    } else {
        "retyped"
    }
}

/// Every in-place change of meaning from one version to the next (see
/// [`Change`]).
fn changes(minors: &[u32], models: &[ApiModel]) -> Vec<Change> {
    let mut out = Vec::new();
    for i in 1..models.len() {
        let old: BTreeMap<&str, &crate::header_diff::model::Struct> = versioned_structs(&models[i - 1]).collect();
        for (name, new) in versioned_structs(&models[i]) {
            let Some(old) = old.get(name) else { continue };
            for after in new.fields.iter().filter(|f| f.bit_width.is_none()) {
                let Some(before) = old.fields.iter().find(|f| f.bit_width.is_none() && f.offset_bytes() == after.offset_bytes()) else {
                    continue;
                };
                let same_type = before.canonical.replace("_Bool", "bool") == after.canonical.replace("_Bool", "bool");
                if before.name == after.name && same_type && before.size == after.size {
                    continue;
                }
                // A name that lives on at another offset, or one that was
                // elsewhere before, is a move, not a change in place.
                if before.name != after.name
                    && (new.fields.iter().any(|f| f.name == before.name) || old.fields.iter().any(|f| f.name == after.name))
                {
                    continue;
                }
                // Members of a union share offset 0: not a change.
                if old.fields.iter().filter(|f| f.offset_bytes() == after.offset_bytes()).count() > 1 {
                    continue;
                }
                out.push(Change {
                    strukt: name.to_string(),
                    offset: after.offset_bytes(),
                    minor: minors[i],
                    kind: change_kind(before, after, &models[i - 1], &models[i]),
                    before_name: before.name.clone(),
                    after_name: after.name.clone(),
                    before_type: before.canonical.clone(),
                    after_type: after.canonical.clone(),
                });
            }
        }
    }
    out.sort();
    out
}

/// Runs of versions over which a struct's declared size differs from the
/// end of its last field (see [`DeclaredSize`]).
fn declared_sizes(minors: &[u32], models: &[ApiModel]) -> Vec<DeclaredSize> {
    let mut out: Vec<DeclaredSize> = Vec::new();
    let mut open: BTreeMap<String, DeclaredSize> = BTreeMap::new();
    for (i, model) in models.iter().enumerate() {
        let mut now: BTreeMap<String, DeclaredSize> = BTreeMap::new();
        for (name, s) in versioned_structs(model) {
            let Some(Decl { kind: DeclKind::StructSize(size), .. }) = model.get("struct_size", name) else { continue };
            let Some(declared) = size.value else { continue };
            let end = s.fields.iter().filter_map(|f| f.size.map(|n| f.offset_bytes() + n)).max().unwrap_or(0);
            if declared != end {
                let d = DeclaredSize {
                    strukt: name.to_string(),
                    since: minors[i],
                    until: None,
                    declared,
                    last_field: size.last_field.clone(),
                    end,
                };
                now.insert(name.to_string(), d);
            }
        }
        let previous = i.checked_sub(1).map(|p| minors[p]);
        for (name, mut run) in std::mem::take(&mut open) {
            match now.remove(&name) {
                Some(d) if d.declared == run.declared && d.end == run.end && d.last_field == run.last_field => {
                    open.insert(name, run);
                }
                other => {
                    run.until = previous;
                    out.push(run);
                    if let Some(d) = other {
                        open.insert(name, d);
                    }
                }
            }
        }
        for (name, d) in now {
            open.insert(name, d);
        }
    }
    out.extend(open.into_values());
    out.sort();
    out
}

/// The Rust source of the table: data only; the types and lookups are in
/// `pjrt_sys::history`.
pub fn render(history: &History) -> String {
    let newest = history.versions.last().map(|v| v.minor).unwrap_or_default();
    let until = |u: Option<u32>| u.map_or_else(|| "None".to_string(), |u| format!("Some({u})"));
    let mut out = String::new();
    out.push_str("// generated by `cargo xtask conform --history`, do not edit.\n");
    let _ = writeln!(
        out,
        "//\n// The PJRT C API through XLA history: the first commit of each PJRT minor version\n\
         // on the first-parent line of TIP_COMMIT, modelled with the diff-headers machinery.\n\
         // A run is the range of minor versions over which a field kept its offset and type\n\
         // (an enumerator: its value); `until: None` means it is still there at the tip.\n"
    );
    out.push_str("use crate::history::{Change, DeclaredSize, EnumeratorRun, FieldRun};\n\n");
    let _ = writeln!(out, "/// The XLA commit the history ends at.\npub const TIP_COMMIT: &str = \"{}\";\n", history.tip);
    let _ = writeln!(out, "/// The newest PJRT minor version the history knows.\npub const NEWEST_MINOR: u32 = {newest};\n");
    out.push_str(
        "/// Each PJRT minor version (MAJOR 0) and the first commit that carried it.\npub const MINOR_VERSIONS: &[(u32, &str)] = &[\n",
    );
    for v in &history.versions {
        let _ = writeln!(out, "    ({}, \"{}\"),", v.minor, v.commit);
    }
    out.push_str("];\n\n");
    out.push_str(
        "/// Fields of `PJRT_Api`, of every struct that starts with `struct_size` and of every\n\
         /// extension struct, sorted by struct, offset and first version.\npub const FIELDS: &[FieldRun] = &[\n",
    );
    for f in &history.fields {
        let _ = writeln!(
            out,
            "    FieldRun {{ strukt: \"{}\", name: \"{}\", offset: {}, size: {}, function: {}, since: {}, until: {} }},",
            f.strukt,
            f.name,
            f.offset,
            f.size,
            f.function,
            f.since,
            until(f.until)
        );
    }
    out.push_str("];\n\n/// Enumerators of every enum of the public headers, sorted by enum, value and first version.\npub const ENUMERATORS: &[EnumeratorRun] = &[\n");
    for e in &history.enumerators {
        let _ = writeln!(
            out,
            "    EnumeratorRun {{ enumeration: \"{}\", name: \"{}\", value: {}, since: {}, until: {} }},",
            e.enumeration,
            e.name,
            e.value,
            e.since,
            until(e.until)
        );
    }
    out.push_str("];\n\n");
    out.push_str(
        "/// Fields whose meaning changed in place (same struct and offset, another name or type),\n\
         /// sorted by struct, offset and the version that brought the change.\npub const CHANGES: &[Change] = &[\n",
    );
    for c in &history.changes {
        let _ = writeln!(
            out,
            "    Change {{ strukt: {:?}, offset: {}, minor: {}, kind: {:?}, before_name: {:?}, after_name: {:?}, before_type: {:?}, after_type: {:?} }},",
            c.strukt, c.offset, c.minor, c.kind, c.before_name, c.after_name, c.before_type, c.after_type
        );
    }
    out.push_str(
        "];\n\n/// Structs whose declared `*_STRUCT_SIZE` is not the end of their last field, and when.\n\
         pub const DECLARED_SIZES: &[DeclaredSize] = &[\n",
    );
    for d in &history.declared_sizes {
        let _ = writeln!(
            out,
            "    DeclaredSize {{ strukt: {:?}, since: {}, until: {}, declared: {}, last_field: {:?}, end: {} }},",
            d.strukt,
            d.since,
            until(d.until),
            d.declared,
            d.last_field,
            d.end
        );
    }
    out.push_str("];\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_close_reopen_and_follow_renames() {
        let mut runs: Runs<(String, u64), u64> = Runs::new(|k| k.1, |k| (String::new(), k.0.clone()));
        let set = |items: &[(&str, u64)]| items.iter().map(|(n, o)| (n.to_string(), *o)).collect::<BTreeSet<_>>();
        runs.step(1, None, set(&[("a", 0), ("c", 16)]));
        runs.step(2, Some(1), set(&[("a", 0), ("b", 8), ("c", 16)]));
        runs.step(3, Some(2), set(&[("a", 0), ("b2", 8), ("d", 16), ("c", 24)])); // b renamed; c moved, d took its slot
        runs.step(4, Some(3), set(&[("b2", 8), ("d", 16), ("c", 24)])); // a removed
        let mut got = runs.finish();
        got.sort();
        assert_eq!(
            got,
            vec![
                (("a".into(), 0), 1, Some(3)),
                (("b".into(), 8), 2, Some(2)),
                (("b2".into(), 8), 2, None),
                (("c".into(), 16), 1, Some(2)),
                (("c".into(), 24), 3, None),
                (("d".into(), 16), 3, None),
            ],
            "b2 continues b's run from 0.2; d does not continue c's (c lives on)"
        );
    }

    #[test]
    fn tip_is_read_back_from_the_table() {
        let table = "// x\npub const TIP_COMMIT: &str = \"70fe66213b73c5953d92eb25d2606bd6004d47c3\";\n";
        assert_eq!(recorded_tip(table).as_deref(), Some("70fe66213b73c5953d92eb25d2606bd6004d47c3"));
        assert_eq!(recorded_tip("pub const TIP_COMMIT: &str = \"main\";"), None);
    }
}
