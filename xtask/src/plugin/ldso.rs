//! A model of glibc's dynamic loader: which file each library name becomes,
//! for a plugin and everything it pulls in, without loading anything.
//!
//! The rules (glibc's `_dl_map_object`, checked against its own
//! `LD_DEBUG=libs` on Debian 12's glibc 2.36):
//! - a name already loaded (as a requested name or a DT_SONAME, or the same
//!   file) is that object; the loader itself is loaded from the start;
//! - a name with a `/` is a path, opened as is;
//! - otherwise, unless the requesting object has a DT_RUNPATH: the
//!   DT_RPATH of the requesting object, then of the object that loaded it,
//!   and so on up to the first one (an object with a DT_RUNPATH has no
//!   DT_RPATH); then LD_LIBRARY_PATH (`$ORIGIN` there is the first
//!   object's directory); then the requesting object's own DT_RUNPATH
//!   (never its loaders'); then `/etc/ld.so.cache`; then the default
//!   directories. DF_1_NODEFLIB on the requesting object skips the cache
//!   entries in default directories and the default directories;
//! - every search directory is tried with each active `glibc-hwcaps`
//!   subdirectory, then each legacy hwcap subdirectory, then itself;
//! - in a path list, `$ORIGIN` is the directory of the object (as it was
//!   opened: symlinks are not resolved), `$LIB` and `$PLATFORM` what the
//!   host's loader says ([`host`]); an unknown `$NAME` stays as written; an
//!   empty element is the current directory;
//! - a file of the wrong class, byte order, machine or OS ABI is skipped
//!   and the search goes on;
//! - dependencies are loaded breadth first; the first request of a name
//!   decides which object "loaded" it (its place in the RPATH chain).
//!
//! Libraries a plugin opens with `dlopen` go through the same rules with
//! the plugin as the requesting object ([`Closure::dlopen`]).

pub mod cache;
pub mod host;
pub mod object;

use std::collections::{HashMap, VecDeque};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

pub use host::Host;
pub use object::{Ident, ObjectFile};

/// How a request was answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Via {
    /// An object already in the process (or the loader itself).
    AlreadyLoaded,
    /// The name is a path.
    Path,
    /// DT_RPATH of the object at this index of [`Closure::objects`].
    Rpath {
        owner: usize,
    },
    LdLibraryPath,
    Runpath,
    Cache,
    DefaultDirectory,
}

impl Via {
    pub fn describe(&self, closure: &Closure) -> String {
        match self {
            Via::AlreadyLoaded => "already loaded".to_owned(),
            Via::Path => "a path".to_owned(),
            Via::Rpath { owner } => format!("RPATH of {}", closure.objects[*owner].display_name()),
            Via::LdLibraryPath => "LD_LIBRARY_PATH".to_owned(),
            Via::Runpath => "RUNPATH".to_owned(),
            Via::Cache => "/etc/ld.so.cache".to_owned(),
            Via::DefaultDirectory => "a default directory".to_owned(),
        }
    }
}

/// Why a request is a library, as far as is known.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Reason {
    /// A DT_NEEDED entry: the load fails without it.
    Needed,
    /// Opened at run time with `dlopen`; `evidence` says how that is known
    /// (a heuristic: names found in the binary).
    Dlopen { evidence: String },
}

/// A file skipped on the way (wrong class, unreadable).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejected {
    pub path: PathBuf,
    pub why: String,
}

/// One library name asked for by one object, and what became of it.
#[derive(Debug, Clone, Serialize)]
pub struct Request {
    /// Index of the requesting object in [`Closure::objects`].
    pub from: usize,
    pub name: String,
    pub reason: Reason,
    /// Index of the object it resolved to; `None`: not found.
    pub object: Option<usize>,
    pub via: Option<Via>,
    /// Files found but skipped.
    pub rejected: Vec<Rejected>,
    /// The directories searched, in order (without the hwcap subdirectories),
    /// for a request that was not found.
    pub searched: Vec<String>,
}

/// One object of the process.
#[derive(Debug, Serialize)]
pub struct Loaded {
    /// The path as the loader forms it (`$ORIGIN/../lib` expanded, not
    /// normalized), as `ldd` prints it.
    pub path: PathBuf,
    /// Names it answers to: the names it was requested by, and its soname.
    pub names: Vec<String>,
    /// The object whose request first loaded it (glibc's `l_loader`).
    pub loader: Option<usize>,
    /// The loader itself, in every process from the start.
    pub interpreter: bool,
    #[serde(skip)]
    pub object: Option<ObjectFile>,
    /// Why the file could not be read, when it could not.
    pub unreadable: Option<String>,
    #[serde(skip)]
    identity: Option<(u64, u64)>,
}

