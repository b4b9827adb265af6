//! Two models in, a list of classified changes and version warnings out.
//! The rules are PJRT's own (stated in `pjrt_c_api.h`): appending is
//! compatible and needs a MINOR bump; removing, retyping, reordering or
//! inserting before the end is breaking and needs a MAJOR bump.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::{json, Value};

use super::model::{is_version_macro, ApiModel, Decl, DeclKind, Enum, Field, Struct};
use crate::xla_headers::CORE_HEADER;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    Added,
    Removed,
    /// A field, `PJRT_Api` member or enumerator got a new name, keeping its
    /// offset, type and size (or its value): source-breaking, ABI-compatible.
    Renamed,
    Retyped,
    Reordered,
    /// A field's offset changed.
    Moved,
    /// A struct's size or alignment changed.
    Resized,
    /// An enumerator's value, or a version macro's number, changed.
    Renumbered,
    /// A macro's value, a `*_STRUCT_SIZE` declaration, or whether a struct
    /// is opaque changed.
    Redefined,
    /// A declaration moved to another header.
    Relocated,
}

impl ChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Added => "added",
            ChangeKind::Removed => "removed",
            ChangeKind::Renamed => "renamed",
            ChangeKind::Retyped => "retyped",
            ChangeKind::Reordered => "reordered",
            ChangeKind::Moved => "moved",
            ChangeKind::Resized => "resized",
            ChangeKind::Renumbered => "renumbered",
            ChangeKind::Redefined => "redefined",
            ChangeKind::Relocated => "relocated",
        }
    }
}

/// How a change weighs under PJRT's rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Compat {
    /// Not an API change by itself (a version number, a declaration that
    /// moved between headers).
    Neutral,
    /// Backward compatible: needs a MINOR bump.
    Compatible,
    /// Breaks existing plugins or callers: needs a MAJOR bump.
    Breaking,
}

impl Compat {
    pub fn as_str(self) -> &'static str {
        match self {
            Compat::Neutral => "neutral",
            Compat::Compatible => "compatible",
            Compat::Breaking => "breaking",
        }
    }
}

/// What a change does to binaries built against OLD (the ABI), as opposed
/// to [`Compat`], which weighs it by PJRT's source-level versioning rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Abi {
    /// Binaries built against OLD keep working (same layout, same values).
    Compatible,
    /// The layout, a type or a value that binaries rely on changed.
    Breaking,
}

impl Abi {
    pub fn as_str(self) -> &'static str {
        match self {
            Abi::Compatible => "compatible",
            Abi::Breaking => "breaking",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    /// The header the declaration lives in (at NEW, or at OLD if removed).
    pub header: String,
    /// header, struct, union, field, api_member, enum, enumerator, typedef,
    /// function, macro, version_macro, struct_size.
    pub entity: &'static str,
    /// `Struct.field` for members, the declaration's name otherwise.
    pub name: String,
    /// For `renamed`: the name before (`Struct.old_field`); `None` otherwise.
    pub old_name: Option<String>,
    pub change: ChangeKind,
    pub compat: Compat,
    /// The change's effect on the ABI, where it is clear (see [`abi_of`]);
    /// `None` where it depends on how the declaration is used (macros).
    pub abi: Option<Abi>,
    /// One line for humans.
    pub detail: String,
    pub old: Option<Value>,
    pub new: Option<Value>,
}

fn change(header: &str, entity: &'static str, name: String, kind: ChangeKind, compat: Compat, detail: String) -> Change {
    Change { header: header.to_string(), entity, name, old_name: None, change: kind, compat, abi: None, detail, old: None, new: None }
}

impl Change {
    fn values(mut self, old: Option<Value>, new: Option<Value>) -> Self {
        self.old = old;
        self.new = new;
        self
    }
}

/// Every change from `old` to `new`.
pub fn compare(old: &ApiModel, new: &ApiModel) -> Vec<Change> {
    let mut changes = Vec::new();
    for path in old.headers.keys().filter(|p| !new.headers.contains_key(*p)) {
        changes.push(change(path, "header", path.clone(), ChangeKind::Removed, Compat::Breaking, "header removed".into()));
    }
    for path in new.headers.keys().filter(|p| !old.headers.contains_key(*p)) {
        changes.push(change(path, "header", path.clone(), ChangeKind::Added, Compat::Compatible, "new public header".into()));
    }
    let keys: BTreeSet<_> = old.decls.keys().chain(new.decls.keys()).collect();
    for key in keys {
        match (old.decls.get(key), new.decls.get(key)) {
            (Some(o), None) => changes.push(
                change(&o.header, entity_of(o), o.name.clone(), ChangeKind::Removed, Compat::Breaking, format!("{} removed", entity_of(o)))
                    .values(Some(json!(o)), None),
            ),
            (None, Some(n)) => changes.push(
                change(&n.header, entity_of(n), n.name.clone(), ChangeKind::Added, Compat::Compatible, added_detail(n))
                    .values(None, Some(json!(n))),
            ),
            (Some(o), Some(n)) => compare_decl(o, n, &mut changes),
            (None, None) => {}
        }
    }
    for c in &mut changes {
        c.abi = abi_of(c);
    }
    changes.sort_by(|a, b| (a.header.as_str(), a.name.as_str(), a.change).cmp(&(b.header.as_str(), b.name.as_str(), b.change)));
    changes
}

/// The ABI consequence of a change, where it is clear: a rename keeps the
/// ABI; so does an appended field or member (callers pass `struct_size`),
/// a grown struct, a new declaration, a spelling change with the same
/// canonical type and a declaration that moved between headers. Removing,
/// retyping, reordering, moving, inserting, renumbering and shrinking break
/// it. A macro's value (other than a `*_STRUCT_SIZE`) may or may not reach
/// the ABI: `None`.
fn abi_of(c: &Change) -> Option<Abi> {
    match (c.change, c.entity) {
        (ChangeKind::Renamed, _) | (ChangeKind::Relocated, _) => Some(Abi::Compatible),
        (_, "macro" | "version_macro") => None,
        _ => match c.compat {
            Compat::Breaking => Some(Abi::Breaking),
            Compat::Compatible => Some(Abi::Compatible),
            Compat::Neutral => None,
        },
    }
}

fn entity_of(decl: &Decl) -> &'static str {
    match &decl.kind {
        DeclKind::Macro(_) if is_version_macro(&decl.name) => "version_macro",
        kind => kind.kind_name(),
    }
}

