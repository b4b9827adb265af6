//! Two protobuf models in, classified changes out. Each change is weighed
//! twice: `compat` for code generated from the schema (a rename or removal
//! breaks source that names the item), `wire` for serialized data (the
//! protobuf language guide's rules on updating a message type).

use std::collections::{BTreeSet, HashSet};

use serde::Serialize;
use serde_json::Value;

use super::model::{Enum, Field, FieldType, Label, Message, Presence, ProtoModel};
use crate::header_diff::Compat;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProtoChangeKind {
    Added,
    Removed,
    /// Same number, new name (a field or enum value).
    Renamed,
    /// Same name, new number.
    Renumbered,
    /// A field's type changed (also when its number now carries another
    /// field of another type).
    Retyped,
    /// A field's label (optional, repeated, required) or presence changed.
    Relabeled,
    /// A field entered, left or changed its oneof.
    Moved,
    /// A message or enum moved to another .proto file.
    Relocated,
    /// A field's default value changed.
    Redefined,
    /// An item was marked deprecated, or no longer is.
    Deprecated,
}

impl ProtoChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProtoChangeKind::Added => "added",
            ProtoChangeKind::Removed => "removed",
            ProtoChangeKind::Renamed => "renamed",
            ProtoChangeKind::Renumbered => "renumbered",
            ProtoChangeKind::Retyped => "retyped",
            ProtoChangeKind::Relabeled => "relabeled",
            ProtoChangeKind::Moved => "moved",
            ProtoChangeKind::Relocated => "relocated",
            ProtoChangeKind::Redefined => "redefined",
            ProtoChangeKind::Deprecated => "deprecated",
        }
    }
}

/// What a change does to data serialized with the OLD schema and read with
/// the NEW one, or the reverse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Wire {
    /// Both sides still read each other's bytes with the same meaning.
    Compatible,
    /// Bytes are misread, lost or rejected.
    Breaking,
}

