//! The rules of pins.toml. Every finding is located: the dotted key it is
//! about and the line:column of its value in the file.
//!
//! Severities and what `pins check` makes of them:
//! - `Error`: the file is invalid (bad syntax, type, unknown key, format, or
//!   a cross-field contradiction such as a Bazel major version mismatch).
//!   Exit 1.
//! - `Stale`: valid, but a pin must be recomputed before it can be used
//!   (a [bazel_deps] hash that is the placeholder, or that was computed for
//!   another XLA commit). Exit 3 when there is no error.
//! - `Warning`: valid, but a build may not do what the pins say (nixpkgs'
//!   Bazel, as pinned, differs from XLA's .bazelversion below the major
//!   version: the build goes on with nixpkgs' Bazel). Exit 0.
//! - `Note`: worth knowing, changes nothing (a prebuilt plugin's unknown API
//!   version). Exit 0.

use std::fmt;
use std::ops::Range;

use serde::Serialize;
use toml_edit::{Document, Item};

use super::formats::{is_hex_sha256, is_member_path, is_project_name, segment, wheel_url_problems};
use super::{Pins, PREBUILT_BACKENDS, SCHEMA_VERSION, SOURCE_BACKENDS, STALE_HASH, SYSTEMS, UNKNOWN};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Note,
    Warning,
    Stale,
    Error,
}

/// One thing `pins check` says about the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub severity: Severity,
    /// Dotted key path, e.g. `xla.commit` (empty for the whole file).
    pub key: String,
    /// 1-based line and column, when known.
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
    /// The file the finding is about.
    pub origin: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let severity = match self.severity {
            Severity::Error => "error",
            Severity::Stale => "stale",
            Severity::Note => "note",
            Severity::Warning => "warning",
        };
        write!(f, "{}", self.origin)?;
        if let (Some(line), Some(column)) = (self.line, self.column) {
            write!(f, ":{line}:{column}")?;
        }
        write!(f, ": {severity}: ")?;
        if !self.key.is_empty() {
            write!(f, "`{}`: ", self.key)?;
        }
        write!(f, "{}", self.message)
    }
}

/// The outcome of checking a file: the typed model when it could be built,
/// and every finding.
#[derive(Debug, Clone)]
pub struct Report {
    pub pins: Option<Pins>,
    pub findings: Vec<Finding>,
}

impl Report {
    pub fn has_errors(&self) -> bool {
        self.findings.iter().any(|f| f.severity == Severity::Error)
    }

    /// (errors, stale pins).
    pub fn counts(&self) -> (usize, usize) {
        let count = |s| self.findings.iter().filter(|f| f.severity == s).count();
        (count(Severity::Error), count(Severity::Stale))
    }

    /// 0 valid, 1 invalid, 3 (`EXIT_STALE`) valid with stale pins.
    pub fn exit_code(&self) -> u8 {
        match self.counts() {
            (0, 0) => 0,
            (0, _) => super::EXIT_STALE,
            _ => crate::output::EXIT_ERROR,
        }
    }

    /// Every error, one per line, for an `anyhow` error message.
    pub fn errors_text(&self) -> String {
        let errors: Vec<String> = self.findings.iter().filter(|f| f.severity == Severity::Error).map(|f| f.to_string()).collect();
        format!("invalid pins.toml:\n{}", errors.join("\n"))
    }
}

