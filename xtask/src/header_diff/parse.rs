//! libclang (loaded at run time, as bindgen does) turns one header into
//! declarations of the model. Files are fed as unsaved buffers under a
//! virtual root, so nothing is written to disk and nothing on the host
//! (system headers included) leaks into the parse.

use std::collections::BTreeSet;
use std::sync::Mutex;

use anyhow::{anyhow, bail, Result};
use clang::diagnostic::Severity;
use clang::{Clang, Entity, EntityKind, Index, TypeKind, Unsaved};

use super::model::{Decl, DeclKind, Enum, Enumerator, Field, HeaderInfo, Language, Macro, Signature, Struct, StructSize, Typedef};
use super::source::{TuInput, BUILTIN_HEADERS};

const ROOT: &str = "/pjrtpkgs-virtual/xla";
const BUILTIN: &str = "/pjrtpkgs-virtual/builtin";
const STUBS: &str = "/pjrtpkgs-virtual/stubs";

/// The target whose ABI the model describes.
pub const TARGET: &str = "x86_64-unknown-linux-gnu";

/// The `clang` crate allows one `Clang` per process; tests (and any other
/// caller) that diff in parallel take turns here.
static CLANG: Mutex<()> = Mutex::new(());

/// What one translation unit contributes to the model.
#[derive(Debug, Clone)]
pub struct TuModel {
    pub header: HeaderInfo,
    pub decls: Vec<Decl>,
    pub notes: Vec<String>,
}

/// Parses every input with one libclang instance, released (unloaded)
/// before returning so that bindgen can load its own later.
pub fn parse_all(inputs: &[&TuInput], mut on_parsed: impl FnMut(&str)) -> Result<Vec<TuModel>> {
    let _turn = CLANG.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let clang = Clang::new().map_err(|e| {
        anyhow!(
            "cannot load libclang, which parses the PJRT headers: {e}. Install it (Debian/Ubuntu: `apt-get install libclang-dev`; Nix: the dev shell has it) or set LIBCLANG_PATH to the directory holding libclang.so"
        )
    })?;
    check_loaded_libclang()?;
    let index = Index::new(&clang, false, false);
    let mut models = Vec::with_capacity(inputs.len());
    for input in inputs {
        let model = parse_header(&index, input)?;
        models.push(model);
        on_parsed(&input.main);
    }
    drop(index);
    drop(clang);
    Ok(models)
}

/// The library just loaded is a libclang of a version the clang crate can
/// drive: any shared library named libclang*.so in LIBCLANG_PATH is loaded,
/// and calling a function it lacks panics.
fn check_loaded_libclang() -> Result<()> {
    let Some(library) = clang_sys::get_library() else { return Ok(()) };
    let usable = clang_sys::clang_createIndex::is_loaded()
        && clang_sys::clang_parseTranslationUnit2::is_loaded()
        && library.version().is_some_and(|v| v >= clang_sys::Version::V9_0);
    if usable {
        return Ok(());
    }
    let origin = match std::env::var_os("LIBCLANG_PATH") {
        Some(dir) => format!(" (found through LIBCLANG_PATH={})", dir.to_string_lossy()),
        None => String::new(),
    };
    Err(anyhow!(
        "{}{origin} is not a usable libclang: it lacks the libclang functions (or is older than libclang 10). \
         Point LIBCLANG_PATH at the directory of a real libclang.so, or unset it to use the system's (Debian/Ubuntu: `apt-get install libclang-dev`)",
        library.path().display()
    ))
}