impl Wire {
    pub fn as_str(self) -> &'static str {
        match self {
            Wire::Compatible => "compatible",
            Wire::Breaking => "breaking",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProtoChange {
    /// The .proto file that declares it (at NEW, or at OLD if removed).
    pub file: String,
    /// message, enum, field or enum_value.
    pub entity: &'static str,
    /// Full name: `xla.DebugOptions` for a message or enum,
    /// `xla.DebugOptions.xla_cpu_use_onednn` for a field,
    /// `xla.PrimitiveType.F8E4M3FN` for an enum value.
    pub name: String,
    /// The name before, when it changed (`renamed`, or a `retyped` number
    /// that now carries another field).
    pub old_name: Option<String>,
    pub change: ProtoChangeKind,
    /// For code generated from the schema.
    pub compat: Compat,
    /// For serialized data.
    pub wire: Wire,
    pub detail: String,
    pub old: Option<Value>,
    pub new: Option<Value>,
}

struct Diff<'m> {
    old: &'m ProtoModel,
    new: &'m ProtoModel,
    out: Vec<ProtoChange>,
}

/// Every change between the in-scope messages and enums of two models, in
/// name order.
pub fn compare(old: &ProtoModel, new: &ProtoModel) -> Vec<ProtoChange> {
    let mut diff = Diff { old, new, out: Vec::new() };
    let names: BTreeSet<&String> = old.scope.iter().chain(&new.scope).collect();
    for name in names {
        match (old.messages.get(name), new.messages.get(name)) {
            (Some(a), Some(b)) => diff.message(name, a, b),
            (Some(a), None) => {
                diff.push(
                    &a.file,
                    "message",
                    name,
                    ProtoChangeKind::Removed,
                    Compat::Breaking,
                    Wire::Compatible,
                    format!(
                        "{} field(s), declared in {}; fields of other messages that used it are listed on their own",
                        a.fields.len(),
                        a.file
                    ),
                    Some(a.to_json()),
                    None,
                );
            }
            (None, Some(b)) => {
                diff.push(
                    &b.file,
                    "message",
                    name,
                    ProtoChangeKind::Added,
                    Compat::Compatible,
                    Wire::Compatible,
                    format!("{} field(s)", b.fields.len()),
                    None,
                    Some(b.to_json()),
                );
            }
            (None, None) => {}
        }
        match (old.enums.get(name), new.enums.get(name)) {
            (Some(a), Some(b)) => diff.enumeration(name, a, b),
            (Some(a), None) => {
                diff.push(
                    &a.file,
                    "enum",
                    name,
                    ProtoChangeKind::Removed,
                    Compat::Breaking,
                    Wire::Compatible,
                    format!("{} value(s), declared in {}", a.values.len(), a.file),
                    Some(a.to_json()),
                    None,
                );
            }
            (None, Some(b)) => {
                diff.push(
                    &b.file,
                    "enum",
                    name,
                    ProtoChangeKind::Added,
                    Compat::Compatible,
                    Wire::Compatible,
                    format!("{} value(s)", b.values.len()),
                    None,
                    Some(b.to_json()),
                );
            }
            (None, None) => {}
        }
    }
    diff.out
}

/// Pairs old and new items: same name and number first, then same name
/// (renumbered), then same number (renamed or retyped); the rest are
/// removed or added. Each item pairs at most once, in declaration order.
fn pair<'a, T>(old: &'a [T], new: &'a [T], name: impl Fn(&T) -> &str, number: impl Fn(&T) -> i32) -> Pairing<'a, T> {
    let mut old_left: Vec<Option<&T>> = old.iter().map(Some).collect();
    let mut new_left: Vec<Option<&T>> = new.iter().map(Some).collect();
    let mut pairs = Vec::new();
    for round in 0..3 {
        let same = |a: &T, b: &T| match round {
            0 => name(a) == name(b) && number(a) == number(b),
            1 => name(a) == name(b),
            _ => number(a) == number(b),
        };
        for slot in old_left.iter_mut() {
            let Some(a) = *slot else { continue };
            if let Some(found) = new_left.iter_mut().find(|b| b.is_some_and(|b| same(a, b))) {
                pairs.push((a, found.take().expect("checked")));
                *slot = None;
            }
        }
    }
    Pairing { pairs, removed: old_left.into_iter().flatten().collect(), added: new_left.into_iter().flatten().collect() }
}

struct Pairing<'a, T> {
    pairs: Vec<(&'a T, &'a T)>,
    removed: Vec<&'a T>,
    added: Vec<&'a T>,
}