/// Checks `text` (the contents of pins.toml; `origin` names it).
pub fn check(text: &str, origin: &str) -> Report {
    let mut ctx = Ctx { text, origin, doc: None, findings: Vec::new() };
    let doc = match Document::parse(text) {
        Ok(doc) => doc,
        Err(err) => {
            let (line, column) = err.span().map(|s| line_col(text, s.start)).unzip();
            ctx.findings.push(Finding {
                severity: Severity::Error,
                key: String::new(),
                line,
                column,
                message: format!("not valid TOML: {}", err.message().trim_end()),
                origin: origin.to_owned(),
            });
            return Report { pins: None, findings: ctx.findings };
        }
    };
    ctx.doc = Some(&doc);
    let pins: Pins = match toml::from_str(text) {
        Ok(pins) => pins,
        Err(err) => {
            let span = err.span();
            let key = span.as_ref().map(|s| key_at(doc.as_table(), s.start)).unwrap_or_default();
            let (line, column) = span.map(|s| line_col(text, s.start)).unzip();
            ctx.findings.push(Finding {
                severity: Severity::Error,
                key,
                line,
                column,
                message: err.message().trim_end().to_owned(),
                origin: origin.to_owned(),
            });
            return Report { pins: None, findings: ctx.findings };
        }
    };
    rules(&pins, &mut ctx);
    let mut findings = ctx.findings;
    // In file order, as a reader goes through the file (findings without a
    // location first; a stable sort keeps the rules' order within a line).
    findings.sort_by_key(|f| (f.line, f.column));
    Report { pins: Some(pins), findings }
}

struct Ctx<'a> {
    text: &'a str,
    origin: &'a str,
    doc: Option<&'a Document<&'a str>>,
    findings: Vec<Finding>,
}

impl Ctx<'_> {
    fn push(&mut self, severity: Severity, key: &str, message: impl Into<String>) {
        let path: Vec<&str> = split_key(key);
        let span = self.doc.and_then(|doc| span_of(doc.as_table(), &path));
        let (line, column) = span.map(|s| line_col(self.text, s.start)).unzip();
        self.findings.push(Finding {
            severity,
            key: key.to_owned(),
            line,
            column,
            message: message.into(),
            origin: self.origin.to_owned(),
        });
    }

    fn error(&mut self, key: &str, message: impl Into<String>) {
        self.push(Severity::Error, key, message);
    }

    /// Checks `value` with `valid`, reporting `what` it should be.
    fn format(&mut self, key: &str, value: &str, valid: fn(&str) -> bool, what: &str) {
        if !valid(value) {
            self.error(key, format!("`{value}` is not {what}"));
        }
    }
}

/// Splits a dotted key whose segments may be quoted (`"a.b"`).
fn split_key(key: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut rest = key;
    while !rest.is_empty() {
        if let Some(quoted) = rest.strip_prefix('"') {
            let end = quoted.find('"').unwrap_or(quoted.len());
            parts.push(&quoted[..end]);
            rest = quoted.get(end + 1..).unwrap_or("");
            rest = rest.strip_prefix('.').unwrap_or(rest);
        } else {
            let end = rest.find('.').unwrap_or(rest.len());
            parts.push(&rest[..end]);
            rest = rest.get(end + 1..).unwrap_or("");
        }
    }
    parts
}