impl Loaded {
    pub fn display_name(&self) -> String {
        self.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| self.path.display().to_string())
    }

    /// `$ORIGIN`: the directory of the path it was opened by.
    fn origin(&self) -> Option<PathBuf> {
        self.path.parent().map(Path::to_path_buf)
    }
}

/// Everything a plugin pulls in, and how.
#[derive(Debug, Serialize)]
pub struct Closure {
    /// Index 0 is the loader (interpreter), index 1 the plugin.
    pub objects: Vec<Loaded>,
    pub requests: Vec<Request>,
}

/// The inputs of a resolution besides the files: the host's loader, the
/// environment it would see, and the current directory.
#[derive(Debug, Clone)]
pub struct Environment {
    pub host: Host,
    /// LD_LIBRARY_PATH as the process would see it.
    pub ld_library_path: Option<String>,
    pub cwd: PathBuf,
}

impl Environment {
    /// This machine, this process's environment and current directory.
    pub fn current() -> Environment {
        Environment {
            host: Host::detect(),
            ld_library_path: std::env::var("LD_LIBRARY_PATH").ok(),
            cwd: std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/")),
        }
    }
}

/// Whether `bytes[at..]` starts DST `name` (`NAME` or `{NAME}`); returns the
/// length consumed after the `$`.
fn dst_len(rest: &str, name: &str) -> Option<usize> {
    if let Some(inner) = rest.strip_prefix('{') {
        return inner.strip_prefix(name).filter(|r| r.starts_with('}')).map(|_| name.len() + 2);
    }
    let after = rest.strip_prefix(name)?;
    match after.chars().next() {
        Some(c) if c.is_ascii_alphanumeric() || c == '_' => None,
        _ => Some(name.len()),
    }
}