impl Diff<'_> {
    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        file: &str,
        entity: &'static str,
        name: &str,
        change: ProtoChangeKind,
        compat: Compat,
        wire: Wire,
        detail: String,
        old: Option<Value>,
        new: Option<Value>,
    ) -> &mut ProtoChange {
        self.out.push(ProtoChange {
            file: file.to_string(),
            entity,
            name: name.to_string(),
            old_name: None,
            change,
            compat,
            wire,
            detail,
            old,
            new,
        });
        self.out.last_mut().expect("just pushed")
    }

    fn message(&mut self, name: &str, a: &Message, b: &Message) {
        if a.file != b.file {
            self.push(
                &b.file,
                "message",
                name,
                ProtoChangeKind::Relocated,
                Compat::Neutral,
                Wire::Compatible,
                format!("moved from {} to {} (code that imports the .proto or its generated header by path must follow)", a.file, b.file),
                None,
                None,
            );
        }
        if a.deprecated != b.deprecated {
            let detail = if b.deprecated { "marked deprecated" } else { "no longer deprecated" };
            self.push(&b.file, "message", name, ProtoChangeKind::Deprecated, Compat::Neutral, Wire::Compatible, detail.into(), None, None);
        }
        let pairing = pair(&a.fields, &b.fields, |f| f.name.as_str(), |f| f.number);
        for (x, y) in pairing.pairs {
            self.field(name, a, b, x, y);
        }
        for f in pairing.removed {
            let mut detail = format!("was {}", f.declaration());
            let number_reserved = b.reserves_number(f.number);
            let name_reserved = b.reserved_names.contains(&f.name);
            match (number_reserved, name_reserved) {
                (true, true) => detail.push_str(&format!("; number {} and name reserved", f.number)),
                (true, false) => detail.push_str(&format!("; number {} reserved", f.number)),
                (false, _) => {
                    detail.push_str(&format!("; number {} is NOT reserved: a later field reusing it would misread old data", f.number))
                }
            }
            detail.push_str(" (old data keeps parsing: the field becomes unknown)");
            self.push(
                &b.file,
                "field",
                &format!("{name}.{}", f.name),
                ProtoChangeKind::Removed,
                Compat::Breaking,
                Wire::Compatible,
                detail,
                Some(f.to_json()),
                None,
            );
        }
        for f in pairing.added {
            let (compat, wire, note) = if f.label == Label::Required {
                (Compat::Breaking, Wire::Breaking, " (required: data written without it is rejected)")
            } else {
                (Compat::Compatible, Wire::Compatible, "")
            };
            self.push(
                &b.file,
                "field",
                &format!("{name}.{}", f.name),
                ProtoChangeKind::Added,
                compat,
                wire,
                format!("{}{note}", f.declaration()),
                None,
                Some(f.to_json()),
            );
        }
    }

    fn field(&mut self, message: &str, a: &Message, b: &Message, x: &Field, y: &Field) {
        let full = format!("{message}.{}", y.name);
        let (old_json, new_json) = (Some(x.to_json()), Some(y.to_json()));
        let renamed = x.name != y.name;
        if x.number != y.number {
            self.push(
                &b.file,
                "field",
                &full,
                ProtoChangeKind::Renumbered,
                Compat::Breaking,
                Wire::Breaking,
                format!(
                    "number {} -> {} (data written with one schema lands in another field, or none, with the other)",
                    x.number, y.number
                ),
                old_json.clone(),
                new_json.clone(),
            );
        }
        if x.ty != y.ty {
            let (wire, why) = match self.wire_compatible(&x.ty, &y.ty) {
                Ok(why) => (Wire::Compatible, format!("wire-compatible: {why}")),
                Err(why) => (Wire::Breaking, format!("wire-breaking: {why}")),
            };
            let detail = if renamed {
                format!("number {} now carries {} {} (was {} {}); {why}", y.number, y.name, y.ty, x.name, x.ty)
            } else {
                format!("{} -> {}; {why}", x.ty, y.ty)
            };
            let c = self.push(
                &b.file,
                "field",
                &full,
                ProtoChangeKind::Retyped,
                Compat::Breaking,
                wire,
                detail,
                old_json.clone(),
                new_json.clone(),
            );
            if renamed {
                c.old_name = Some(format!("{message}.{}", x.name));
            }
        } else if renamed {
            let c = self.push(
                &b.file,
                "field",
                &full,
                ProtoChangeKind::Renamed,
                Compat::Breaking,
                Wire::Compatible,
                format!(
                    "renamed {} -> {} (same number {}, same type {}: the binary wire format holds; source and the JSON/text formats break)",
                    x.name, y.name, y.number, y.ty
                ),
                old_json.clone(),
                new_json.clone(),
            );
            c.old_name = Some(format!("{message}.{}", x.name));
        }
        if x.label != y.label {
            let length_delimited = matches!(y.ty, FieldType::Scalar("string" | "bytes") | FieldType::Message(_));
            let singular_repeated = x.label != Label::Required && y.label != Label::Required;
            let (wire, why) = if singular_repeated && length_delimited {
                (Wire::Compatible, "for string, bytes and message fields singular and repeated share the encoding")
            } else if singular_repeated {
                (Wire::Breaking, "repeated numeric fields are packed, singular ones are not")
            } else {
                (Wire::Breaking, "a required field missing from the data makes it unreadable")
            };
            self.push(
                &b.file,
                "field",
                &full,
                ProtoChangeKind::Relabeled,
                Compat::Breaking,
                wire,
                format!("{} -> {} ({why})", x.label.as_str(), y.label.as_str()),
                old_json.clone(),
                new_json.clone(),
            );
        } else if x.presence != y.presence && x.oneof == y.oneof {
            // (A oneof member's presence is explicit: a move says it.)
            let (compat, what) = match y.presence {
                Some(Presence::Explicit) => (Compat::Compatible, "has_ accessor added"),
                _ => (Compat::Breaking, "has_ accessor gone; a zero value is no longer distinguishable from an unset one"),
            };
            let show = |p: Option<Presence>| p.map_or("none", Presence::as_str);
            self.push(
                &b.file,
                "field",
                &full,
                ProtoChangeKind::Relabeled,
                compat,
                Wire::Compatible,
                format!("presence {} -> {} ({what})", show(x.presence), show(y.presence)),
                old_json.clone(),
                new_json.clone(),
            );
        }
        if x.oneof != y.oneof {
            // The guide: a single field may move into a NEW oneof; any other
            // move can lose data (setting one member clears the others).
            let into_new_oneof = x.oneof.is_none()
                && y.oneof.as_ref().is_some_and(|o| {
                    let members_before =
                        b.fields.iter().filter(|f| f.oneof.as_ref() == Some(o)).filter(|f| a.field_number(f.number).is_some()).count();
                    !a.fields.iter().any(|f| f.oneof.as_ref() == Some(o)) && members_before == 1
                });
            let (wire, why) = if into_new_oneof {
                (Wire::Compatible, "a single field into a new oneof")
            } else {
                (Wire::Breaking, "setting one member of a oneof clears the others: data can be lost")
            };
            let show = |o: &Option<String>| o.as_deref().map_or_else(|| "(none)".to_string(), |o| format!("oneof {o}"));
            self.push(
                &b.file,
                "field",
                &full,
                ProtoChangeKind::Moved,
                Compat::Breaking,
                wire,
                format!("{} -> {} ({why})", show(&x.oneof), show(&y.oneof)),
                old_json.clone(),
                new_json.clone(),
            );
        }
        if x.default != y.default {
            let show = |d: &Option<String>| d.clone().unwrap_or_else(|| "(type default)".into());
            self.push(
                &b.file,
                "field",
                &full,
                ProtoChangeKind::Redefined,
                Compat::Neutral,
                Wire::Compatible,
                format!(
                    "default {} -> {} (defaults are not serialized: readers of data without the field see the new one)",
                    show(&x.default),
                    show(&y.default)
                ),
                old_json.clone(),
                new_json.clone(),
            );
        }
        if x.deprecated != y.deprecated {
            let detail = if y.deprecated { "marked deprecated" } else { "no longer deprecated" };
            self.push(&b.file, "field", &full, ProtoChangeKind::Deprecated, Compat::Neutral, Wire::Compatible, detail.into(), None, None);
        }
    }

    fn enumeration(&mut self, name: &str, a: &Enum, b: &Enum) {
        if a.file != b.file {
            self.push(
                &b.file,
                "enum",
                name,
                ProtoChangeKind::Relocated,
                Compat::Neutral,
                Wire::Compatible,
                format!("moved from {} to {}", a.file, b.file),
                None,
                None,
            );
        }
        if a.deprecated != b.deprecated {
            let detail = if b.deprecated { "marked deprecated" } else { "no longer deprecated" };
            self.push(&b.file, "enum", name, ProtoChangeKind::Deprecated, Compat::Neutral, Wire::Compatible, detail.into(), None, None);
        }
        let value_json = |v: &super::model::EnumValue| serde_json::json!({"name": v.name, "number": v.number});
        let pairing = pair(&a.values, &b.values, |v| v.name.as_str(), |v| v.number);
        for (x, y) in pairing.pairs {
            let full = format!("{name}.{}", y.name);
            if x.number != y.number {
                self.push(
                    &b.file,
                    "enum_value",
                    &full,
                    ProtoChangeKind::Renumbered,
                    Compat::Breaking,
                    Wire::Breaking,
                    format!("{} -> {} (data carrying {} now means something else, or nothing)", x.number, y.number, x.number),
                    Some(value_json(x)),
                    Some(value_json(y)),
                );
            } else if x.name != y.name {
                let c = self.push(
                    &b.file,
                    "enum_value",
                    &full,
                    ProtoChangeKind::Renamed,
                    Compat::Breaking,
                    Wire::Compatible,
                    format!(
                        "renamed {} -> {} (same number {}: the binary wire format holds; source and the JSON/text formats break)",
                        x.name, y.name, y.number
                    ),
                    Some(value_json(x)),
                    Some(value_json(y)),
                );
                c.old_name = Some(format!("{name}.{}", x.name));
            }
            if x.deprecated != y.deprecated {
                let detail = if y.deprecated { "marked deprecated" } else { "no longer deprecated" };
                self.push(
                    &b.file,
                    "enum_value",
                    &full,
                    ProtoChangeKind::Deprecated,
                    Compat::Neutral,
                    Wire::Compatible,
                    detail.into(),
                    None,
                    None,
                );
            }
        }
        for v in pairing.removed {
            let reserved = if b.reserves_number(v.number) { "reserved" } else { "NOT reserved" };
            self.push(
                &b.file,
                "enum_value",
                &format!("{name}.{}", v.name),
                ProtoChangeKind::Removed,
                Compat::Breaking,
                Wire::Compatible,
                format!("was = {}; number {reserved} (old data carrying it reads as an unknown value)", v.number),
                Some(value_json(v)),
                None,
            );
        }
        for v in pairing.added {
            self.push(
                &b.file,
                "enum_value",
                &format!("{name}.{}", v.name),
                ProtoChangeKind::Added,
                Compat::Compatible,
                Wire::Compatible,
                format!("= {}", v.number),
                None,
                Some(value_json(v)),
            );
        }
    }

    /// Why a field's type change keeps the wire format, or why not: the
    /// protobuf guide's compatible types; an enum for another enum whose
    /// values keep their numbers and names (after each enum's common
    /// prefix); a message for another whose fields keep their numbers,
    /// names, labels and compatible types.
    fn wire_compatible(&self, a: &FieldType, b: &FieldType) -> Result<String, String> {
        self.compatible_types(a, b, &mut HashSet::new())
    }

    fn compatible_types(&self, a: &FieldType, b: &FieldType, assumed: &mut HashSet<(String, String)>) -> Result<String, String> {
        use FieldType::*;
        let varint = |t: &FieldType| matches!(t, Scalar("int32" | "int64" | "uint32" | "uint64" | "bool"));
        let integer = |t: &FieldType| matches!(t, Scalar("int32" | "int64" | "uint32" | "uint64"));
        let misread = || format!("data written as {a} is misread as {b}");
        Ok(match (a, b) {
            _ if a == b => "same type".into(),
            _ if varint(a) && varint(b) => {
                "int32, int64, uint32, uint64 and bool share the varint encoding (values may be truncated)".into()
            }
            (Enum(_), t) | (t, Enum(_)) if integer(t) => "an enum is encoded as an int32 varint (values may be truncated)".into(),
            (Scalar("sint32" | "sint64"), Scalar("sint32" | "sint64")) => "sint32 and sint64 share the zigzag encoding".into(),
            (Scalar("fixed32" | "sfixed32"), Scalar("fixed32" | "sfixed32"))
            | (Scalar("fixed64" | "sfixed64"), Scalar("fixed64" | "sfixed64")) => "same fixed-width encoding".into(),
            (Scalar("string" | "bytes"), Scalar("string" | "bytes")) => "string and bytes agree while the bytes are valid UTF-8".into(),
            (Message(_), Scalar("bytes")) | (Scalar("bytes"), Message(_)) => "bytes holding the encoded message".into(),
            (Map(k1, v1), Map(k2, v2)) => {
                self.compatible_types(k1, k2, assumed)?;
                self.compatible_types(v1, v2, assumed)?;
                "map key and value types are compatible".into()
            }
            (Enum(x), Enum(y)) => {
                let (Some(ex), Some(ey)) = (self.old.enums.get(x), self.new.enums.get(y)) else { return Err(misread()) };
                let (px, py) = (common_prefix(ex), common_prefix(ey));
                for v in &ex.values {
                    match ey.values.iter().find(|w| w.number == v.number) {
                        Some(w) if w.name[py..] == v.name[px..] => {}
                        Some(w) => return Err(format!("value {} is {} in {x} but {} in {y}", v.number, v.name, w.name)),
                        None => return Err(format!("value {} ({}) of {x} is unknown to {y}", v.number, v.name)),
                    }
                }
                format!("{y} keeps every number of {x} with the same name")
            }
            (Message(x), Message(y)) | (Group(x), Group(y)) => {
                if !assumed.insert((x.clone(), y.clone())) {
                    return Ok("recursive".into());
                }
                let (Some(mx), Some(my)) = (self.old.messages.get(x), self.new.messages.get(y)) else { return Err(misread()) };
                for f in &mx.fields {
                    let Some(g) = my.field_number(f.number).filter(|g| g.name == f.name && g.label == f.label) else {
                        return Err(format!("field {} = {} of {x} has no counterpart of that name and label in {y}", f.name, f.number));
                    };
                    self.compatible_types(&f.ty, &g.ty, assumed).map_err(|e| format!("{x}.{}: {e}", f.name))?;
                }
                format!("{y} keeps every field of {x} (numbers, names, labels, compatible types)")
            }
            _ => return Err(misread()),
        })
    }
}