fn rules(pins: &Pins, ctx: &mut Ctx<'_>) {
    if pins.schema_version != SCHEMA_VERSION {
        ctx.error("schema_version", format!("this xtask reads schema {SCHEMA_VERSION}, the file says {}", pins.schema_version));
    }

    let x = &pins.xla;
    if !x.repository.starts_with("https://") {
        ctx.error("xla.repository", format!("`{}` is not an https URL", x.repository));
    }
    ctx.format("xla.commit", &x.commit, is_commit, "a full commit id (40 lowercase hex digits)");
    ctx.format("xla.hash", &x.hash, is_sri_sha256, "an SRI sha256 hash (`sha256-` + base64 of 32 bytes)");
    ctx.format("xla.date", &x.date, is_rfc3339, "an RFC 3339 date with an offset (2026-02-20T22:36:47-08:00)");
    ctx.format("xla.pjrt_api_version", &x.pjrt_api_version, is_api_version, "a PJRT API version MAJOR.MINOR");
    ctx.format("xla.bazel_version", &x.bazel_version, is_version, "a version (7.7.0)");

    let bazel = &pins.toolchains.bazel;
    ctx.format("toolchains.bazel.version", &bazel.version, is_version, "a version (7.7.0)");
    if is_version(&bazel.version) && is_version(&x.bazel_version) {
        let major = super::version_major;
        if major(&bazel.version) != major(&x.bazel_version) {
            ctx.error(
                "toolchains.bazel.version",
                format!(
                    "Bazel {} cannot build XLA, whose .bazelversion is {}: the major versions must match (pick the nixpkgs attribute bazel_{})",
                    bazel.version,
                    x.bazel_version,
                    major(&x.bazel_version)
                ),
            );
        } else if bazel.version != x.bazel_version {
            ctx.push(
                Severity::Warning,
                "toolchains.bazel.version",
                format!(
                    "nixpkgs' {} (Bazel {}) differs from XLA's .bazelversion {} below the major version: the source builds run Bazel {} and record it \
                     in version_info.json (Nix evaluation also warns when nixpkgs' {} is not {})",
                    bazel.nixpkgs_attribute, bazel.version, x.bazel_version, bazel.version, bazel.nixpkgs_attribute, bazel.version
                ),
            );
        }
    }
    ctx.format("toolchains.bazel.nixpkgs_attribute", &bazel.nixpkgs_attribute, is_attribute, "a nixpkgs attribute name");

    for (name, cuda) in [("cuda12", &pins.cuda12), ("cuda13", &pins.cuda13)] {
        let Some(c) = cuda else { continue };
        for (field, value) in [
            ("cuda_version", &c.cuda_version),
            ("cudnn_version", &c.cudnn_version),
            ("nccl_version", &c.nccl_version),
            ("nvshmem_version", &c.nvshmem_version),
        ] {
            ctx.format(&format!("{name}.{field}"), value, is_version, "a version (12.9.1)");
        }
        let want_major = &name[4..];
        if is_version(&c.cuda_version) && super::version_major(&c.cuda_version) != want_major {
            ctx.error(&format!("{name}.cuda_version"), format!("[{name}] pins CUDA {}", c.cuda_version));
        }
        ctx.format(&format!("{name}.nixpkgs_attribute"), &c.nixpkgs_attribute, is_attribute, "a nixpkgs attribute name");
        list(
            ctx,
            &format!("{name}.compute_capabilities"),
            &c.compute_capabilities,
            is_compute_capability,
            "sm_XX or compute_XX (sm_90, sm_100a, compute_120)",
        );
        for (setting, why) in &c.overrides {
            let key = format!("{name}.overrides.{}", segment(setting));
            if !is_hermetic_setting(setting) {
                ctx.error(&key, format!("`{setting}` is not a HERMETIC_* setting of XLA's bazelrc"));
            }
            if why.trim().is_empty() {
                ctx.error(&key, "say why the build gives XLA something else here");
            }
        }
        for (system, w) in &c.nvshmem_wheel {
            let key = format!("{name}.nvshmem_wheel.{}", segment(system));
            if !SYSTEMS.contains(&system.as_str()) {
                ctx.error(&key, format!("`{system}` is not a known Nix system ({})", SYSTEMS.join(", ")));
            }
            ctx.format(&format!("{key}.sha256"), &w.sha256, is_hex_sha256, "a sha256 in lowercase hex (64 digits)");
            for problem in wheel_url_problems(&w.url, &c.nvshmem_version, system) {
                ctx.error(&format!("{key}.url"), format!("{problem} (nvshmem_version)"));
            }
            let project = format!("nvidia_nvshmem_cu{want_major}-");
            if !w.url.rsplit('/').next().unwrap_or("").starts_with(&project) {
                ctx.error(&format!("{key}.url"), format!("not NVIDIA's NVSHMEM wheel for CUDA {want_major} (`{project}*.whl`)"));
            }
        }
    }
    match &pins.rules_ml_toolchain {
        Some(r) => {
            ctx.format("rules_ml_toolchain.commit", &r.commit, is_commit, "a full commit id (40 lowercase hex digits)");
            if r.nvshmem_libraries.is_empty() {
                ctx.error(
                    "rules_ml_toolchain.nvshmem_libraries",
                    "empty list: name the libraries rules_ml_toolchain's NVSHMEM template imports",
                );
            }
            for l in &r.nvshmem_libraries {
                if !is_library_name(l) {
                    ctx.error(
                        "rules_ml_toolchain.nvshmem_libraries",
                        format!("`{}` is not a library name (libnvshmem_host)", l.escape_debug()),
                    );
                }
            }
        }
        None if pins.cuda12.is_some() || pins.cuda13.is_some() => ctx.error(
            "rules_ml_toolchain",
            "the CUDA builds need [rules_ml_toolchain] (commit, nvshmem_libraries): the NVSHMEM libraries XLA's rules import",
        ),
        None => {}
    }
    if let Some(r) = &pins.rocm7 {
        if !r.distro_version.starts_with("rocm_7") {
            ctx.error("rocm7.distro_version", format!("`{}` is not a ROCm 7 distribution (rocm_7.x...)", r.distro_version));
        }
        ctx.format("rocm7.nixpkgs_attribute", &r.nixpkgs_attribute, is_attribute, "a nixpkgs attribute name");
        list(ctx, "rocm7.gpu_targets", &r.gpu_targets, is_gfx_target, "an AMDGPU target (gfx90a, gfx942, gfx1100)");
    }

    // A backend used by a source build or a prebuilt plugin needs its
    // toolchain table: Nix reads it for that package and fails to evaluate
    // without it.
    for (backend, present) in [("cuda12", pins.cuda12.is_some()), ("cuda13", pins.cuda13.is_some()), ("rocm7", pins.rocm7.is_some())] {
        if present {
            continue;
        }
        if pins.bazel_deps.contains_key(backend) {
            ctx.error(
                &format!("bazel_deps.{backend}"),
                format!("[bazel_deps.{backend}.*] needs the [{backend}] table, which is missing (Nix cannot evaluate pjrt-{backend} without it): add [{backend}] back, or remove these tables"),
            );
        }
        for name in pins.prebuilt.iter().filter(|(_, p)| p.backend == backend).map(|(name, _)| name) {
            ctx.error(
                &format!("prebuilt.{}.backend", segment(name)),
                format!("backend `{backend}` needs the [{backend}] table, which is missing (Nix takes the {backend} libraries the plugin links against from it)"),
            );
        }
    }

    for (name, p) in &pins.prebuilt {
        let key = format!("prebuilt.{}", segment(name));
        if !is_project_name(name) {
            ctx.error(
                &key,
                format!(
                    "`{}` is not a PyPI project name (letters, digits, `.`, `_`, `-`; starting and ending with a letter or digit)",
                    name.escape_debug()
                ),
            );
        }
        ctx.format(&format!("{key}.version"), &p.version, is_pep440ish, "a version");
        if let Some(commit) = &p.xla_commit {
            ctx.format(&format!("{key}.xla_commit"), commit, is_commit, "a full commit id (40 lowercase hex digits)");
        }
        if !PREBUILT_BACKENDS.contains(&p.backend.as_str()) {
            ctx.error(&format!("{key}.backend"), format!("`{}` is not one of {}", p.backend, PREBUILT_BACKENDS.join(", ")));
        }
        if p.pjrt_api_version == UNKNOWN {
            let why = p.pjrt_api_version_note.as_deref().unwrap_or("no reason recorded");
            ctx.push(Severity::Note, &format!("{key}.pjrt_api_version"), format!("unknown: {why}"));
        } else {
            ctx.format(
                &format!("{key}.pjrt_api_version"),
                &p.pjrt_api_version,
                is_api_version,
                "a PJRT API version MAJOR.MINOR or \"unknown\"",
            );
        }
        if p.platforms.is_empty() {
            ctx.error(&format!("{key}.platforms"), "no platform pinned");
        }
        for (system, w) in &p.platforms {
            let key = format!("{key}.platforms.{}", segment(system));
            if !SYSTEMS.contains(&system.as_str()) {
                ctx.error(&key, format!("`{system}` is not a known Nix system ({})", SYSTEMS.join(", ")));
            }
            ctx.format(&format!("{key}.sha256"), &w.sha256, is_hex_sha256, "a sha256 in lowercase hex (64 digits)");
            for problem in wheel_url_problems(&w.url, &p.version, system) {
                ctx.error(&format!("{key}.url"), problem);
            }
            if !is_member_path(&w.library) {
                ctx.error(&format!("{key}.library"), format!("`{}` is not a relative path inside the wheel", w.library.escape_debug()));
            }
        }
        if let Some(runtime) = &p.runtime {
            // GPU plugins are Linux-only: the runtime follows the plugin's Linux wheels.
            let systems: Vec<&str> = p.platforms.keys().map(String::as_str).filter(|s| s.ends_with("-linux")).collect();
            let shared = |table: &str| {
                let cuda = match table.split('.').next() {
                    Some("cuda12") => pins.cuda12.as_ref(),
                    Some("cuda13") => pins.cuda13.as_ref(),
                    _ => None,
                }?;
                (!cuda.nvshmem_wheel.is_empty()).then(|| (cuda.nvshmem_version.clone(), cuda.nvshmem_wheel.keys().cloned().collect()))
            };
            let rkey = format!("{key}.runtime");
            super::runtime::check(runtime, &rkey, &systems, &shared, &mut |k, m| ctx.error(k, m));
            if !runtime.unavailable.is_empty() {
                let names: Vec<&str> = runtime.unavailable.keys().map(String::as_str).collect();
                ctx.push(
                    Severity::Note,
                    &format!("{rkey}.unavailable"),
                    format!(
                        "{} runtime requirement(s) of {} {} not pinned ({}): `prebuilt fetch {name} --with-runtime` refuses",
                        names.len(),
                        runtime.paired_with,
                        runtime.paired_version,
                        names.join(", ")
                    ),
                );
            }
        }
    }

    for (backend, systems) in &pins.bazel_deps {
        let bkey = format!("bazel_deps.{}", segment(backend));
        if !SOURCE_BACKENDS.contains(&backend.as_str()) {
            ctx.error(&bkey, format!("`{backend}` is not a source-built backend ({})", SOURCE_BACKENDS.join(", ")));
        }
        for (system, deps) in systems {
            let key = format!("{bkey}.{}", segment(system));
            if !SYSTEMS.contains(&system.as_str()) {
                ctx.error(&key, format!("`{system}` is not a known Nix system ({})", SYSTEMS.join(", ")));
            }
            if !is_sri_sha256(&deps.hash) {
                ctx.error(&format!("{key}.hash"), format!("`{}` is not an SRI sha256 hash", deps.hash));
                continue;
            }
            if let Some(commit) = &deps.xla_commit {
                ctx.format(&format!("{key}.xla_commit"), commit, is_commit, "a full commit id (40 lowercase hex digits)");
            }
            if deps.hash == STALE_HASH {
                ctx.push(Severity::Stale, &format!("{key}.hash"), "placeholder hash: not computed yet");
            } else if deps.xla_commit.as_deref() != Some(pins.xla.commit.as_str()) {
                let was = deps.xla_commit.as_deref().unwrap_or("an unrecorded commit");
                ctx.push(Severity::Stale, &format!("{key}.hash"), format!("computed for XLA {was}, not the pinned {}", pins.xla.commit));
            }
        }
    }
    if let Some(release) = &pins.release {
        super::release::check(release, &mut |key, message| ctx.error(key, message));
    }
}

