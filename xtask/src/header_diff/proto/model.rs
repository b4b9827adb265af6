//! The protobuf schemas at one commit, as protoc compiled them: every
//! message and enum of the files compiled, by full name, reduced to what
//! decides wire and source compatibility (numbers, names, types, labels,
//! presence, oneofs, reserved numbers).

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::fmt;

use anyhow::{bail, Result};
use serde_json::{json, Value};

use super::descriptor::{self as d, DescriptorProto, FeatureSet, FieldDescriptorProto, FileDescriptorSet};

/// A field's type, with message and enum names fully qualified (no
/// leading dot).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldType {
    /// `int64`, `string`, ...
    Scalar(&'static str),
    Message(String),
    Enum(String),
    /// A message in group (delimited) encoding: a proto2 `group`, or an
    /// editions field with `message_encoding = DELIMITED`.
    Group(String),
    /// `map<K, V>`: on the wire, a repeated entry message.
    Map(Box<FieldType>, Box<FieldType>),
}

impl FieldType {
    pub fn kind(&self) -> &'static str {
        match self {
            FieldType::Scalar(_) => "scalar",
            FieldType::Message(_) => "message",
            FieldType::Enum(_) => "enum",
            FieldType::Group(_) => "group",
            FieldType::Map(..) => "map",
        }
    }

    /// The messages and enums it names.
    fn references(&self) -> Vec<&str> {
        match self {
            FieldType::Scalar(_) => vec![],
            FieldType::Message(n) | FieldType::Enum(n) | FieldType::Group(n) => vec![n.as_str()],
            FieldType::Map(k, v) => k.references().into_iter().chain(v.references()).collect(),
        }
    }

    /// The protobuf wire type a value of this type is encoded with: 0
    /// varint, 1 64-bit, 2 length-delimited, 3 group, 5 32-bit.
    pub fn wire_type(&self) -> u8 {
        match self {
            FieldType::Scalar("double" | "fixed64" | "sfixed64") => 1,
            FieldType::Scalar("float" | "fixed32" | "sfixed32") => 5,
            FieldType::Scalar("string" | "bytes") | FieldType::Message(_) | FieldType::Map(..) => 2,
            FieldType::Group(_) => 3,
            FieldType::Scalar(_) | FieldType::Enum(_) => 0,
        }
    }
}

impl fmt::Display for FieldType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldType::Scalar(s) => f.write_str(s),
            FieldType::Message(n) | FieldType::Enum(n) => f.write_str(n),
            FieldType::Group(n) => write!(f, "group {n}"),
            FieldType::Map(k, v) => write!(f, "map<{k}, {v}>"),
        }
    }
}

/// A field's cardinality, as the descriptor labels it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Label {
    Optional,
    Required,
    Repeated,
}

impl Label {
    pub fn as_str(self) -> &'static str {
        match self {
            Label::Optional => "optional",
            Label::Required => "required",
            Label::Repeated => "repeated",
        }
    }
}

/// Whether a singular field tracks presence (`has_x()`): proto2 and
/// editions by default, proto3 `optional`, messages, oneof members
/// (explicit); proto3 plain scalars, editions `IMPLICIT` (implicit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    Explicit,
    Implicit,
}

impl Presence {
    pub fn as_str(self) -> &'static str {
        match self {
            Presence::Explicit => "explicit",
            Presence::Implicit => "implicit",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub name: String,
    pub number: i32,
    pub ty: FieldType,
    pub label: Label,
    /// `None` for repeated and required fields.
    pub presence: Option<Presence>,
    /// The oneof it belongs to (not the synthetic one of a proto3 `optional`).
    pub oneof: Option<String>,
    /// A proto2 / editions `[default = ...]`, as protoc writes it.
    pub default: Option<String>,
    pub deprecated: bool,
}

impl Field {
    /// As a .proto file would declare it, without the name: `repeated
    /// int64 = 16`, `optional string = 11` (explicit presence of a scalar).
    pub fn declaration(&self) -> String {
        let label = match (self.label, self.presence, &self.ty) {
            (Label::Repeated, ..) if matches!(self.ty, FieldType::Map(..)) => "",
            (Label::Repeated, ..) => "repeated ",
            (Label::Required, ..) => "required ",
            (_, Some(Presence::Explicit), FieldType::Scalar(_) | FieldType::Enum(_)) if self.oneof.is_none() => "optional ",
            _ => "",
        };
        let mut s = format!("{label}{} = {}", self.ty, self.number);
        if let Some(o) = &self.oneof {
            s.push_str(&format!(" (oneof {o})"));
        }
        s
    }

