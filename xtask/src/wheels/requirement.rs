//! What a wheel's METADATA says it requires (`Requires-Dist`, PEP 508), read
//! for a consumer that is not Python: a PJRT plugin loaded by a Rust, Go or
//! Elixir program. That is how a JAX GPU plugin's release names the NVIDIA
//! wheels it pairs with (`nvidia-cublas-cu12>=12.1.3.1; sys_platform ==
//! "linux" and extra == "with-cuda"`).
//!
//! Versions and specifiers are PEP 440 (the `pep440_rs` crate). The
//! requirement and marker grammar is parsed here, the subset wheels use:
//! a name, extras, specifiers, and a marker of `and`/`or`/parentheses over
//! string comparisons. A marker asking about the Python interpreter
//! (`python_version`...) has no answer outside Python and is an error, never
//! a guess; so is a direct URL reference (`name @ https://...`).

use std::str::FromStr;

use anyhow::{bail, Context, Result};
use pep440_rs::{Version, VersionSpecifiers};

/// One `Requires-Dist` entry.
#[derive(Debug, Clone)]
pub struct Requirement {
    /// Normalized (PEP 503): lowercase, runs of `-_.` as one `-`.
    pub name: String,
    /// The specifiers as written, without spaces (`<10.0,>=9.10.2.21`);
    /// empty when any version will do.
    pub specifier: String,
    pub specifiers: VersionSpecifiers,
    marker: Option<Marker>,
}

/// PEP 503 normalization: `amd_rocm_llvm_instinct` and `Amd-ROCm.LLVM-instinct`
/// name the same project, `amd-rocm-llvm-instinct`.
pub fn normalize_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !out.ends_with('-') {
                out.push('-');
            }
        } else {
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

impl FromStr for Requirement {
    type Err = anyhow::Error;

    fn from_str(line: &str) -> Result<Requirement> {
        parse(line).with_context(|| format!("cannot read the requirement `{}`", line.escape_debug()))
    }
}

fn parse(line: &str) -> Result<Requirement> {
    let (spec, marker) = match line.split_once(';') {
        Some((spec, marker)) => (spec, Some(marker)),
        None => (line, None),
    };
    let spec = spec.trim();
    let name_end = spec.find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))).unwrap_or(spec.len());
    let name = &spec[..name_end];
    if name.is_empty() || !name.starts_with(|c: char| c.is_ascii_alphanumeric()) || !name.ends_with(|c: char| c.is_ascii_alphanumeric()) {
        bail!("no project name at its start");
    }
    let mut rest = spec[name_end..].trim_start();
    if let Some(after) = rest.strip_prefix('[') {
        // Extras of the required project: they add its own requirements,
        // which are not ours to follow (we pin what the plugin names).
        let Some(end) = after.find(']') else { bail!("an unclosed `[` of extras") };
        rest = after[end + 1..].trim_start();
    }
    if rest.starts_with('@') {
        bail!("a direct URL reference: only PyPI releases are pinned");
    }
    let rest = rest.strip_prefix('(').and_then(|r| r.strip_suffix(')')).unwrap_or(rest);
    let specifier: String = rest.chars().filter(|c| !c.is_whitespace()).collect();
    let specifiers = if specifier.is_empty() {
        VersionSpecifiers::empty()
    } else {
        VersionSpecifiers::from_str(&specifier).map_err(|e| anyhow::anyhow!("bad version specifier `{specifier}`: {e}"))?
    };
    let marker = marker.map(|m| Marker::parse(m.trim())).transpose()?;
    Ok(Requirement { name: normalize_name(name), specifier, specifiers, marker })
}

impl Requirement {
    /// Whether the requirement applies to a plugin on the Nix `system`
    /// installed with `extra` (None: without extras).
    pub fn applies(&self, system: &str, extra: Option<&str>) -> Result<bool> {
        match &self.marker {
            None => Ok(true),
            Some(m) => m.eval(system, extra),
        }
    }

    /// Whether `version` satisfies the specifiers.
    pub fn allows(&self, version: &Version) -> bool {
        self.specifiers.contains(version)
    }

