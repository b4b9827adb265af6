//! The model of the PJRT C API at one commit: what libclang says about every
//! declaration of the public headers, reduced to the facts the ABI rules
//! talk about (names, types, offsets, sizes, order, values).

use std::collections::BTreeMap;

use serde::Serialize;

/// Which language a header was parsed as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    C,
    #[serde(rename = "c++")]
    Cxx,
}

/// One public header at one commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HeaderInfo {
    pub language: Language,
    /// Includes that were replaced by an empty file (outside the XLA tree,
    /// C++ implementation headers, generated files): their declarations are
    /// not part of the C API and are not modelled.
    pub stubbed_includes: Vec<String>,
}

/// A struct (or union) field, or a `PJRT_Api` member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Field {
    pub name: String,
    /// The type as written (`PJRT_Client*`).
    #[serde(rename = "type")]
    pub ty: String,
    /// The canonical type with typedefs resolved and `struct`/`enum`
    /// keywords dropped, so C and C++ spellings compare equal.
    pub canonical: String,
    /// Offset from the start of the struct, in bits (x86_64-linux).
    pub offset_bits: u64,
    /// Size in bytes; `None` for incomplete types (flexible arrays).
    pub size: Option<u64>,
    /// Width of a bit-field.
    pub bit_width: Option<u64>,
}

impl Field {
    pub fn offset_bytes(&self) -> u64 {
        self.offset_bits / 8
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Struct {
    pub union: bool,
    /// `None` when the struct is only declared (an opaque handle).
    pub size: Option<u64>,
    pub align: Option<u64>,
    pub fields: Vec<Field>,
}

impl Struct {
    pub fn is_opaque(&self) -> bool {
        self.size.is_none() && self.fields.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Enumerator {
    pub name: String,
    pub value: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Enum {
    pub underlying: String,
    pub scoped: bool,
    pub enumerators: Vec<Enumerator>,
}

/// A function type: the target of a function-pointer typedef, or a
/// declared function.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Signature {
    pub result: String,
    pub params: Vec<String>,
    /// Canonical spelling of the whole function type.
    pub canonical: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Typedef {
    #[serde(rename = "type")]
    pub ty: String,
    pub canonical: String,
    /// Set when the typedef names a function type (`typedef PJRT_Error*
    /// PJRT_Client_Create(PJRT_Client_Create_Args* args);`).
    pub function: Option<Signature>,
}

/// An object-like macro (version numbers, constants).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Macro {
    pub value: String,
}

/// A `*_STRUCT_SIZE` declaration: `PJRT_DEFINE_STRUCT_TRAITS(S, last)`,
/// `const size_t S_STRUCT_SIZE = PJRT_STRUCT_SIZE(S, last)` or
/// `#define S_STRUCT_SIZE PJRT_STRUCT_SIZE(S, last)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StructSize {
    pub last_field: String,
    /// offsetof(S, last) + sizeof(last), from the layout; `None` when the
    /// named field does not exist.
    pub value: Option<u64>,
    /// The macro that declares it (`PJRT_DEFINE_STRUCT_TRAITS` or
    /// `PJRT_STRUCT_SIZE`).
    pub via: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DeclKind {
    Macro(Macro),
    Struct(Struct),
    Enum(Enum),
    Typedef(Typedef),
    Function(Signature),
    StructSize(StructSize),
}

impl DeclKind {
    /// The kind's name as used in reports and in the JSON schema.
    pub fn kind_name(&self) -> &'static str {
        match self {
            DeclKind::Macro(_) => "macro",
            DeclKind::Struct(s) if s.union => "union",
            DeclKind::Struct(_) => "struct",
            DeclKind::Enum(_) => "enum",
            DeclKind::Typedef(_) => "typedef",
            DeclKind::Function(_) => "function",
            DeclKind::StructSize(_) => "struct_size",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decl {
    pub name: String,
    /// The header that declares it, relative to the XLA root.
    pub header: String,
    #[serde(flatten)]
    pub kind: DeclKind,
}

impl Decl {
    /// Its key in [`ApiModel::decls`]: (kind, name), a union stored as a
    /// struct (C tags share one namespace, and a struct may become a union).
    pub fn key(&self) -> (&'static str, String) {
        let kind = match self.kind.kind_name() {
            "union" => "struct",
            k => k,
        };
        (kind, self.name.clone())
    }
}

/// Every modelled declaration at one commit, keyed by (kind, name): C names
/// are unique per kind, but a struct tag and its typedef share a name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ApiModel {
    pub headers: BTreeMap<String, HeaderInfo>,
    pub decls: BTreeMap<(&'static str, String), Decl>,
    /// Things worth knowing about how the model was built (ignored clang
    /// errors in C++-only code, stubbed includes).
    pub notes: Vec<String>,
}

impl ApiModel {
    pub fn get(&self, kind: &'static str, name: &str) -> Option<&Decl> {
        self.decls.get(&(kind, name.to_string()))
    }

    pub fn structure(&self, name: &str) -> Option<&Struct> {
        match &self.get("struct", name)?.kind {
            DeclKind::Struct(s) => Some(s),
            _ => None,
        }
    }

    pub fn macro_value(&self, name: &str) -> Option<&str> {
        match &self.get("macro", name)?.kind {
            DeclKind::Macro(m) => Some(m.value.as_str()),
            _ => None,
        }
    }

    /// `MAJOR.MINOR` from `PJRT_API_MAJOR` / `PJRT_API_MINOR`.
    pub fn api_version(&self) -> Option<String> {
        Some(format!("{}.{}", self.macro_value("PJRT_API_MAJOR")?, self.macro_value("PJRT_API_MINOR")?))
    }

    /// The version macro of a header: `PJRT_API_MAJOR`/`MINOR` for the core
    /// header, the one `*_EXTENSION_VERSION` (else `*_VERSION`) macro of an
    /// extension header.
    pub fn version_macros(&self, header: &str) -> Vec<(&str, &str)> {
        let in_header = |suffix: &str| -> Vec<(&str, &str)> {
            self.decls
                .values()
                .filter(|d| d.header == header && d.name.ends_with(suffix))
                .filter_map(|d| match &d.kind {
                    DeclKind::Macro(m) => Some((d.name.as_str(), m.value.as_str())),
                    _ => None,
                })
                .collect()
        };
        if header == crate::xla_headers::CORE_HEADER {
            return ["PJRT_API_MAJOR", "PJRT_API_MINOR"].iter().filter_map(|n| Some((*n, self.macro_value(n)?))).collect();
        }
        let ext = in_header("_EXTENSION_VERSION");
        if !ext.is_empty() {
            return ext;
        }
        in_header("_VERSION")
    }
}

/// Whether a macro name is a version number (its change is the version
/// bump itself, not an API change).
pub fn is_version_macro(name: &str) -> bool {
    name.ends_with("_VERSION") || name == "PJRT_API_MAJOR" || name == "PJRT_API_MINOR"
}