/// The length of the prefix (ending in `_`) shared by every value name of
/// an enum, C++-style scoping (`DETECTION_MODE_NONE` -> `NONE`).
fn common_prefix(e: &Enum) -> usize {
    let Some(first) = e.values.first() else { return 0 };
    let mut len = first.name.rfind('_').map_or(0, |i| i + 1);
    for v in &e.values[1..] {
        while len > 0 && !(v.name.len() > len && v.name.as_bytes().starts_with(&first.name.as_bytes()[..len])) {
            len = first.name[..len - 1].rfind('_').map_or(0, |i| i + 1);
        }
    }
    len
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::header_diff::proto::model::EnumValue;

    fn enumeration(names: &[&str]) -> Enum {
        Enum {
            file: "f.proto".into(),
            values: names.iter().enumerate().map(|(i, n)| EnumValue { name: n.to_string(), number: i as i32, deprecated: false }).collect(),
            reserved_numbers: vec![],
            reserved_names: vec![],
            deprecated: false,
        }
    }

    #[test]
    fn enum_value_prefixes() {
        assert_eq!(common_prefix(&enumeration(&["DETECTION_MODE_NONE", "DETECTION_MODE_WARNING", "DETECTION_MODE_FAIL"])), 15);
        assert_eq!(common_prefix(&enumeration(&["UNSPECIFIED_BACKEND", "CUDNN", "TRITON"])), 0);
        assert_eq!(common_prefix(&enumeration(&["A_B_X", "A_C"])), 2);
        assert_eq!(common_prefix(&enumeration(&["ONLY_ONE"])), 5);
        // A prefix never swallows a whole name.
        assert_eq!(common_prefix(&enumeration(&["MODE_A", "MODE_"])), 0);
    }
}
