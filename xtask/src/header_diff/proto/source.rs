//! The .proto files of one snapshot: the roots and every file they import,
//! read from the snapshot (git blobs or a directory), written to a scratch
//! directory under their import names and compiled there by protoc into a
//! `FileDescriptorSet`.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use anyhow::{bail, Context, Result};
use prost::Message;

use super::super::source::Snapshot;
use super::descriptor::FileDescriptorSet;
use super::model::ProtoModel;
use crate::tools::Tool;

/// Where an import name may live in the XLA tree: at its name, or under
/// `third_party/tsl/` (TSL's protos, `tsl/protobuf/*.proto`, before they
/// moved to `xla/tsl/`).
const IMPORT_ROOTS: &[&str] = &["", "third_party/tsl/"];

/// The well-known types, which protoc carries itself.
const PROTOC_OWN: &str = "google/protobuf/";

/// The files of one snapshot that the diff compiles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtoFiles {
    /// The snapshot, for messages.
    pub describe: String,
    /// The root files present (see [`super::ROOTS`]), by import name.
    pub roots: Vec<String>,
    /// Import name -> contents, for the roots and every in-tree file they
    /// import, recursively.
    pub files: BTreeMap<String, Vec<u8>>,
    /// Imports found nowhere in the tree.
    pub unresolved: Vec<String>,
}

impl ProtoFiles {
    pub fn collect(snapshot: &Snapshot, roots: &[&[&str]]) -> Result<ProtoFiles> {
        let mut found = ProtoFiles { describe: snapshot.describe(), roots: Vec::new(), files: BTreeMap::new(), unresolved: Vec::new() };
        let mut queue = VecDeque::new();
        for candidates in roots {
            for path in *candidates {
                if let Some(bytes) = snapshot.read(path)? {
                    found.roots.push(path.to_string());
                    queue.push_back((path.to_string(), bytes));
                    break;
                }
            }
        }
        while let Some((name, bytes)) = queue.pop_front() {
            if found.files.contains_key(&name) {
                continue;
            }
            for import in imports(&String::from_utf8_lossy(&bytes)) {
                if import.starts_with(PROTOC_OWN) || found.files.contains_key(&import) || queue.iter().any(|(n, _)| *n == import) {
                    continue;
                }
                let mut located = None;
                // A name that leaves the tree is neither read nor written
                // (protoc rejects it too, naming it).
                for root in IMPORT_ROOTS.iter().filter(|_| stays_in_tree(&import)) {
                    if let Some(bytes) = snapshot.read(&format!("{root}{import}"))? {
                        located = Some(bytes);
                        break;
                    }
                }
                match located {
                    Some(bytes) => queue.push_back((import, bytes)),
                    None if !found.unresolved.contains(&import) => found.unresolved.push(import),
                    None => {}
                }
            }
            found.files.insert(name, bytes);
        }
        Ok(found)
    }

    /// Starts protoc on these files; [`Compilation::finish`] collects the
    /// model. Two compilations run side by side (and beside libclang).
    pub fn compile(&self) -> Result<Compilation> {
        if self.roots.is_empty() {
            // Nothing to compile (a tree without these schemas): an empty model.
            return Ok(Compilation { child: None, out: PathBuf::new(), protoc: PathBuf::new(), _dir: None, files: self.clone() });
        }
        let dir = tempfile::Builder::new().prefix("pjrtpkgs-protos-").tempdir().context("cannot create a scratch directory for protoc")?;
        let src = dir.path().join("src");
        for (name, bytes) in &self.files {
            let path = src.join(name);
            std::fs::create_dir_all(path.parent().expect("an import name has a file name"))
                .and_then(|()| std::fs::write(&path, bytes))
                .with_context(|| format!("cannot write {} for protoc", path.display()))?;
        }
        let out = dir.path().join("descriptors.pb");
        let protoc = Tool::Protoc.locate()?;
        // Run in the scratch tree: the roots' names are then both their paths
        // and their import names (never files of the caller's directory).
        let child = Command::new(&protoc)
            .current_dir(&src)
            .arg("--include_imports")
            .arg(format!("--descriptor_set_out={}", out.display()))
            .arg("--proto_path=.")
            .args(&self.roots)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot run protoc ({}); set PROTOC to a working protoc 27 or newer", protoc.display()))?;
        Ok(Compilation { child: Some(child), out, protoc, _dir: Some(dir), files: self.clone() })
    }
}

/// Whether an import name is a plain relative path (`a/b.proto`): no
/// absolute path, no `.`, `..` or empty component, no backslash. Only such
/// a name is looked up in the snapshot and written into protoc's scratch
/// tree, which any other could escape.
fn stays_in_tree(name: &str) -> bool {
    !name.is_empty() && !name.contains('\\') && name.split('/').all(|c| !c.is_empty() && c != "." && c != "..")
}