/// Parses one header: as C, then as C++ when C fails (a header that uses
/// struct tags without `struct` is C++-only); C++ headers whose C
/// declarations name types from stubbed C++ includes (`xla::GlobalDeviceId*`)
/// get those types declared as opaque structs, learnt from clang's errors.
fn parse_header(index: &Index, input: &TuInput) -> Result<TuModel> {
    let languages: &[Language] = match input.language {
        Language::C => &[Language::C, Language::Cxx],
        Language::Cxx => &[Language::Cxx],
    };
    let mut first_errors = None;
    for &language in languages {
        let mut opaque = OpaqueTypes::default();
        loop {
            match parse_one(index, input, language, &opaque.declarations()) {
                Ok(mut model) => {
                    if !opaque.types.is_empty() {
                        model.notes.push(format!(
                            "{}: types from stubbed C++ includes declared opaque: {}",
                            input.main,
                            opaque
                                .types
                                .iter()
                                .map(|(ns, t)| if ns.is_empty() { t.clone() } else { format!("{ns}::{t}") })
                                .collect::<Vec<_>>()
                                .join(", ")
                        ));
                    }
                    return Ok(model);
                }
                Err(ParseFailure::Other(e)) => return Err(e),
                Err(ParseFailure::Errors(errors, all)) => {
                    if language == Language::Cxx && !input.stubs.is_empty() && opaque.learn(&all) {
                        continue;
                    }
                    first_errors.get_or_insert((language, errors));
                    break;
                }
            }
        }
    }
    let (language, errors) = first_errors.expect("at least one language was tried");
    Err(parse_error(input, language, &errors))
}

/// Types a C++ header names but whose (stubbed) include would declare.
#[derive(Default)]
struct OpaqueTypes {
    namespaces: std::collections::BTreeSet<String>,
    types: std::collections::BTreeSet<(String, String)>,
}

impl OpaqueTypes {
    /// Learns from clang's errors; false when nothing new was learnt.
    fn learn(&mut self, errors: &[String]) -> bool {
        let quoted = |text: &str, after: &str| -> Option<String> {
            let rest = &text[text.find(after)? + after.len()..];
            let rest = rest.strip_prefix('\'')?;
            Some(rest[..rest.find('\'')?].to_string())
        };
        let before = (self.namespaces.len(), self.types.len());
        for error in errors {
            let ident = |s: &String| s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if let (Some(t), Some(ns)) = (quoted(error, "no type named "), quoted(error, " in namespace ")) {
                if ident(&t) && ident(&ns) {
                    self.namespaces.insert(ns.clone());
                    self.types.insert((ns, t));
                }
            } else if let Some(ns) = quoted(error, "use of undeclared identifier ") {
                if ident(&ns) {
                    self.namespaces.insert(ns);
                }
            } else if let Some(t) = quoted(error, "unknown type name ") {
                if ident(&t) {
                    self.types.insert((String::new(), t));
                }
            }
        }
        before != (self.namespaces.len(), self.types.len())
    }

    fn declarations(&self) -> String {
        let mut out = String::new();
        for ns in &self.namespaces {
            out.push_str(&format!("namespace {ns} {{}}\n"));
        }
        for (ns, t) in &self.types {
            if ns.is_empty() {
                out.push_str(&format!("struct {t};\n"));
            } else {
                out.push_str(&format!("namespace {ns} {{ struct {t}; }}\n"));
            }
        }
        out
    }
}

enum ParseFailure {
    /// clang errors, as `file:line:col: message`: those that make the
    /// model wrong, then all of them.
    Errors(Vec<String>, Vec<String>),
    Other(anyhow::Error),
}

impl From<anyhow::Error> for ParseFailure {
    fn from(e: anyhow::Error) -> Self {
        ParseFailure::Other(e)
    }
}

fn parse_error(input: &TuInput, language: Language, errors: &[String]) -> anyhow::Error {
    let shown: Vec<_> = errors.iter().take(8).map(|m| format!("  {m}")).collect();
    let tried = if language == Language::C { "as C, nor as C++" } else { "as C++" };
    anyhow!(
        "clang cannot parse {} ({tried}, for {TARGET}); {} error(s):\n{}{}",
        input.main,
        errors.len(),
        shown.join("\n"),
        if errors.len() > 8 { "\n  ..." } else { "" }
    )
}