fn list(ctx: &mut Ctx<'_>, key: &str, values: &[String], valid: fn(&str) -> bool, what: &str) {
    if values.is_empty() {
        ctx.error(key, "empty list: name the targets explicitly, they are never probed");
    }
    for v in values {
        if !valid(v) {
            ctx.error(key, format!("`{v}` is not {what}"));
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    for v in values {
        if !seen.insert(v) {
            ctx.error(key, format!("`{v}` is listed twice"));
        }
    }
}

// ---- formats ---------------------------------------------------------------

pub(crate) fn is_commit(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// `sha256-` + standard padded base64 that decodes to exactly 32 bytes.
pub(crate) fn is_sri_sha256(s: &str) -> bool {
    crate::hashing::NarHash::from_sri(s).is_ok()
}

/// Dotted numeric version: 7.7.0, 12.9.1, 2.27.7 (at least two parts).
pub(crate) fn is_version(s: &str) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    parts.len() >= 2 && parts.iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// PyPI versions: numeric release, optionally with PEP 440 suffixes (0.9.1.post1, 0.6.0rc1).
fn is_pep440ish(s: &str) -> bool {
    !s.is_empty()
        && s.starts_with(|c: char| c.is_ascii_digit())
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'+' || b == b'-' || b == b'_')
}

/// MAJOR.MINOR without leading zeros, each a value a plugin can report:
/// `PJRT_Api_Version` holds them as C `int`s.
fn is_api_version(s: &str) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    parts.len() == 2 && is_version(s) && parts.iter().all(|p| (p.len() == 1 || !p.starts_with('0')) && p.parse::<i32>().is_ok())
}

fn is_rfc3339(s: &str) -> bool {
    match s.parse::<toml::value::Datetime>() {
        Ok(dt) => dt.date.is_some() && dt.time.is_some() && dt.offset.is_some() && s.as_bytes().get(10) == Some(&b'T'),
        Err(_) => false,
    }
}

fn is_attribute(s: &str) -> bool {
    !s.is_empty()
        && s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && s.split('.').all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'))
}

/// `HERMETIC_` + upper-case letters, digits, `_`: a setting of XLA's bazelrc.
fn is_hermetic_setting(s: &str) -> bool {
    s.strip_prefix("HERMETIC_")
        .is_some_and(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_'))
}

/// A shared library's name without directory or `.so` (libnvshmem_host):
/// it reaches an install script.
fn is_library_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 100
        && !s.starts_with(['.', '-'])
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-')
}

/// sm_XX / compute_XX with an optional arch-specific `a` / family `f` suffix.
fn is_compute_capability(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("sm_").or_else(|| s.strip_prefix("compute_")) else {
        return false;
    };
    let digits = rest.strip_suffix(['a', 'f']).unwrap_or(rest);
    (2..=3).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) && !digits.starts_with('0')
}