fn added_detail(decl: &Decl) -> String {
    match &decl.kind {
        DeclKind::Macro(m) => format!("new macro = {}", m.value),
        DeclKind::Struct(s) if s.is_opaque() => "new opaque type".into(),
        DeclKind::Struct(s) => format!("new {}, {} field(s), {} bytes", decl.kind.kind_name(), s.fields.len(), s.size.unwrap_or(0)),
        DeclKind::Enum(e) => format!("new enum, {} enumerator(s)", e.enumerators.len()),
        DeclKind::Typedef(t) => format!("new typedef of {}", t.ty),
        DeclKind::Function(f) => format!("new function {}", f.canonical),
        DeclKind::StructSize(s) => format!("{}_STRUCT_SIZE declared, last field `{}`", decl.name, s.last_field),
    }
}

fn compare_decl(old: &Decl, new: &Decl, out: &mut Vec<Change>) {
    let header = new.header.as_str();
    if old.header != new.header {
        out.push(
            change(
                header,
                entity_of(new),
                new.name.clone(),
                ChangeKind::Relocated,
                Compat::Neutral,
                format!("moved from {} to {}", old.header, new.header),
            )
            .values(Some(json!(old.header)), Some(json!(new.header))),
        );
    }
    match (&old.kind, &new.kind) {
        (DeclKind::Struct(o), DeclKind::Struct(n)) => compare_struct(header, &new.name, o, n, out),
        (DeclKind::Enum(o), DeclKind::Enum(n)) => compare_enum(header, &new.name, o, n, out),
        (DeclKind::Typedef(o), DeclKind::Typedef(n)) => {
            if o.canonical != n.canonical {
                let detail = format!("{} -> {}", o.ty, n.ty);
                out.push(
                    change(header, "typedef", new.name.clone(), ChangeKind::Retyped, Compat::Breaking, detail)
                        .values(Some(json!(o)), Some(json!(n))),
                );
            } else if o.ty != n.ty {
                let detail = format!("{} -> {} (same canonical type {})", o.ty, n.ty, n.canonical);
                out.push(
                    change(header, "typedef", new.name.clone(), ChangeKind::Retyped, Compat::Compatible, detail)
                        .values(Some(json!(o)), Some(json!(n))),
                );
            }
        }
        (DeclKind::Function(o), DeclKind::Function(n)) if o.canonical != n.canonical => {
            let detail = format!("{} -> {}", o.canonical, n.canonical);
            out.push(
                change(header, "function", new.name.clone(), ChangeKind::Retyped, Compat::Breaking, detail)
                    .values(Some(json!(o)), Some(json!(n))),
            );
        }
        (DeclKind::Macro(o), DeclKind::Macro(n)) if o.value != n.value => {
            let (entity, kind, compat) = if is_version_macro(&new.name) {
                ("version_macro", ChangeKind::Renumbered, Compat::Neutral)
            } else {
                ("macro", ChangeKind::Redefined, Compat::Breaking)
            };
            let detail = format!("{} -> {}", o.value, n.value);
            out.push(change(header, entity, new.name.clone(), kind, compat, detail).values(Some(json!(o.value)), Some(json!(n.value))));
        }
        (DeclKind::StructSize(o), DeclKind::StructSize(n)) if o.last_field != n.last_field || o.value != n.value => {
            let compat = match (o.value, n.value) {
                (Some(a), Some(b)) if b >= a => Compat::Compatible,
                _ => Compat::Breaking,
            };
            let show = |v: Option<u64>| v.map_or("?".to_string(), |v| v.to_string());
            let detail = format!(
                "{}_STRUCT_SIZE: last field `{}` -> `{}`, {} -> {} bytes",
                new.name,
                o.last_field,
                n.last_field,
                show(o.value),
                show(n.value)
            );
            out.push(
                change(header, "struct_size", new.name.clone(), ChangeKind::Redefined, compat, detail)
                    .values(Some(json!(o)), Some(json!(n))),
            );
        }
        (o, n) if std::mem::discriminant(o) != std::mem::discriminant(n) => {
            let detail = format!("{} became a {}", o.kind_name(), n.kind_name());
            out.push(change(header, n.kind_name(), new.name.clone(), ChangeKind::Retyped, Compat::Breaking, detail));
        }
        _ => {}
    }
}