fn parse_one(index: &Index, input: &TuInput, language: Language, stub_text: &str) -> Result<TuModel, ParseFailure> {
    let mut unsaved: Vec<Unsaved> = input.files.iter().map(|(path, text)| Unsaved::new(format!("{ROOT}/{path}"), text)).collect();
    unsaved.extend(input.stubs.iter().map(|name| Unsaved::new(format!("{STUBS}/{name}"), stub_text)));
    unsaved.extend(BUILTIN_HEADERS.iter().map(|(name, text)| Unsaved::new(format!("{BUILTIN}/{name}"), text)));
    let (lang, std) = match language {
        Language::C => ("c", "-std=c11"),
        Language::Cxx => ("c++", "-std=c++17"),
    };
    let target = format!("--target={TARGET}");
    let args = ["-x", lang, std, &target, "-nostdinc", "-nostdinc++", "-I", ROOT, "-I", BUILTIN, "-I", STUBS, "-ferror-limit=0", "-w"];
    let tu = index
        .parser(format!("{ROOT}/{}", input.main))
        .arguments(&args)
        .unsaved(&unsaved)
        .detailed_preprocessing_record(true)
        .skip_function_bodies(true)
        .keep_going(true)
        .parse()
        .map_err(|e| anyhow!("libclang could not parse {}: {e}", input.main))?;

    let mut walker = Walker { input, decls: Vec::new(), spans: Vec::new(), seen: BTreeSet::new() };
    // A declaration clang cannot lay out is a parse failure like an error.
    let mut fatal = Vec::new();
    for child in tu.get_entity().get_children() {
        if let Err(e) = walker.visit(child) {
            fatal.push(format!("{e:#}"));
        }
    }

    let mut notes = Vec::new();
    let mut ignored = Vec::new();
    for diag in tu.get_diagnostics() {
        if diag.get_severity() < Severity::Error {
            continue;
        }
        let loc = diag.get_location().get_expansion_location();
        let file = loc.file.map(|f| relative(&f.get_path().to_string_lossy()).to_string()).unwrap_or_else(|| "<command line>".into());
        let message = format!("{file}:{}:{}: {}", loc.line, loc.column, diag.get_text());
        // A self-contained header must parse cleanly. One with stubbed
        // includes may fail in its C++-only code (which uses the stubbed
        // types) but never inside a declaration the model keeps.
        let in_model = walker.spans.iter().any(|(f, first, last)| *f == file && (*first..=*last).contains(&loc.line));
        if input.stubs.is_empty() || in_model {
            fatal.push(message);
        } else {
            ignored.push(message);
        }
    }
    if !fatal.is_empty() {
        let all = fatal.iter().chain(&ignored).cloned().collect();
        return Err(ParseFailure::Errors(fatal, all));
    }
    if !ignored.is_empty() {
        notes.push(format!(
            "{}: {} clang error(s) in C++-only code that uses stubbed includes were ignored (first: {})",
            input.main,
            ignored.len(),
            ignored[0]
        ));
    }
    Ok(TuModel { header: HeaderInfo { language, stubbed_includes: input.stubs.iter().cloned().collect() }, decls: walker.decls, notes })
}

/// Strips the virtual root from a path clang reports.
fn relative(path: &str) -> &str {
    for prefix in [ROOT, BUILTIN, STUBS] {
        if let Some(rest) = path.strip_prefix(prefix) {
            return rest.trim_start_matches('/');
        }
    }
    path
}

/// Drops `struct`/`enum`/`union` keywords (C spells them, C++ does not)
/// and file positions from anonymous types, so spellings compare across
/// languages and commits.
pub fn normalize_type(spelling: &str) -> String {
    let mut s = spelling.to_string();
    while let Some(start) = s.find("(unnamed").or_else(|| s.find("(anonymous")) {
        let end = s[start..].find(')').map_or(s.len(), |e| start + e + 1);
        s.replace_range(start..end, "<anonymous>");
    }
    // Drop a keyword wherever it starts a word: `(struct X *)`, `const enum E`.
    let mut out = String::with_capacity(s.len());
    let mut rest = s.as_str();
    'scan: while !rest.is_empty() {
        let at_word_start = out.chars().last().is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '_'));
        if at_word_start {
            for keyword in ["struct ", "enum ", "union "] {
                if let Some(after) = rest.strip_prefix(keyword) {
                    rest = after;
                    continue 'scan;
                }
            }
        }
        let c = rest.chars().next().unwrap();
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