/// gfx + 3 or 4 hex-ish digits (gfx90a, gfx942, gfx1100, gfx1201), with an
/// optional feature suffix (gfx90a:xnack+).
fn is_gfx_target(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("gfx") else { return false };
    let id = rest.split(':').next().unwrap_or("");
    (3..=4).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        && id.as_bytes()[0].is_ascii_digit()
        && rest.split(':').skip(1).all(|f| f.ends_with(['+', '-']) && f.len() > 1)
}

// ---- locations -------------------------------------------------------------

/// 1-based line and column (in characters) of byte `offset`.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

/// The span of the value at `path` (or of the deepest existing table on it).
fn span_of(table: &toml_edit::Table, path: &[&str]) -> Option<Range<usize>> {
    let (first, rest) = path.split_first()?;
    let Some((key, item)) = table.get_key_value(first) else {
        return table.span();
    };
    if rest.is_empty() {
        return item_span(item).or_else(|| key.span());
    }
    match item {
        Item::Table(t) => span_of(t, rest).or_else(|| t.span()).or_else(|| key.span()),
        Item::Value(toml_edit::Value::InlineTable(t)) => {
            let (k, _) = rest.split_first()?;
            t.get(k).and_then(|v| v.span()).or_else(|| t.span())
        }
        other => item_span(other).or_else(|| key.span()),
    }
}