/// The longest common subsequence of two name lists (the fields that kept
/// their relative order).
fn lcs<'a>(a: &[&'a str], b: &[&'a str]) -> BTreeSet<&'a str> {
    let mut table = vec![vec![0u32; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            table[i][j] = if a[i] == b[j] { table[i + 1][j + 1] + 1 } else { table[i + 1][j].max(table[i][j + 1]) };
        }
    }
    let (mut i, mut j, mut kept) = (0, 0, BTreeSet::new());
    while i < a.len() && j < b.len() {
        if a[i] == b[j] {
            kept.insert(a[i]);
            i += 1;
            j += 1;
        } else if table[i + 1][j] >= table[i][j + 1] {
            i += 1;
        } else {
            j += 1;
        }
    }
    kept
}

fn field_desc(f: &Field) -> String {
    let size = f.size.map_or("incomplete".to_string(), |s| format!("{s} bytes"));
    match f.bit_width {
        Some(w) => format!("{} : {w} at bit {}", f.ty, f.offset_bits),
        None => format!("{} at offset {}, {size}", f.ty, f.offset_bytes()),
    }
}

fn compare_struct(header: &str, name: &str, o: &Struct, n: &Struct, out: &mut Vec<Change>) {
    let member = if name == "PJRT_Api" { "api_member" } else { "field" };
    let entity = if n.union { "union" } else { "struct" };
    if o.is_opaque() != n.is_opaque() {
        let (compat, detail) = if o.is_opaque() {
            (Compat::Compatible, "opaque type now defined".to_string())
        } else {
            (Compat::Breaking, "definition removed, type now opaque".to_string())
        };
        out.push(change(header, entity, name.into(), ChangeKind::Redefined, compat, detail));
        return;
    }
    if o.union != n.union {
        out.push(change(
            header,
            entity,
            name.into(),
            ChangeKind::Retyped,
            Compat::Breaking,
            format!("{} became a {entity}", if o.union { "union" } else { "struct" }),
        ));
    }
    let old_fields: BTreeMap<&str, &Field> = o.fields.iter().map(|f| (f.name.as_str(), f)).collect();
    let new_fields: BTreeMap<&str, &Field> = n.fields.iter().map(|f| (f.name.as_str(), f)).collect();
    let qualified = |f: &str| format!("{name}.{f}");

    // Renamed: a removed field and an added one at the same offset with the
    // same canonical type, size and bit width, paired in declaration order.
    let removed: Vec<&Field> = o.fields.iter().filter(|f| !new_fields.contains_key(f.name.as_str())).collect();
    let added: Vec<&Field> = n.fields.iter().filter(|f| !old_fields.contains_key(f.name.as_str())).collect();
    let mut renamed_to: BTreeMap<&str, &Field> = BTreeMap::new(); // old name -> new field
    let mut renamed_from: BTreeSet<&str> = BTreeSet::new(); // new names
    for of in &removed {
        let same_slot = |nf: &&&Field| {
            !renamed_from.contains(nf.name.as_str())
                && nf.offset_bits == of.offset_bits
                && nf.canonical == of.canonical
                && nf.size == of.size
                && nf.bit_width == of.bit_width
        };
        if let Some(nf) = added.iter().find(same_slot) {
            renamed_to.insert(of.name.as_str(), nf);
            renamed_from.insert(nf.name.as_str());
        }
    }
    for of in removed.iter().filter(|f| !renamed_to.contains_key(f.name.as_str())) {
        out.push(
            change(header, member, qualified(&of.name), ChangeKind::Removed, Compat::Breaking, format!("removed (was {})", field_desc(of)))
                .values(Some(json!(of)), None),
        );
    }
    for (old_name, nf) in &renamed_to {
        let of = old_fields[old_name];
        let spelling = if of.ty != nf.ty { format!(", spelled {} -> {}", of.ty, nf.ty) } else { String::new() };
        let detail =
            format!("renamed {old_name} -> {} (ABI-compatible: same offset/type, {}{spelling}; source-breaking)", nf.name, field_desc(nf));
        let mut c = change(header, member, qualified(&nf.name), ChangeKind::Renamed, Compat::Breaking, detail)
            .values(Some(json!(of)), Some(json!(nf)));
        c.old_name = Some(qualified(old_name));
        out.push(c);
    }
    // Added: appended after every surviving (or renamed) old field, or
    // inserted before one.
    let kept = |f: &Field| old_fields.contains_key(f.name.as_str()) || renamed_from.contains(f.name.as_str());
    let last_common = n.fields.iter().rposition(kept);
    for (i, f) in n.fields.iter().enumerate().filter(|(_, f)| !kept(f)) {
        let (compat, how) = match last_common {
            Some(last) if i < last => (Compat::Breaking, format!("inserted before the end (before `{}`)", n.fields[i + 1].name)),
            _ => (Compat::Compatible, "appended".to_string()),
        };
        out.push(
            change(header, member, qualified(&f.name), ChangeKind::Added, compat, format!("{how}: {}", field_desc(f)))
                .values(None, Some(json!(f))),
        );
    }
    let common_old: Vec<&str> = o.fields.iter().map(|f| f.name.as_str()).filter(|f| new_fields.contains_key(f)).collect();
    let common_new: Vec<&str> = n.fields.iter().map(|f| f.name.as_str()).filter(|f| old_fields.contains_key(f)).collect();
    let kept = lcs(&common_old, &common_new);
    let mut moved = Vec::new();
    for (new_pos, fname) in common_new.iter().enumerate() {
        let (of, nf) = (old_fields[fname], new_fields[fname]);
        if !kept.contains(fname) {
            let old_pos = common_old.iter().position(|x| x == fname).unwrap_or(0);
            out.push(
                change(
                    header,
                    member,
                    qualified(fname),
                    ChangeKind::Reordered,
                    Compat::Breaking,
                    format!("position {} -> {}", old_pos + 1, new_pos + 1),
                )
                .values(Some(json!(old_pos)), Some(json!(new_pos))),
            );
        }
        if of.canonical != nf.canonical || of.bit_width != nf.bit_width {
            out.push(
                change(header, member, qualified(fname), ChangeKind::Retyped, Compat::Breaking, format!("{} -> {}", of.ty, nf.ty))
                    .values(Some(json!(of)), Some(json!(nf))),
            );
        } else if of.ty != nf.ty {
            out.push(
                change(
                    header,
                    member,
                    qualified(fname),
                    ChangeKind::Retyped,
                    Compat::Compatible,
                    format!("{} -> {} (same canonical type {})", of.ty, nf.ty, nf.canonical),
                )
                .values(Some(json!(of)), Some(json!(nf))),
            );
        }
        if of.offset_bits != nf.offset_bits {
            moved.push((fname.to_string(), of.offset_bits, nf.offset_bits));
        }
    }
    // Offsets shift in bulk after one insertion: one change per struct.
    if !moved.is_empty() {
        let shown: Vec<String> = moved
            .iter()
            .take(4)
            .map(|(f, a, b)| if a % 8 == 0 && b % 8 == 0 { format!("{f} {}->{}", a / 8, b / 8) } else { format!("{f} bit {a}->{b}") })
            .collect();
        let more = if moved.len() > 4 { format!(", and {} more", moved.len() - 4) } else { String::new() };
        let detail = format!("{} field offset(s) changed: {}{more}", moved.len(), shown.join(", "));
        let old_offsets: BTreeMap<_, _> = moved.iter().map(|(f, a, _)| (f.clone(), a / 8)).collect();
        let new_offsets: BTreeMap<_, _> = moved.iter().map(|(f, _, b)| (f.clone(), b / 8)).collect();
        out.push(
            change(header, entity, name.into(), ChangeKind::Moved, Compat::Breaking, detail)
                .values(Some(json!(old_offsets)), Some(json!(new_offsets))),
        );
    }
    if o.size != n.size || o.align != n.align {
        let compat = match (o.size, n.size) {
            (Some(a), Some(b)) if b >= a && o.align == n.align => Compat::Compatible,
            _ => Compat::Breaking,
        };
        let show = |v: Option<u64>| v.map_or("?".to_string(), |v| v.to_string());
        let detail = format!("size {} -> {} bytes, align {} -> {}", show(o.size), show(n.size), show(o.align), show(n.align));
        out.push(
            change(header, entity, name.into(), ChangeKind::Resized, compat, detail)
                .values(Some(json!({"size": o.size, "align": o.align})), Some(json!({"size": n.size, "align": n.align}))),
        );
    }
}

fn compare_enum(header: &str, name: &str, o: &Enum, n: &Enum, out: &mut Vec<Change>) {
    let qualified = |e: &str| format!("{name}.{e}");
    if o.underlying != n.underlying || o.scoped != n.scoped {
        let detail =
            format!("underlying type {} -> {}{}", o.underlying, n.underlying, if o.scoped != n.scoped { ", scoping changed" } else { "" });
        out.push(change(header, "enum", name.into(), ChangeKind::Retyped, Compat::Breaking, detail));
    }
    let old_values: BTreeMap<&str, i64> = o.enumerators.iter().map(|e| (e.name.as_str(), e.value)).collect();
    let new_values: BTreeMap<&str, i64> = n.enumerators.iter().map(|e| (e.name.as_str(), e.value)).collect();
    // Renamed: a removed enumerator and an added one with the same value,
    // when no enumerator that exists on both sides carries that value now;
    // paired in declaration order.
    let kept_values: BTreeSet<i64> = n.enumerators.iter().filter(|e| old_values.contains_key(e.name.as_str())).map(|e| e.value).collect();
    let mut renamed_to: BTreeMap<&str, &str> = BTreeMap::new(); // old name -> new name
    let mut renamed_from: BTreeSet<&str> = BTreeSet::new(); // new names
    for e in o.enumerators.iter().filter(|e| !new_values.contains_key(e.name.as_str()) && !kept_values.contains(&e.value)) {
        let candidate = n
            .enumerators
            .iter()
            .find(|a| a.value == e.value && !old_values.contains_key(a.name.as_str()) && !renamed_from.contains(a.name.as_str()));
        if let Some(a) = candidate {
            renamed_to.insert(e.name.as_str(), a.name.as_str());
            renamed_from.insert(a.name.as_str());
        }
    }
    for e in &o.enumerators {
        match new_values.get(e.name.as_str()) {
            None if renamed_to.contains_key(e.name.as_str()) => {
                let to = renamed_to[e.name.as_str()];
                let detail = format!("renamed {} -> {to} (ABI-compatible: same value {}; source-breaking)", e.name, e.value);
                let mut c = change(header, "enumerator", qualified(to), ChangeKind::Renamed, Compat::Breaking, detail)
                    .values(Some(json!(e.value)), Some(json!(e.value)));
                c.old_name = Some(qualified(&e.name));
                out.push(c);
            }
            None => out.push(
                change(
                    header,
                    "enumerator",
                    qualified(&e.name),
                    ChangeKind::Removed,
                    Compat::Breaking,
                    format!("removed (was {})", e.value),
                )
                .values(Some(json!(e.value)), None),
            ),
            Some(v) if *v != e.value => out.push(
                change(header, "enumerator", qualified(&e.name), ChangeKind::Renumbered, Compat::Breaking, format!("{} -> {v}", e.value))
                    .values(Some(json!(e.value)), Some(json!(v))),
            ),
            _ => {}
        }
    }
    for e in n.enumerators.iter().filter(|e| !old_values.contains_key(e.name.as_str()) && !renamed_from.contains(e.name.as_str())) {
        out.push(
            change(header, "enumerator", qualified(&e.name), ChangeKind::Added, Compat::Compatible, format!("= {}", e.value))
                .values(None, Some(json!(e.value))),
        );
    }
}

fn parse_version(v: Option<&str>) -> Option<u64> {
    v?.trim().trim_end_matches(['u', 'U', 'l', 'L']).parse().ok()
}

/// Warnings where the version macros do not match what changed, and where
/// a `*_STRUCT_SIZE` declaration went stale.
pub fn version_warnings(old: &ApiModel, new: &ApiModel, changes: &[Change]) -> Vec<String> {
    let mut warnings = Vec::new();
    let counts = |header: &str| -> (usize, usize) {
        let in_header = changes.iter().filter(|c| c.header == header);
        let breaking = in_header.clone().filter(|c| c.compat == Compat::Breaking).count();
        let compatible = in_header.filter(|c| c.compat == Compat::Compatible).count();
        (breaking, compatible)
    };

    // The core API.
    let (om, on) = (parse_version(old.macro_value("PJRT_API_MAJOR")), parse_version(old.macro_value("PJRT_API_MINOR")));
    let (nm, nn) = (parse_version(new.macro_value("PJRT_API_MAJOR")), parse_version(new.macro_value("PJRT_API_MINOR")));
    if let (Some(om), Some(on), Some(nm), Some(nn)) = (om, on, nm, nn) {
        let (breaking, compatible) = counts(CORE_HEADER);
        if (nm, nn) < (om, on) {
            warnings.push(format!("PJRT API version went backwards: {om}.{on} -> {nm}.{nn} (is OLD newer than NEW?)"));
        } else if breaking > 0 && nm == om {
            let abi_kept =
                changes.iter().filter(|c| c.header == CORE_HEADER && c.compat == Compat::Breaking).all(|c| c.abi == Some(Abi::Compatible));
            let why = if abi_kept { " (all of them keep the ABI: source-breaking renames)" } else { "" };
            warnings.push(format!(
                "{CORE_HEADER}: {breaking} breaking change(s){why} but PJRT_API_MAJOR stayed {om} (version {om}.{on} -> {nm}.{nn}); PJRT's rules ask for a MAJOR bump"
            ));
        } else if compatible > 0 && nm == om && nn == on {
            warnings.push(format!(
                "{CORE_HEADER}: {compatible} compatible change(s) but PJRT_API_MINOR stayed {on}; PJRT's rules ask for a MINOR bump"
            ));
        } else if breaking == 0 && compatible == 0 && (nm, nn) != (om, on) {
            warnings.push(format!(
                "PJRT API version went {om}.{on} -> {nm}.{nn} but no declaration of {CORE_HEADER} changed (a behavioural change, or one in a macro or comment)"
            ));
        }
    }

    // Each extension that exists on both sides.
    for header in new.headers.keys().filter(|h| *h != CORE_HEADER && old.headers.contains_key(*h)) {
        let (breaking, compatible) = counts(header);
        if breaking + compatible == 0 {
            continue;
        }
        let (old_v, new_v) = (old.version_macros(header), new.version_macros(header));
        if new_v.is_empty() {
            warnings
                .push(format!("{header}: {} change(s), and the header has no *_EXTENSION_VERSION macro to bump", breaking + compatible));
        } else if old_v == new_v {
            let names: Vec<String> = new_v.iter().map(|(n, v)| format!("{n} = {v}")).collect();
            warnings.push(format!(
                "{header}: {breaking} breaking and {compatible} compatible change(s) but its version macro stayed ({})",
                names.join(", ")
            ));
        }
    }

    // STRUCT_SIZE declarations that stop short of the struct's last field.
    let stale = |model: &ApiModel, name: &str| -> Option<(String, String)> {
        let DeclKind::StructSize(size) = &model.get("struct_size", name)?.kind else { return None };
        let last = model.structure(name)?.fields.last()?;
        (last.name != size.last_field).then(|| (size.last_field.clone(), last.name.clone()))
    };
    for decl in new.decls.values().filter(|d| matches!(d.kind, DeclKind::StructSize(_))) {
        if let Some((named, last)) = stale(new, &decl.name) {
            if stale(old, &decl.name).is_none() {
                warnings.push(format!(
                    "{}: {}_STRUCT_SIZE names `{named}` but the last field of {} is `{last}`: the declared size misses the fields after it",
                    decl.header, decl.name, decl.name
                ));
            }
        }
    }
    warnings
}