/// Expands `$ORIGIN`, `$LIB`, `$PLATFORM` (and their `${}` forms) in one
/// path element. `None` when `$ORIGIN` is needed and unknown (glibc drops
/// the element).
pub fn expand_tokens(element: &str, origin: Option<&Path>, host: &Host) -> Option<String> {
    let mut out = String::with_capacity(element.len());
    let mut rest = element;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(n) = dst_len(after, "ORIGIN") {
            out.push_str(origin?.to_str()?);
            rest = &after[n..];
        } else if let Some(n) = dst_len(after, "PLATFORM") {
            out.push_str(&host.platform);
            rest = &after[n..];
        } else if let Some(n) = dst_len(after, "LIB") {
            out.push_str(&host.lib);
            rest = &after[n..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Some(out)
}

/// The directories of a path list (RPATH, RUNPATH, LD_LIBRARY_PATH) as the
/// loader uses them: tokens expanded, trailing slashes dropped, duplicates
/// dropped, an empty element the current directory ("").
fn directories(list: &str, separators: &[char], origin: Option<&Path>, host: &Host) -> Vec<String> {
    let mut dirs: Vec<String> = Vec::new();
    for element in list.split(separators) {
        let Some(mut dir) = expand_tokens(element, origin, host) else { continue };
        while dir.len() > 1 && dir.ends_with('/') {
            dir.pop();
        }
        if !dirs.contains(&dir) {
            dirs.push(dir);
        }
    }
    dirs
}

/// The resolver: an [`Environment`] and what it has learnt about which
/// directories exist.
pub struct Resolver<'e> {
    env: &'e Environment,
    subdirs: Vec<String>,
    dir_exists: HashMap<PathBuf, bool>,
}

enum Search {
    Found(PathBuf, Via),
    NotFound,
}

impl<'e> Resolver<'e> {
    pub fn new(env: &'e Environment) -> Resolver<'e> {
        Resolver { env, subdirs: env.host.subdirectories(), dir_exists: HashMap::new() }
    }

    /// Resolves `plugin` and, breadth first, everything it needs.
    pub fn resolve(&mut self, plugin: &Path) -> Closure {
        let host = &self.env.host;
        let mut closure = Closure { objects: Vec::new(), requests: Vec::new() };
        let interp = ObjectFile::open(&host.interpreter);
        let mut names: Vec<String> = Vec::new();
        if let Ok(o) = &interp {
            names.extend(o.soname.clone());
        }
        if let Some(n) = host.interpreter.file_name().and_then(|n| n.to_str()) {
            if !names.iter().any(|x| x == n) {
                names.push(n.to_owned());
            }
        }
        closure.objects.push(Loaded {
            path: host.interpreter.clone(),
            names,
            loader: None,
            interpreter: true,
            identity: identity(&host.interpreter),
            unreadable: interp.as_ref().err().map(|e| format!("{e:#}")),
            object: interp.ok(),
        });
        let path = if plugin.is_absolute() { plugin.to_path_buf() } else { self.env.cwd.join(plugin) };
        let opened = ObjectFile::open(&path);
        closure.objects.push(Loaded {
            names: opened.as_ref().ok().and_then(|o| o.soname.clone()).into_iter().collect(),
            identity: identity(&path),
            path,
            loader: None,
            interpreter: false,
            unreadable: opened.as_ref().err().map(|e| format!("{e:#}")),
            object: opened.ok(),
        });
        self.load_dependencies(&mut closure, VecDeque::from([1]));
        closure
    }

    /// Resolves `name` as `dlopen` called from the object at `from` would,
    /// and what it needs in turn. Returns the index of the request.
    pub fn dlopen(&mut self, closure: &mut Closure, from: usize, name: &str, evidence: &str) -> usize {
        let before = closure.objects.len();
        let index = self.request(closure, from, name, Reason::Dlopen { evidence: evidence.to_owned() });
        self.load_dependencies(closure, (before..closure.objects.len()).collect());
        index
    }

    fn load_dependencies(&mut self, closure: &mut Closure, mut queue: VecDeque<usize>) {
        while let Some(index) = queue.pop_front() {
            let needed = closure.objects[index].object.as_ref().map(|o| o.needed.clone()).unwrap_or_default();
            for name in needed {
                let before = closure.objects.len();
                self.request(closure, index, &name, Reason::Needed);
                queue.extend(before..closure.objects.len());
            }
        }
    }

    /// Answers one request, adding what it loads to the closure.
    fn request(&mut self, closure: &mut Closure, from: usize, name: &str, reason: Reason) -> usize {
        let mut request =
            Request { from, name: name.to_owned(), reason, object: None, via: None, rejected: Vec::new(), searched: Vec::new() };
        if let Some(i) = closure.objects.iter().position(|o| o.names.iter().any(|n| n == name) || o.path.as_os_str() == name) {
            request.object = Some(i);
            request.via = Some(Via::AlreadyLoaded);
        } else {
            match self.search(closure, from, name, &mut request) {
                Search::Found(path, via) => {
                    let id = identity(&path);
                    let existing = id.and_then(|id| closure.objects.iter().position(|o| o.identity == Some(id)));
                    let index = match existing {
                        Some(i) => {
                            closure.objects[i].names.push(name.to_owned());
                            i
                        }
                        None => {
                            let opened = ObjectFile::open(&path);
                            let mut names = vec![name.to_owned()];
                            if let Some(s) = opened.as_ref().ok().and_then(|o| o.soname.clone()) {
                                if s != name {
                                    names.push(s);
                                }
                            }
                            closure.objects.push(Loaded {
                                path,
                                names,
                                loader: Some(from),
                                interpreter: false,
                                identity: id,
                                unreadable: opened.as_ref().err().map(|e| format!("{e:#}")),
                                object: opened.ok(),
                            });
                            closure.objects.len() - 1
                        }
                    };
                    request.object = Some(index);
                    request.via = Some(via);
                }
                Search::NotFound => {}
            }
        }
        closure.requests.push(request);
        closure.requests.len() - 1
    }

    fn search(&mut self, closure: &Closure, from: usize, name: &str, request: &mut Request) -> Search {
        let host = &self.env.host;
        let loader = &closure.objects[from];
        let object = loader.object.as_ref();
        if name.contains('/') {
            let path = PathBuf::from(name);
            let path = if path.is_absolute() { path } else { self.env.cwd.join(path) };
            return match self.candidate(&path, request) {
                true => Search::Found(path, Via::Path),
                false => Search::NotFound,
            };
        }
        let has_runpath = object.is_some_and(|o| o.runpath.is_some());
        if !has_runpath {
            let mut chain = Some(from);
            while let Some(i) = chain {
                let owner = &closure.objects[i];
                if let Some(rpath) = owner.object.as_ref().filter(|o| o.runpath.is_none()).and_then(|o| o.rpath.as_deref()) {
                    let dirs = directories(rpath, &[':'], owner.origin().as_deref(), host);
                    if let Some(found) = self.in_directories(&dirs, name, request) {
                        return Search::Found(found, Via::Rpath { owner: i });
                    }
                }
                chain = owner.loader;
            }
        }
        if let Some(list) = &self.env.ld_library_path {
            let main_origin = closure.objects.get(1).and_then(Loaded::origin);
            let dirs = directories(list, &[':', ';'], main_origin.as_deref(), host);
            if let Some(found) = self.in_directories(&dirs, name, request) {
                return Search::Found(found, Via::LdLibraryPath);
            }
        }
        if let Some(runpath) = object.and_then(|o| o.runpath.as_deref()) {
            let dirs = directories(runpath, &[':'], loader.origin().as_deref(), host);
            if let Some(found) = self.in_directories(&dirs, name, request) {
                return Search::Found(found, Via::Runpath);
            }
        }
        let nodeflib = object.is_some_and(|o| o.nodeflib);
        request.searched.push(host.cache_path.display().to_string());
        if let Some(entry) = host.cache.lookup(name, host.cache_flags, &host.hwcaps) {
            let in_default = host.system_dirs.iter().any(|d| entry.path.parent() == Some(d.as_path()) || entry.path.starts_with(d));
            if !(nodeflib && in_default) && self.candidate(&entry.path, request) {
                return Search::Found(entry.path.clone(), Via::Cache);
            }
        }
        if !nodeflib {
            let dirs: Vec<String> = host.system_dirs.iter().map(|d| d.display().to_string()).collect();
            if let Some(found) = self.in_directories(&dirs, name, request) {
                return Search::Found(found, Via::DefaultDirectory);
            }
        }
        Search::NotFound
    }

    fn in_directories(&mut self, dirs: &[String], name: &str, request: &mut Request) -> Option<PathBuf> {
        for dir in dirs {
            request.searched.push(if dir.is_empty() { ".".to_owned() } else { dir.clone() });
            for sub in self.subdirs.clone() {
                let directory = Path::new(dir).join(&sub);
                let key = if directory.as_os_str().is_empty() { PathBuf::from(".") } else { directory.clone() };
                let exists = *self.dir_exists.entry(key.clone()).or_insert_with(|| key.is_dir());
                if !exists {
                    continue;
                }
                let path = directory.join(name);
                if self.candidate(&path, request) {
                    return Some(path);
                }
            }
        }
        None
    }

    /// Whether the file at `path` exists and is one this process can map;
    /// a file that is not is recorded as rejected.
    fn candidate(&self, path: &Path, request: &mut Request) -> bool {
        if !path.is_file() {
            return false;
        }
        match Ident::of_file(path) {
            Ok(Some(ident)) => match ident.mismatch(&self.env.host.ident) {
                None => true,
                Some(why) => {
                    request.rejected.push(Rejected { path: path.to_path_buf(), why });
                    false
                }
            },
            Ok(None) => {
                request.rejected.push(Rejected { path: path.to_path_buf(), why: "not an ELF file".to_owned() });
                false
            }
            Err(e) => {
                request.rejected.push(Rejected { path: path.to_path_buf(), why: format!("{e:#}") });
                false
            }
        }
    }
}

fn identity(path: &Path) -> Option<(u64, u64)> {
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

impl Closure {
    /// The plugin itself.
    pub fn plugin(&self) -> &Loaded {
        &self.objects[1]
    }

    /// Resolves, with `resolver`, what the object at `from` opens at run
    /// time (`names`, with the evidence for each).
    pub fn dlopen(&mut self, resolver: &mut Resolver<'_>, from: usize, names: &[(String, String)]) {
        for (name, evidence) in names {
            resolver.dlopen(self, from, name, evidence);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host() -> Host {
        Host {
            interpreter: PathBuf::from("/lib64/ld-linux-x86-64.so.2"),
            ident: Ident { bits: 64, little_endian: true, os_abi: 0, machine: 62, file_type: 3 },
            system_dirs: vec![PathBuf::from("/lib/x86_64-linux-gnu")],
            hwcaps: Vec::new(),
            legacy_subdirs: Vec::new(),
            platform: "x86_64".into(),
            lib: "lib/x86_64-linux-gnu".into(),
            cache: Default::default(),
            cache_path: PathBuf::from("/etc/ld.so.cache"),
            cache_flags: Some(0x303),
            source: "test".into(),
        }
    }

    #[test]
    fn tokens_expand_as_glibc_does() {
        let h = host();
        let o = Some(Path::new("/opt/p"));
        assert_eq!(expand_tokens("$ORIGIN/../lib", o, &h).unwrap(), "/opt/p/../lib");
        assert_eq!(expand_tokens("${ORIGIN}/x", o, &h).unwrap(), "/opt/p/x");
        assert_eq!(expand_tokens("/a/$LIB/$PLATFORM", o, &h).unwrap(), "/a/lib/x86_64-linux-gnu/x86_64");
        assert_eq!(expand_tokens("/a/${LIB}x", o, &h).unwrap(), "/a/lib/x86_64-linux-gnux");
        // Not tokens: an identifier goes on, or the name is unknown.
        assert_eq!(expand_tokens("/n/$ORIGINX/$FOO", o, &h).unwrap(), "/n/$ORIGINX/$FOO");
        assert_eq!(expand_tokens("$ORIGIN", None, &h), None);
    }

    #[test]
    fn path_lists_keep_order_drop_duplicates_and_empty_means_here() {
        let h = host();
        assert_eq!(directories("/a/:/b::/a:", &[':'], None, &h), ["/a", "/b", ""]);
        assert_eq!(directories("/", &[':'], None, &h), ["/"]);
    }
}