fn item_span(item: &Item) -> Option<Range<usize>> {
    match item {
        Item::Value(v) => v.span(),
        Item::Table(t) => t.span(),
        Item::ArrayOfTables(a) => a.span(),
        Item::None => None,
    }
}

/// The dotted key whose span is the innermost one holding `offset`.
fn key_at(table: &toml_edit::Table, offset: usize) -> String {
    fn walk(table: &toml_edit::Table, offset: usize, path: &mut Vec<String>, best: &mut Option<(usize, Vec<String>)>) {
        for (key, item) in table.iter() {
            path.push(segment(key));
            let key_span = table.key(key).and_then(|k| k.span());
            let spans = [key_span, item_span(item)];
            for span in spans.into_iter().flatten() {
                if span.contains(&offset) || span.start == offset {
                    let width = span.end - span.start;
                    if best.as_ref().is_none_or(|(w, _)| width <= *w) {
                        *best = Some((width, path.clone()));
                    }
                }
            }
            if let Item::Table(t) = item {
                walk(t, offset, path, best);
            }
            path.pop();
        }
    }
    let mut best = None;
    walk(table, offset, &mut Vec::new(), &mut best);
    best.map(|(_, p)| p.join(".")).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert!(is_sri_sha256(STALE_HASH));
        assert!(is_sri_sha256("sha256-K0lveAY1nXeFA9FIV3nXhEJ0r589CNaVp/M5heUo1BY="));
        assert!(!is_sri_sha256("sha256-K0lveAY1nXeFA9FIV3nXhEJ0r589CNaVp/M5heUo1B="));
        assert!(!is_sri_sha256("sha512-K0lveAY1nXeFA9FIV3nXhEJ0r589CNaVp/M5heUo1BY="));
        assert!(is_commit("964a0a45a0c3090cd484a3c51e8f9d05ed10b968"));
        assert!(!is_commit("964A0a45a0c3090cd484a3c51e8f9d05ed10b968"));
        assert!(!is_commit("964a0a45"));
        assert!(is_rfc3339("2026-02-20T22:36:47-08:00"));
        assert!(is_rfc3339("2026-02-20T22:36:47Z"));
        assert!(!is_rfc3339("2026-02-20T22:36:47"));
        assert!(!is_rfc3339("2026-02-20"));
        assert!(!is_rfc3339("2026-02-30T22:36:47Z"));
        assert!(is_api_version("0.93") && is_api_version("1.0") && !is_api_version("0.093") && !is_api_version("0"));
        assert!(is_api_version("2147483647.0") && !is_api_version("0.2147483648") && !is_api_version("0.99999999999999999999"));
        for ok in ["xla-cpu-pjrt", "libtpu", "jax_cuda12.pjrt", "A1"] {
            assert!(is_project_name(ok), "{ok}");
        }
        for bad in ["../../../x", "a b", "-x", "x-", ".x", "x/y", "", "é"] {
            assert!(!is_project_name(bad), "{bad}");
        }
        for ok in ["a.so", "pkg/lib/a.so", ".hidden/a.so"] {
            assert!(is_member_path(ok), "{ok}");
        }
        for bad in ["", "/a.so", "a/../b.so", "a//b", "./a.so", "a/.", "a\\b"] {
            assert!(!is_member_path(bad), "{bad}");
        }
        for ok in ["sm_50", "sm_100", "sm_90a", "sm_100f", "compute_120"] {
            assert!(is_compute_capability(ok), "{ok}");
        }
        for bad in ["sm50", "sm_5", "sm_1000", "compute_", "sm_90x", "gfx90a"] {
            assert!(!is_compute_capability(bad), "{bad}");
        }
        for ok in ["gfx908", "gfx90a", "gfx942", "gfx1030", "gfx1100", "gfx90a:xnack+"] {
            assert!(is_gfx_target(ok), "{ok}");
        }
        for bad in ["gfx", "gfx9", "gfx90g", "sm_90", "gfx90a:xnack"] {
            assert!(!is_gfx_target(bad), "{bad}");
        }
    }

    #[test]
    fn split_and_locate() {
        assert_eq!(split_key("prebuilt.\"a.b\".platforms.x86_64-linux"), ["prebuilt", "a.b", "platforms", "x86_64-linux"]);
        assert_eq!(line_col("ab\ncdé\nx", 8), (3, 1));
        assert_eq!(line_col("ab\ncdé\nx", 5), (2, 3));
    }
}