    pub fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "number": self.number,
            "type": self.ty.to_string(),
            "type_kind": self.ty.kind(),
            "label": self.label.as_str(),
            "presence": self.presence.map(Presence::as_str),
            "oneof": self.oneof,
            "default": self.default,
            "deprecated": self.deprecated,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The .proto file that declares it (its import name).
    pub file: String,
    pub fields: Vec<Field>,
    /// Full names of the messages and enums declared inside it.
    pub nested: Vec<String>,
    /// Reserved field numbers, as inclusive ranges.
    pub reserved_numbers: Vec<(i32, i32)>,
    pub reserved_names: Vec<String>,
    pub deprecated: bool,
}

impl Message {
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }

    pub fn field_number(&self, number: i32) -> Option<&Field> {
        self.fields.iter().find(|f| f.number == number)
    }

    pub fn reserves_number(&self, number: i32) -> bool {
        self.reserved_numbers.iter().any(|&(lo, hi)| (lo..=hi).contains(&number))
    }

    pub fn to_json(&self) -> Value {
        json!({
            "file": self.file,
            "fields": self.fields.iter().map(Field::to_json).collect::<Vec<_>>(),
            "reserved_numbers": self.reserved_numbers.iter().map(|&(lo, hi)| if lo == hi { json!(lo) } else { json!([lo, hi]) }).collect::<Vec<_>>(),
            "reserved_names": self.reserved_names,
            "deprecated": self.deprecated,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnumValue {
    pub name: String,
    pub number: i32,
    pub deprecated: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enum {
    pub file: String,
    pub values: Vec<EnumValue>,
    /// Reserved numbers, as inclusive ranges.
    pub reserved_numbers: Vec<(i32, i32)>,
    pub reserved_names: Vec<String>,
    pub deprecated: bool,
}

impl Enum {
    pub fn reserves_number(&self, number: i32) -> bool {
        self.reserved_numbers.iter().any(|&(lo, hi)| (lo..=hi).contains(&number))
    }

    pub fn to_json(&self) -> Value {
        json!({
            "file": self.file,
            "values": self.values.iter().map(|v| json!({"name": v.name, "number": v.number, "deprecated": v.deprecated})).collect::<Vec<_>>(),
            "deprecated": self.deprecated,
        })
    }
}

/// Everything protoc compiled at one commit, and what of it PJRT
/// consumers can meet.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProtoModel {
    /// The root files found (see [`super::ROOTS`]), by import name.
    pub roots: Vec<String>,
    /// Every file compiled (the roots and all they import): its syntax,
    /// `proto2`, `proto3` or `edition 2023`.
    pub files: BTreeMap<String, String>,
    /// Every message, by full name (`xla.DebugOptions`); map entries are
    /// not messages here, they are the `map<K, V>` type of their field.
    pub messages: BTreeMap<String, Message>,
    pub enums: BTreeMap<String, Enum>,
    /// The messages and enums a consumer of the roots can meet: declared
    /// in a root file, or reachable from one through field types and
    /// nesting. Only these are compared.
    pub scope: BTreeSet<String>,
}

impl ProtoModel {
    pub fn message(&self, name: &str) -> Option<&Message> {
        self.messages.get(name)
    }

    /// Builds the model from protoc's output for `roots`.
    pub fn from_descriptors(set: &FileDescriptorSet, roots: Vec<String>) -> Result<ProtoModel> {
        let mut model = ProtoModel { roots, ..ProtoModel::default() };
        let mut map_entries = HashMap::new();
        for file in &set.file {
            let package = file.package.clone().unwrap_or_default();
            for m in &file.message_type {
                collect_map_entries(&qualify(&package, m.name()), m, &mut map_entries);
            }
        }
        for file in &set.file {
            let name = file.name.clone().unwrap_or_default();
            let syntax = match file.syntax.as_deref() {
                None | Some("") | Some("proto2") => Syntax::Proto2,
                Some("proto3") => Syntax::Proto3,
                Some("editions") => Syntax::Editions(file.edition.unwrap_or(d::EDITION_2023)),
                Some(other) => bail!("{name}: protoc reports syntax `{other}`, which this diff does not know"),
            };
            model.files.insert(name.clone(), syntax.to_string());
            let file_features = file.options.as_ref().and_then(|o| o.features.as_ref());
            let ctx = Ctx { file: &name, syntax, map_entries: &map_entries };
            let package = file.package.clone().unwrap_or_default();
            for e in &file.enum_type {
                model.enums.insert(qualify(&package, e.name()), ctx.enumeration(e));
            }
            for m in &file.message_type {
                ctx.message(&qualify(&package, m.name()), m, &mut file_features.into_iter().collect(), &mut model)?;
            }
        }
        model.scope = model.reachable();
        Ok(model)
    }

    fn reachable(&self) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut queue: VecDeque<String> = self
            .messages
            .iter()
            .map(|(n, m)| (n, &m.file))
            .chain(self.enums.iter().map(|(n, e)| (n, &e.file)))
            .filter(|(_, file)| self.roots.contains(file))
            .map(|(n, _)| n.clone())
            .collect();
        while let Some(name) = queue.pop_front() {
            if !seen.insert(name.clone()) {
                continue;
            }
            if let Some(m) = self.messages.get(&name) {
                queue.extend(m.nested.iter().cloned());
                queue.extend(m.fields.iter().flat_map(|f| f.ty.references()).map(str::to_string));
            }
        }
        seen
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Syntax {
    Proto2,
    Proto3,
    Editions(i32),
}

impl fmt::Display for Syntax {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Syntax::Proto2 => f.write_str("proto2"),
            Syntax::Proto3 => f.write_str("proto3"),
            Syntax::Editions(1000) => f.write_str("edition 2023"),
            Syntax::Editions(1001) => f.write_str("edition 2024"),
            Syntax::Editions(n) => write!(f, "edition {n}"),
        }
    }
}

fn qualify(scope: &str, name: &str) -> String {
    if scope.is_empty() {
        name.to_string()
    } else {
        format!("{scope}.{name}")
    }
}

/// Map entry messages (`FooEntry` with `map_entry = true`), by full name:
/// their key and value fields.
fn collect_map_entries<'a>(
    name: &str,
    m: &'a DescriptorProto,
    out: &mut HashMap<String, (&'a FieldDescriptorProto, &'a FieldDescriptorProto)>,
) {
    if m.options.as_ref().and_then(|o| o.map_entry).unwrap_or(false) {
        if let (Some(k), Some(v)) = (m.field.iter().find(|f| f.number() == 1), m.field.iter().find(|f| f.number() == 2)) {
            out.insert(name.to_string(), (k, v));
        }
    }
    for n in &m.nested_type {
        collect_map_entries(&qualify(name, n.name()), n, out);
    }
}

struct Ctx<'a> {
    file: &'a str,
    syntax: Syntax,
    map_entries: &'a HashMap<String, (&'a FieldDescriptorProto, &'a FieldDescriptorProto)>,
}

impl Ctx<'_> {
    /// `features`: the explicit feature sets from the file down to the
    /// enclosing message, outermost first.
    fn message<'f>(&self, name: &str, m: &'f DescriptorProto, features: &mut Vec<&'f FeatureSet>, model: &mut ProtoModel) -> Result<()> {
        let options = m.options.as_ref();
        if options.and_then(|o| o.map_entry).unwrap_or(false) {
            return Ok(());
        }
        let pushed = options.and_then(|o| o.features.as_ref());
        if let Some(f) = pushed {
            features.push(f);
        }
        let mut nested = Vec::new();
        for e in &m.enum_type {
            let full = qualify(name, e.name());
            model.enums.insert(full.clone(), self.enumeration(e));
            nested.push(full);
        }
        for n in &m.nested_type {
            let full = qualify(name, n.name());
            if n.options.as_ref().and_then(|o| o.map_entry).unwrap_or(false) {
                continue;
            }
            self.message(&full, n, features, model)?;
            nested.push(full);
        }
        let fields = m.field.iter().map(|f| self.field(name, m, f, features)).collect::<Result<Vec<_>>>()?;
        if pushed.is_some() {
            features.pop();
        }
        model.messages.insert(
            name.to_string(),
            Message {
                file: self.file.to_string(),
                fields,
                nested,
                // Message ranges end exclusively.
                reserved_numbers: m.reserved_range.iter().map(|r| (r.start(), r.end() - 1)).collect(),
                reserved_names: m.reserved_name.clone(),
                deprecated: options.and_then(|o| o.deprecated).unwrap_or(false),
            },
        );
        Ok(())
    }

    fn field(&self, message: &str, m: &DescriptorProto, f: &FieldDescriptorProto, features: &[&FeatureSet]) -> Result<Field> {
        let own = f.options.as_ref().and_then(|o| o.features.as_ref());
        let resolve = |pick: fn(&FeatureSet) -> Option<i32>| own.and_then(pick).or_else(|| features.iter().rev().find_map(|s| pick(s)));
        let type_name = f.type_name().trim_start_matches('.').to_string();
        let mut label = match f.label() {
            d::LABEL_REPEATED => Label::Repeated,
            d::LABEL_REQUIRED => Label::Required,
            _ => Label::Optional,
        };
        let ty = match f.r#type() {
            d::TYPE_ENUM => FieldType::Enum(type_name),
            d::TYPE_GROUP => FieldType::Group(type_name),
            d::TYPE_MESSAGE => match self.map_entries.get(&type_name) {
                Some((k, v)) if label == Label::Repeated => FieldType::Map(Box::new(plain_type(k)?), Box::new(plain_type(v)?)),
                _ if resolve(|s| s.message_encoding) == Some(d::ENCODING_DELIMITED) => FieldType::Group(type_name),
                _ => FieldType::Message(type_name),
            },
            other => FieldType::Scalar(
                d::scalar_name(other).ok_or_else(|| anyhow::anyhow!("{message}.{}: unknown field type {other}", f.name()))?,
            ),
        };
        let oneof = match f.oneof_index {
            Some(i) if !f.proto3_optional() => m.oneof_decl.get(i as usize).map(|o| o.name().to_string()),
            _ => None,
        };
        let default_presence = match self.syntax {
            Syntax::Proto3 => d::PRESENCE_IMPLICIT,
            Syntax::Proto2 | Syntax::Editions(_) => d::PRESENCE_EXPLICIT,
        };
        let presence = if label != Label::Optional {
            None
        } else if oneof.is_some() || f.proto3_optional() || matches!(ty, FieldType::Message(_) | FieldType::Group(_)) {
            Some(Presence::Explicit)
        } else {
            match resolve(|s| s.field_presence).unwrap_or(default_presence) {
                d::PRESENCE_IMPLICIT => Some(Presence::Implicit),
                d::PRESENCE_LEGACY_REQUIRED => {
                    label = Label::Required;
                    None
                }
                _ => Some(Presence::Explicit),
            }
        };
        Ok(Field {
            name: f.name().to_string(),
            number: f.number(),
            ty,
            label,
            presence,
            oneof,
            default: f.default_value.clone(),
            deprecated: f.options.as_ref().and_then(|o| o.deprecated).unwrap_or(false),
        })
    }

    fn enumeration(&self, e: &d::EnumDescriptorProto) -> Enum {
        Enum {
            file: self.file.to_string(),
            values: e
                .value
                .iter()
                .map(|v| EnumValue {
                    name: v.name().to_string(),
                    number: v.number(),
                    deprecated: v.options.as_ref().and_then(|o| o.deprecated).unwrap_or(false),
                })
                .collect(),
            // Enum ranges end inclusively.
            reserved_numbers: e.reserved_range.iter().map(|r| (r.start(), r.end())).collect(),
            reserved_names: e.reserved_name.clone(),
            deprecated: e.options.as_ref().and_then(|o| o.deprecated).unwrap_or(false),
        }
    }
}

/// The type of a map key or value (never itself a map).
fn plain_type(f: &FieldDescriptorProto) -> Result<FieldType> {
    let name = f.type_name().trim_start_matches('.').to_string();
    Ok(match f.r#type() {
        d::TYPE_ENUM => FieldType::Enum(name),
        d::TYPE_MESSAGE => FieldType::Message(name),
        other => FieldType::Scalar(d::scalar_name(other).ok_or_else(|| anyhow::anyhow!("map entry field of unknown type {other}"))?),
    })
}