    /// The major release number of the lowest version the specifiers
    /// accept (`12` of `>=12.1.3.1`, `9` of `<10.0,>=9.10.2.21`); None
    /// when there is no lower bound.
    pub fn lower_bound_major(&self) -> Option<u64> {
        use pep440_rs::Operator::*;
        self.specifiers
            .iter()
            .filter(|s| matches!(s.operator(), Equal | EqualStar | ExactEqual | TildeEqual | GreaterThan | GreaterThanEqual))
            .filter_map(|s| s.version().release().first().copied())
            .max()
    }
}

/// The `Requires-Dist` entries and the `Provides-Extra` names (normalized)
/// of a METADATA file (RFC 822 headers, up to the first empty line).
pub fn from_metadata(metadata: &str) -> Result<(Vec<Requirement>, Vec<String>)> {
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in metadata.lines() {
        if line.is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            // A folded header continues the previous one.
            if let Some((_, value)) = headers.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
            continue;
        }
        if let Some((key, value)) = line.split_once(':') {
            headers.push((key.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    let mut requirements = Vec::new();
    let mut extras = Vec::new();
    for (key, value) in headers {
        match key.as_str() {
            "requires-dist" => requirements.push(value.parse()?),
            "provides-extra" => extras.push(normalize_name(&value)),
            _ => {}
        }
    }
    Ok((requirements, extras))
}

// ---- markers -----------------------------------------------------------------

#[derive(Debug, Clone)]
enum Marker {
    And(Box<Marker>, Box<Marker>),
    Or(Box<Marker>, Box<Marker>),
    Compare(Operand, Op, Operand),
}

#[derive(Debug, Clone)]
enum Operand {
    Variable(String),
    Text(String),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Equal,
    NotEqual,
    In,
    NotIn,
    /// `<`, `<=`, `>`, `>=`, `~=`, `===`: version comparisons, meaningful
    /// only for the interpreter's versions, which a plugin has none of.
    Version,
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Open,
    Close,
    Text(String),
    Word(String),
    Op(&'static str),
}

fn tokens(text: &str) -> Result<Vec<Token>> {
    let mut out = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some(&(i, c)) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '(' | ')' => {
                out.push(if c == '(' { Token::Open } else { Token::Close });
                chars.next();
            }
            '"' | '\'' => {
                chars.next();
                let start = i + 1;
                let end = text[start..].find(c).map(|n| start + n).with_context(|| format!("an unclosed string in the marker `{text}`"))?;
                out.push(Token::Text(text[start..end].to_owned()));
                while chars.peek().is_some_and(|&(j, _)| j <= end) {
                    chars.next();
                }
            }
            '<' | '>' | '=' | '!' | '~' => {
                let op = ["===", "==", "!=", "<=", ">=", "~=", "<", ">"]
                    .into_iter()
                    .find(|op| text[i..].starts_with(op))
                    .with_context(|| format!("an unknown operator at `{}` in the marker", &text[i..]))?;
                out.push(Token::Op(op));
                for _ in 0..op.len() {
                    chars.next();
                }
            }
            c if c.is_ascii_alphanumeric() || c == '_' || c == '.' => {
                let mut word = String::new();
                while let Some(&(_, c)) = chars.peek().filter(|(_, c)| c.is_ascii_alphanumeric() || *c == '_' || *c == '.') {
                    word.push(c);
                    chars.next();
                }
                out.push(Token::Word(word));
            }
            other => bail!("an unexpected `{other}` in the marker `{text}`"),
        }
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.at).cloned();
        self.at += 1;
        t
    }

    fn keyword(&mut self, word: &str) -> bool {
        if matches!(self.peek(), Some(Token::Word(w)) if w == word) {
            self.at += 1;
            return true;
        }
        false
    }

    fn or(&mut self, depth: usize) -> Result<Marker> {
        let mut left = self.and(depth)?;
        while self.keyword("or") {
            left = Marker::Or(Box::new(left), Box::new(self.and(depth)?));
        }
        Ok(left)
    }

    fn and(&mut self, depth: usize) -> Result<Marker> {
        let mut left = self.expr(depth)?;
        while self.keyword("and") {
            left = Marker::And(Box::new(left), Box::new(self.expr(depth)?));
        }
        Ok(left)
    }

    fn expr(&mut self, depth: usize) -> Result<Marker> {
        if self.peek() == Some(&Token::Open) {
            // A marker is one line of METADATA; nesting deeper than this is
            // an attack on the stack, not a requirement.
            if depth > 32 {
                bail!("a marker nested more than 32 parentheses deep");
            }
            self.at += 1;
            let inner = self.or(depth + 1)?;
            if self.next() != Some(Token::Close) {
                bail!("a `(` without its `)` in the marker");
            }
            return Ok(inner);
        }
        let left = self.operand()?;
        let op = match self.next() {
            Some(Token::Op("==")) => Op::Equal,
            Some(Token::Op("!=")) => Op::NotEqual,
            Some(Token::Op(_)) => Op::Version,
            Some(Token::Word(w)) if w == "in" => Op::In,
            Some(Token::Word(w)) if w == "not" && self.keyword("in") => Op::NotIn,
            other => bail!("expected a comparison in the marker, found {other:?}"),
        };
        Ok(Marker::Compare(left, op, self.operand()?))
    }

    fn operand(&mut self) -> Result<Operand> {
        match self.next() {
            Some(Token::Text(t)) => Ok(Operand::Text(t)),
            Some(Token::Word(w)) if !matches!(w.as_str(), "and" | "or" | "in" | "not") => Ok(Operand::Variable(w)),
            other => bail!("expected a marker variable or a quoted string, found {other:?}"),
        }
    }
}

impl Marker {
    fn parse(text: &str) -> Result<Marker> {
        let mut parser = Parser { tokens: tokens(text)?, at: 0 };
        let marker = parser.or(0)?;
        if let Some(t) = parser.peek() {
            bail!("unexpected {t:?} after the marker `{text}`");
        }
        Ok(marker)
    }

    fn eval(&self, system: &str, extra: Option<&str>) -> Result<bool> {
        Ok(match self {
            Marker::And(a, b) => a.eval(system, extra)? && b.eval(system, extra)?,
            Marker::Or(a, b) => a.eval(system, extra)? || b.eval(system, extra)?,
            Marker::Compare(left, op, right) => {
                let is_extra = [left, right].iter().any(|o| matches!(o, Operand::Variable(v) if v == "extra"));
                let value = |o: &Operand| -> Result<Option<String>> {
                    match o {
                        Operand::Text(t) if is_extra => Ok(Some(normalize_name(t))),
                        Operand::Text(t) => Ok(Some(t.clone())),
                        Operand::Variable(v) if v == "extra" => Ok(extra.map(normalize_name)),
                        Operand::Variable(v) => environment(v, system).map(Some),
                    }
                };
                let (l, r) = (value(left)?, value(right)?);
                match op {
                    Op::Version => bail!(
                        "a version comparison in a marker (`{left:?} {op:?} {right:?}`): only the interpreter has versions to compare"
                    ),
                    // Without an extra, `extra == "x"` is false and `!=` true.
                    Op::Equal => l.is_some() && l == r,
                    Op::NotEqual => l != r,
                    Op::In => matches!((&l, &r), (Some(l), Some(r)) if r.contains(l.as_str())),
                    Op::NotIn => !matches!((&l, &r), (Some(l), Some(r)) if r.contains(l.as_str())),
                }
            }
        })
    }
}

/// The value of a marker variable for a plugin on the Nix `system`.
fn environment(variable: &str, system: &str) -> Result<String> {
    let (arch, os) = system.split_once('-').unwrap_or((system, ""));
    Ok(match (variable, os) {
        ("sys_platform", os) => os.to_owned(),
        ("platform_system", "linux") => "Linux".to_owned(),
        ("platform_system", "darwin") => "Darwin".to_owned(),
        ("os_name", _) => "posix".to_owned(),
        ("platform_machine", "darwin") if arch == "aarch64" => "arm64".to_owned(),
        ("platform_machine", _) => arch.to_owned(),
        (other, _) => bail!(
            "the marker variable `{other}` describes the Python interpreter, which a plugin loaded outside Python does not have; \
             this requirement cannot be evaluated for {system}"
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn req(line: &str) -> Requirement {
        line.parse().unwrap()
    }

    #[test]
    fn jax_plugin_requirements() {
        let r = req(r#"nvidia-cudnn-cu12<10.0,>=9.10.2.21; sys_platform == "linux" and extra == "with-cuda""#);
        assert_eq!((r.name.as_str(), r.specifier.as_str()), ("nvidia-cudnn-cu12", "<10.0,>=9.10.2.21"));
        assert_eq!(r.lower_bound_major(), Some(9));
        assert!(r.applies("x86_64-linux", Some("with-cuda")).unwrap());
        assert!(r.applies("aarch64-linux", Some("With_CUDA")).unwrap());
        assert!(!r.applies("x86_64-linux", None).unwrap());
        assert!(!r.applies("aarch64-darwin", Some("with-cuda")).unwrap());
        assert!(r.allows(&"9.28.0.42".parse().unwrap()));
        assert!(!r.allows(&"10.0.0".parse().unwrap()));
        assert!(!r.allows(&"9.8.0".parse().unwrap()));

        let r = req(r#"nvidia-nvvm; extra == "with-cuda""#);
        assert_eq!((r.specifier.as_str(), r.lower_bound_major()), ("", None));
        assert!(r.allows(&"13.5.37".parse().unwrap()));
        let r = req("jax-cuda12-pjrt==0.12.0.1");
        assert!(r.applies("x86_64-linux", None).unwrap() && r.applies("x86_64-linux", Some("with-cuda")).unwrap());
        assert!(r.allows(&"0.12.0.1".parse().unwrap()) && !r.allows(&"0.12.0".parse().unwrap()));
        let r = req(r#"amd_rocm_hip_runtime_instinct; extra == "with-rocm""#);
        assert_eq!(r.name, "amd-rocm-hip-runtime-instinct");
        let r = req("Foo.Bar [x,y] (>=1.0, <2)");
        assert_eq!((r.name.as_str(), r.specifier.as_str()), ("foo-bar", ">=1.0,<2"));
    }

    #[test]
    fn markers() {
        let applies = |m: &str, system: &str, extra: Option<&str>| req(&format!("x; {m}")).applies(system, extra);
        assert!(applies(
            r#"(sys_platform == "linux" or sys_platform == "darwin") and platform_machine == "aarch64""#,
            "aarch64-linux",
            None
        )
        .unwrap());
        assert!(!applies(r#"platform_machine == "aarch64""#, "x86_64-linux", None).unwrap());
        assert!(applies(r#"platform_machine == "arm64""#, "aarch64-darwin", None).unwrap());
        assert!(applies(r#"'linux' in sys_platform and platform_system != "Windows""#, "x86_64-linux", None).unwrap());
        assert!(applies(r#"sys_platform not in "win32 cygwin""#, "x86_64-linux", None).unwrap());
        assert!(applies(r#"extra != "with-cuda""#, "x86_64-linux", None).unwrap());
        for unanswerable in [r#"python_version >= "3.11""#, r#"implementation_name == "cpython""#, r#"sys_platform >= "linux""#] {
            let err = applies(unanswerable, "x86_64-linux", None).unwrap_err();
            assert!(format!("{err:#}").contains("interpreter"), "{unanswerable}: {err:#}");
        }
        for bad in
            ["x; (", "x; sys_platform ==", r#"x; sys_platform == "linux"#, "x; a b c", r#"x @ https://e.org/x.whl"#, "", "[x]", "x (>=)"]
        {
            assert!(bad.parse::<Requirement>().is_err(), "{bad}");
        }
        let deep = format!("x; {}sys_platform == 'linux'{}", "(".repeat(100), ")".repeat(100));
        assert!(deep.parse::<Requirement>().is_err());
    }

    #[test]
    fn metadata() {
        let text = "Metadata-Version: 2.4\nName: jax-cuda13-plugin\nRequires-Dist: jax-cuda13-pjrt==0.12.0.1\nProvides-Extra: with-cuda\n\
                    Requires-Dist: nvidia-nvvm; extra ==\n  \"with-cuda\"\n\nRequires-Dist: not-a-header-but-the-body\n";
        let (reqs, extras) = from_metadata(text).unwrap();
        assert_eq!(extras, ["with-cuda"]);
        assert_eq!(reqs.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(), ["jax-cuda13-pjrt", "nvidia-nvvm"]);
        assert!(reqs[1].applies("x86_64-linux", Some("with-cuda")).unwrap());
    }

    proptest! {
        /// Whatever a wheel's METADATA holds, reading it never panics.
        #[test]
        fn never_panics(line in "[a-z_.()<>=!~;'\" \\[\\],0-9-]{0,60}") {
            if let Ok(r) = line.parse::<Requirement>() {
                let _ = r.applies("x86_64-linux", Some("with-cuda"));
                let _ = r.lower_bound_major();
            }
        }
    }
}