struct Walker<'a> {
    input: &'a TuInput,
    decls: Vec<Decl>,
    /// (file, first line, last line) of every declaration kept.
    spans: Vec<(String, u32, u32)>,
    seen: BTreeSet<(&'static str, String)>,
}

impl Walker<'_> {
    /// The header an entity belongs to, if this unit models it: the main
    /// header, or a non-public helper header of `xla/pjrt/` it includes
    /// (public ones are modelled by their own unit).
    fn owner(&self, entity: &Entity) -> Option<String> {
        let loc = entity.get_location()?.get_expansion_location();
        let path = loc.file?.get_path();
        let path = path.to_str()?;
        let rel = path.strip_prefix(ROOT)?.trim_start_matches('/');
        if rel == self.input.main
            || (rel.starts_with("xla/pjrt/") && !crate::xla_headers::is_public_header(rel) && self.input.files.contains_key(rel))
        {
            Some(rel.to_string())
        } else {
            None
        }
    }

    fn push(&mut self, entity: &Entity, header: String, name: String, kind: DeclKind) -> Result<()> {
        if let Some(range) = entity.get_range() {
            let first = range.get_start().get_expansion_location().line;
            let last = range.get_end().get_expansion_location().line;
            self.spans.push((header.clone(), first, last));
        }
        if entity.is_invalid_declaration() && !matches!(kind, DeclKind::Macro(_) | DeclKind::StructSize(_)) {
            let loc = entity.get_location().map(|l| l.get_expansion_location().line).unwrap_or(0);
            bail!("clang marks the declaration of {name} at {header}:{loc} invalid; cannot model {}", self.input.main);
        }
        let decl = Decl { name, header, kind };
        if self.seen.insert(decl.key()) {
            self.decls.push(decl);
        }
        Ok(())
    }

    fn visit(&mut self, entity: Entity) -> Result<()> {
        match entity.get_kind() {
            // `extern "C" { ... }` (an unexposed declaration before clang 15).
            EntityKind::LinkageSpec | EntityKind::UnexposedDecl => {
                for child in entity.get_children() {
                    self.visit(child)?;
                }
                return Ok(());
            }
            // C++ namespaces hold helpers, not the C ABI.
            EntityKind::Namespace | EntityKind::InclusionDirective => return Ok(()),
            _ => {}
        }
        let Some(header) = self.owner(&entity) else { return Ok(()) };
        match entity.get_kind() {
            EntityKind::StructDecl | EntityKind::UnionDecl => {
                // An anonymous struct is named by its typedef.
                let Some(name) = entity.get_name() else { return Ok(()) };
                if entity.is_definition() {
                    let record = record(&entity)?;
                    self.push(&entity, header, name, DeclKind::Struct(record))?;
                } else if entity.get_definition().is_none() {
                    let union = entity.get_kind() == EntityKind::UnionDecl;
                    self.push(&entity, header, name, DeclKind::Struct(Struct { union, size: None, align: None, fields: vec![] }))?;
                }
            }
            EntityKind::EnumDecl => {
                let constants: Vec<_> =
                    entity.get_children().into_iter().filter(|c| c.get_kind() == EntityKind::EnumConstantDecl).collect();
                if entity.get_name().is_none() {
                    // PJRT_DEFINE_STRUCT_TRAITS' `enum { S_STRUCT_SIZE = ... }`
                    // is modelled as a struct size; other anonymous enums
                    // are named by their typedef, or by their first constant.
                    let is_typedefed = entity
                        .get_type()
                        .map(|t| t.get_display_name())
                        .is_some_and(|n| !n.contains("(unnamed") && !n.contains("(anonymous"));
                    if is_typedefed
                        || constants.is_empty()
                        || constants.iter().all(|c| c.get_name().unwrap_or_default().ends_with("_STRUCT_SIZE"))
                    {
                        return Ok(());
                    }
                    let first = constants[0].get_name().unwrap_or_default();
                    return self.push(&entity, header, format!("(anonymous enum {first})"), DeclKind::Enum(enumeration(&entity)));
                }
                if entity.is_definition() {
                    let name = entity.get_name().unwrap_or_default();
                    self.push(&entity, header, name, DeclKind::Enum(enumeration(&entity)))?;
                }
            }
            EntityKind::TypedefDecl | EntityKind::TypeAliasDecl => self.typedef(&entity, header)?,
            EntityKind::FunctionDecl => {
                let Some(name) = entity.get_name() else { return Ok(()) };
                if let Some(sig) = entity.get_type().and_then(|t| signature(&t)) {
                    self.push(&entity, header, name, DeclKind::Function(sig))?;
                }
            }
            EntityKind::MacroDefinition => self.macro_definition(&entity, header)?,
            EntityKind::MacroExpansion => {
                let name = entity.get_name().unwrap_or_default();
                if name == "PJRT_DEFINE_STRUCT_TRAITS" || name == "PJRT_STRUCT_SIZE" {
                    let tokens = tokens(&entity);
                    if let Some((sname, last)) = struct_size_args(&tokens[1..]) {
                        let size = StructSize { last_field: last, value: None, via: name };
                        self.push(&entity, header, sname, DeclKind::StructSize(size))?;
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn typedef(&mut self, entity: &Entity, header: String) -> Result<()> {
        let Some(name) = entity.get_name() else { return Ok(()) };
        let Some(underlying) = entity.get_typedef_underlying_type() else { return Ok(()) };
        let canonical = underlying.get_canonical_type();
        let declaration = canonical.get_declaration();
        // `typedef struct { ... } Name;` / `typedef enum { ... } Name;`: the
        // anonymous type takes the typedef's name.
        if let Some(decl) = declaration.filter(|d| d.get_name().is_none()) {
            match decl.get_kind() {
                EntityKind::StructDecl | EntityKind::UnionDecl if decl.is_definition() => {
                    let record = record(&decl)?;
                    return self.push(entity, header, name, DeclKind::Struct(record));
                }
                EntityKind::EnumDecl => return self.push(entity, header, name, DeclKind::Enum(enumeration(&decl))),
                _ => {}
            }
        }
        let spelled = normalize_type(&underlying.get_display_name());
        let canonical_name = normalize_type(&canonical.get_display_name());
        // `typedef struct X X;` is part of X's declaration, not a new name.
        if canonical_name == name && matches!(canonical.get_kind(), TypeKind::Record | TypeKind::Enum) {
            return Ok(());
        }
        let function = match canonical.get_kind() {
            TypeKind::FunctionPrototype | TypeKind::FunctionNoPrototype => signature(&underlying),
            _ => None,
        };
        self.push(entity, header, name, DeclKind::Typedef(Typedef { ty: spelled, canonical: canonical_name, function }))
    }

    fn macro_definition(&mut self, entity: &Entity, header: String) -> Result<()> {
        if entity.is_builtin_macro() || entity.is_function_like_macro() {
            return Ok(());
        }
        let Some(name) = entity.get_name() else { return Ok(()) };
        if name.ends_with("_H_") || name.ends_with("_H") {
            return Ok(()); // include guard
        }
        let tokens = tokens(entity);
        let body = if tokens.first() == Some(&name) { &tokens[1..] } else { &tokens[..] };
        if let Some(sname) = name.strip_suffix("_STRUCT_SIZE") {
            if body.first().map(String::as_str) == Some("PJRT_STRUCT_SIZE") {
                if let Some((s, last)) = struct_size_args(&body[1..]) {
                    if s == sname {
                        let size = StructSize { last_field: last, value: None, via: "PJRT_STRUCT_SIZE".into() };
                        return self.push(entity, header, s, DeclKind::StructSize(size));
                    }
                }
            }
        }
        self.push(entity, header, name, DeclKind::Macro(Macro { value: body.join(" ") }))
    }
}

fn tokens(entity: &Entity) -> Vec<String> {
    entity.get_range().map(|r| r.tokenize().iter().map(|t| t.get_spelling()).collect()).unwrap_or_default()
}

/// `( S , last )` -> (S, last).
fn struct_size_args(tokens: &[String]) -> Option<(String, String)> {
    match tokens {
        [open, s, comma, last, close, ..] if open == "(" && comma == "," && close == ")" => Some((s.clone(), last.clone())),
        _ => None,
    }
}

fn record(entity: &Entity) -> Result<Struct> {
    let ty = entity.get_type().ok_or_else(|| anyhow!("a struct without a type"))?;
    let mut fields = Vec::new();
    collect_fields(entity, &ty, &mut fields)?;
    Ok(Struct {
        union: entity.get_kind() == EntityKind::UnionDecl,
        size: ty.get_sizeof().ok().map(|s| s as u64),
        align: ty.get_alignof().ok().map(|a| a as u64),
        fields,
    })
}

/// Fields in declaration order; members of anonymous structs/unions are
/// flattened (C11 lets code name them directly), with offsets taken from
/// the outer record.
fn collect_fields(entity: &Entity, outer: &clang::Type, fields: &mut Vec<Field>) -> Result<()> {
    for child in entity.get_children() {
        match child.get_kind() {
            EntityKind::FieldDecl => {
                let Some(name) = child.get_name().filter(|n| !n.is_empty()) else { continue };
                let Some(ty) = child.get_type() else { continue };
                let offset = outer
                    .get_offsetof(&name)
                    .map_err(|e| anyhow!("clang cannot give the offset of field {name} in {}: {e:?}", outer.get_display_name()))?;
                fields.push(Field {
                    name,
                    ty: normalize_type(&ty.get_display_name()),
                    canonical: normalize_type(&ty.get_canonical_type().get_display_name()),
                    offset_bits: offset as u64,
                    size: ty.get_sizeof().ok().map(|s| s as u64),
                    bit_width: child.get_bit_field_width().map(|w| w as u64),
                });
            }
            EntityKind::StructDecl | EntityKind::UnionDecl if child.is_anonymous_record_decl() => {
                collect_fields(&child, outer, fields)?;
            }
            _ => {}
        }
    }
    Ok(())
}

fn enumeration(entity: &Entity) -> Enum {
    Enum {
        underlying: entity
            .get_enum_underlying_type()
            .map(|t| normalize_type(&t.get_canonical_type().get_display_name()))
            .unwrap_or_default(),
        scoped: entity.is_scoped(),
        enumerators: entity
            .get_children()
            .into_iter()
            .filter(|c| c.get_kind() == EntityKind::EnumConstantDecl)
            .map(|c| Enumerator { name: c.get_name().unwrap_or_default(), value: c.get_enum_constant_value().map_or(0, |(v, _)| v) })
            .collect(),
    }
}

fn signature(ty: &clang::Type) -> Option<Signature> {
    let canonical = ty.get_canonical_type();
    // Spelled parameter types when the type is written as a prototype,
    // canonical ones when it goes through another typedef.
    let written = if ty.get_result_type().is_some() { *ty } else { canonical };
    Some(Signature {
        result: normalize_type(&written.get_result_type()?.get_display_name()),
        params: written.get_argument_types().unwrap_or_default().iter().map(|t| normalize_type(&t.get_display_name())).collect(),
        canonical: normalize_type(&canonical.get_display_name()),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn type_spellings_compare_across_c_and_cxx() {
        assert_eq!(super::normalize_type("PJRT_Error *(*)(struct PJRT_Foo_Args *)"), "PJRT_Error *(*)(PJRT_Foo_Args *)");
        assert_eq!(super::normalize_type("const enum PJRT_Buffer_Type *"), "const PJRT_Buffer_Type *");
        assert_eq!(super::normalize_type("my_struct x"), "my_struct x");
        assert_eq!(super::normalize_type("struct (unnamed struct at /v/a.h:3:9)"), "<anonymous>");
    }
}