/// A protoc run under way.
pub struct Compilation {
    child: Option<Child>,
    out: PathBuf,
    protoc: PathBuf,
    _dir: Option<tempfile::TempDir>,
    files: ProtoFiles,
}

impl Compilation {
    pub fn finish(mut self) -> Result<ProtoModel> {
        let files = &self.files;
        let Some(child) = self.child.take() else { return Ok(ProtoModel::default()) };
        let output = child.wait_with_output().context("cannot wait for protoc")?;
        if !output.status.success() {
            let unresolved = if files.unresolved.is_empty() {
                String::new()
            } else {
                format!("\nImports found nowhere in the tree (at their name or under {}): {}", IMPORT_ROOTS[1], files.unresolved.join(", "))
            };
            bail!(
                "protoc cannot compile the protobuf schemas of {} ({}; {} exited with {}):\n{}{unresolved}\n\
                 Set PROTOC to another protoc (27 or newer), or pass --no-protos to compare the C API headers only.",
                files.describe,
                files.roots.join(", "),
                self.protoc.display(),
                output.status,
                String::from_utf8_lossy(&output.stderr).trim_end()
            );
        }
        let bytes = std::fs::read(&self.out).with_context(|| format!("protoc wrote no {}", self.out.display()))?;
        let set = FileDescriptorSet::decode(bytes.as_slice()).context("cannot decode the FileDescriptorSet protoc wrote")?;
        ProtoModel::from_descriptors(&set, files.roots.clone()).with_context(|| format!("in the protobuf schemas of {}", files.describe))
    }
}

impl Drop for Compilation {
    fn drop(&mut self) {
        // A compilation dropped unfinished (the other side failed) leaves no protoc behind.
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The files a .proto file imports (`import "x.proto";`, also `public`,
/// `weak` and edition 2024's `option` imports), in order. A small lexer:
/// comments and strings are skipped, an `import` counts only where a
/// statement starts. protoc parses the files for real; this only decides
/// which files it is given, and protoc names any it then misses.
pub fn imports(text: &str) -> Vec<String> {
    #[derive(PartialEq)]
    enum Token {
        Word(String),
        Str(String),
        Punct(char),
    }
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {}
            '/' if chars.peek() == Some(&'/') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut prev = ' ';
                for c in chars.by_ref() {
                    if prev == '*' && c == '/' {
                        break;
                    }
                    prev = c;
                }
            }
            '"' | '\'' => {
                let mut s = String::new();
                while let Some(d) = chars.next() {
                    match d {
                        '\\' => {
                            if let Some(e) = chars.next() {
                                s.push(e);
                            }
                        }
                        d if d == c => break,
                        d => s.push(d),
                    }
                }
                tokens.push(Token::Str(s));
            }
            c if c.is_alphanumeric() || c == '_' => {
                let mut w = c.to_string();
                while let Some(&d) = chars.peek() {
                    if d.is_alphanumeric() || d == '_' || d == '.' {
                        w.push(d);
                        chars.next();
                    } else {
                        break;
                    }
                }
                tokens.push(Token::Word(w));
            }
            c => tokens.push(Token::Punct(c)),
        }
    }
    let mut found = Vec::new();
    for (i, t) in tokens.iter().enumerate() {
        let starts_statement = i == 0 || matches!(tokens[i - 1], Token::Punct(';' | '{' | '}'));
        if !starts_statement || *t != Token::Word("import".into()) {
            continue;
        }
        let mut next = i + 1;
        if matches!(tokens.get(next), Some(Token::Word(w)) if matches!(w.as_str(), "public" | "weak" | "option")) {
            next += 1;
        }
        if let Some(Token::Str(name)) = tokens.get(next) {
            found.push(name.clone());
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::{imports, stays_in_tree};

    #[test]
    fn import_names_that_leave_the_tree() {
        assert!(stays_in_tree("xla/xla_data.proto") && stays_in_tree("tsl/protobuf/dnn.proto"));
        for bad in ["", "/etc/x.proto", "../x.proto", "xla/../../x.proto", "xla//x.proto", "./x.proto", "xla\\x.proto", "xla/"] {
            assert!(!stays_in_tree(bad), "{bad}");
        }
    }

    #[test]
    fn import_statements_only() {
        let text = r#"// import "commented.proto";
syntax = "proto3";
/* import "block.proto"; */
import "xla/xla_data.proto";
import public "a/b.proto";
import weak 'c.proto';
import option "d.proto";
message M { string import = 1; string s = 2 [default = "import \"x.proto\";"]; }
import
  "split.proto";
"#;
        assert_eq!(imports(text), ["xla/xla_data.proto", "a/b.proto", "c.proto", "d.proto", "split.proto"]);
    }
}
