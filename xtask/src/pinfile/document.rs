//! Edits of pins.toml that keep every comment, the key order and the table
//! order. A value set to what it already is leaves the bytes untouched, so
//! an edit that changes nothing renders the identical file.

use std::path::Path;

use anyhow::{Context, Result};
use toml_edit::{DocumentMut, Item, Table, Value};

use super::{Pins, PrebuiltPin, RuntimePin, XlaPin, STALE_HASH};

/// pins.toml as an editable document.
#[derive(Debug, Clone)]
pub struct PinsDocument {
    doc: DocumentMut,
}

impl PinsDocument {
    /// Parses `text`; only TOML syntax is checked here (see `Pins::parse`).
    pub fn parse(text: &str) -> Result<PinsDocument> {
        let doc = text.parse::<DocumentMut>().map_err(|e| {
            let at = e.span().map(|s| {
                let (l, c) = super::check::line_col(text, s.start);
                format!(" at {l}:{c}")
            });
            anyhow::anyhow!("pins.toml is not valid TOML{}: {}", at.unwrap_or_default(), e.message().trim_end())
        })?;
        Ok(PinsDocument { doc })
    }

    pub fn read(path: &Path) -> Result<PinsDocument> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        PinsDocument::parse(&text).with_context(|| format!("in {}", path.display()))
    }

    /// `[xla] commit` as the document holds it, unvalidated (`write`
    /// validates); `None` when absent or not a string.
    pub fn xla_commit(&self) -> Option<&str> {
        self.doc.get("xla")?.get("commit")?.as_str()
    }

    /// The typed, validated view of the document as it is now.
    pub fn pins(&self) -> Result<Pins> {
        Pins::parse(&self.to_string(), "pins.toml (edited)")
    }

    /// Sets every field of [xla].
    pub fn set_xla(&mut self, xla: &XlaPin) {
        let t = self.table(&["xla"], Anchor::End);
        set_str(t, "repository", &xla.repository);
        set_str(t, "commit", &xla.commit);
        set_str(t, "hash", &xla.hash);
        set_str(t, "date", &xla.date);
        set_str(t, "pjrt_api_version", &xla.pjrt_api_version);
        set_str(t, "bazel_version", &xla.bazel_version);
    }

    /// Sets `toolchains.bazel.version` and the matching nixpkgs attribute
    /// (`bazel_<major>`).
    pub fn set_bazel_version(&mut self, version: &str) {
        let t = self.table(&["toolchains", "bazel"], Anchor::End);
        set_str(t, "version", version);
        set_str(t, "nixpkgs_attribute", &format!("bazel_{}", super::version_major(version)));
    }

    /// Marks every [bazel_deps] hash as unknown: the placeholder hash, and no
    /// `xla_commit` (it described the hash being dropped).
    pub fn mark_bazel_deps_stale(&mut self) {
        let Some(Item::Table(deps)) = self.doc.get_mut("bazel_deps") else { return };
        for (_, backend) in deps.iter_mut() {
            let Item::Table(backend) = backend else { continue };
            for (_, system) in backend.iter_mut() {
                let Item::Table(system) = system else { continue };
                set_str(system, "hash", STALE_HASH);
                system.remove("xla_commit");
            }
        }
    }

    /// Marks the Bazel dependency hash of `backend` on `system` as unknown
    /// (the placeholder, no `xla_commit`). Creates the table when needed.
    pub fn mark_bazel_deps_hash_stale(&mut self, backend: &str, system: &str) {
        let t = self.table(&["bazel_deps", backend, system], Anchor::AfterLast(&["bazel_deps"]));
        set_str(t, "hash", STALE_HASH);
        t.remove("xla_commit");
    }

    /// Records the Bazel dependency hash of `backend` on `system`, computed
    /// for `xla_commit`. Creates the table when needed.
    pub fn set_bazel_deps_hash(&mut self, backend: &str, system: &str, hash: &str, xla_commit: &str) {
        let t = self.table(&["bazel_deps", backend, system], Anchor::AfterLast(&["bazel_deps"]));
        set_str(t, "hash", hash);
        set_str(t, "xla_commit", xla_commit);
    }

    /// Sets [prebuilt.<name>] and its platform tables to `pin`; platforms not
    /// in `pin` are removed. A new plugin goes after the last pinned one (or
    /// before [bazel_deps] when it is the first).
    pub fn set_prebuilt(&mut self, name: &str, pin: &PrebuiltPin) {
        let first = !matches!(self.doc.get("prebuilt"), Some(Item::Table(t)) if !t.is_empty());
        let anchor = if first { Anchor::Before(&["bazel_deps"]) } else { Anchor::AfterLast(&["prebuilt"]) };
        self.table(&["prebuilt", name], anchor);
        if first {
            self.move_prebuilt_comment(name);
        }
        let t = self.table(&["prebuilt", name], Anchor::End);
        set_str(t, "version", &pin.version);
        set_str(t, "backend", &pin.backend);
        set_str(t, "pjrt_api_version", &pin.pjrt_api_version);
        match &pin.pjrt_api_version_note {
            Some(note) => set_str(t, "pjrt_api_version_note", note),
            None => {
                t.remove("pjrt_api_version_note");
            }
        }
        match &pin.xla_commit {
            Some(commit) => set_str(t, "xla_commit", commit),
            None => {
                t.remove("xla_commit");
            }
        }
        // Platforms: drop those no longer pinned, then set each.
        if let Some(Item::Table(platforms)) = t.get_mut("platforms") {
            let gone: Vec<String> = platforms.iter().map(|(k, _)| k.to_owned()).filter(|k| !pin.platforms.contains_key(k)).collect();
            for k in gone {
                platforms.remove(&k);
            }
        }
        for (system, wheel) in &pin.platforms {
            let t = self.table(&["prebuilt", name, "platforms", system], Anchor::AfterLast(&["prebuilt", name]));
            set_str(t, "url", &wheel.url);
            set_str(t, "sha256", &wheel.sha256);
            set_str(t, "library", &wheel.library);
        }
        self.set_runtime(name, pin.runtime.as_ref());
    }

    /// Sets [prebuilt.<name>.runtime] and its tables to `runtime` (removed
    /// when None). Unchanged, the text stays as it is; changed, the tables
    /// are written anew after the plugin's others (they are generated).
    fn set_runtime(&mut self, name: &str, runtime: Option<&RuntimePin>) {
        if self.runtime(name).as_ref() == runtime {
            return;
        }
        if let Some(Item::Table(t)) = self.doc.get_mut("prebuilt").and_then(|p| p.get_mut(name)) {
            t.remove("runtime");
        }
        let Some(runtime) = runtime else { return };
        let after = Anchor::AfterLast(&["prebuilt", name]);
        let t = self.table(&["prebuilt", name, "runtime"], after);
        set_str(t, "paired_with", &runtime.paired_with);
        set_str(t, "paired_version", &runtime.paired_version);
        set_str(t, "extra", &runtime.extra);
        if !runtime.unavailable.is_empty() {
            let t = self.table(&["prebuilt", name, "runtime", "unavailable"], after);
            for (project, why) in &runtime.unavailable {
                set_str(t, project, why);
            }
        }
        for (project, wheel) in &runtime.wheels {
            let t = self.table(&["prebuilt", name, "runtime", "wheels", project], after);
            set_str(t, "requirement", &wheel.requirement);
            set_str(t, "version", &wheel.version);
            if let Some(table) = &wheel.pinned_in {
                set_str(t, "pinned_in", table);
            }
            for (system, w) in &wheel.platforms {
                let t = self.table(&["prebuilt", name, "runtime", "wheels", project, "platforms", system], after);
                set_str(t, "url", &w.url);
                set_str(t, "sha256", &w.sha256);
            }
        }
    }

    /// [prebuilt.<name>.runtime] as the document holds it now, when it
    /// reads as one.
    fn runtime(&self, name: &str) -> Option<RuntimePin> {
        let item = self.doc.get("prebuilt")?.get(name)?.get("runtime")?.clone();
        let mut doc = DocumentMut::new();
        doc.insert("runtime", item);
        #[derive(serde::Deserialize)]
        struct Wrapper {
            runtime: RuntimePin,
        }
        toml::from_str::<Wrapper>(&doc.to_string()).ok().map(|w| w.runtime)
    }

    /// `[release] build`, when the document has one that is an integer.
    pub fn release_build(&self) -> Option<u32> {
        self.doc.get("release")?.get("build")?.as_integer().and_then(|n| u32::try_from(n).ok())
    }

    /// Sets `[release] build` (the build number of the next release).
    pub fn set_release_build(&mut self, build: u32) {
        let t = self.table(&["release"], Anchor::Before(&["bazel_deps"]));
        set_int(t, "build", i64::from(build));
    }

    /// Called by `upgrade-xla` before it sets the new [xla]: when the PJRT
    /// API version changes, the release versions start a new series
    /// (`v0.<new minor>.1`); when it stays, the counter keeps counting, as
    /// the versions it gave out under the old commit are taken. A document
    /// without [release] is left alone.
    pub fn reset_release_build_for(&mut self, new_pjrt_api_version: &str) {
        let current = self.doc.get("xla").and_then(|x| x.get("pjrt_api_version")).and_then(|v| v.as_str());
        if current != Some(new_pjrt_api_version) && self.release_build().is_some() {
            self.set_release_build(1);
        }
    }

    /// Removes [prebuilt.<name>]; false when it was not pinned.
    pub fn remove_prebuilt(&mut self, name: &str) -> bool {
        match self.doc.get_mut("prebuilt") {
            Some(Item::Table(t)) => t.remove(name).is_some(),
            _ => false,
        }
    }

    /// Writes the document to `path` atomically, after checking it is valid
    /// (a document with errors is never written).
    pub fn write(&self, path: &Path) -> Result<()> {
        let text = self.to_string();
        Pins::parse(&text, &path.display().to_string()).context("refusing to write an invalid pins.toml")?;
        crate::fsutil::write_atomic(path, text.as_bytes())
    }

    /// The table at `path`, created (with implicit parents) where `anchor`
    /// says when it does not exist yet.
    fn table(&mut self, path: &[&str], anchor: Anchor<'_>) -> &mut Table {
        if !table_exists(self.doc.as_table(), path) {
            let position = self.insertion_position(anchor);
            let mut t = self.doc.as_table_mut();
            for (i, key) in path.iter().enumerate() {
                let last = i + 1 == path.len();
                if !matches!(t.get(key), Some(Item::Table(_))) {
                    let mut new = Table::new();
                    new.set_implicit(!last);
                    new.set_position(Some(position));
                    t.insert(key, Item::Table(new));
                }
                t = match t.get_mut(key) {
                    Some(Item::Table(next)) => next,
                    _ => unreachable!("inserted above"),
                };
            }
        }
        let mut t = self.doc.as_table_mut();
        for key in path {
            t = match t.get_mut(key) {
                Some(Item::Table(next)) => next,
                _ => unreachable!("exists"),
            };
        }
        t
    }

    /// Where a new table goes; every table at or after that position is
    /// shifted down by one so the new one takes the free slot.
    fn insertion_position(&mut self, anchor: Anchor<'_>) -> isize {
        let mut positions = Vec::new();
        collect_positions(self.doc.as_table(), &mut Vec::new(), &mut positions);
        let end = positions.iter().map(|(p, _)| *p).max().unwrap_or(0) + 1;
        let under = |prefix: &[&str], path: &Vec<String>| path.len() >= prefix.len() && path.iter().zip(prefix).all(|(a, b)| a == b);
        let at = match anchor {
            Anchor::End => end,
            Anchor::AfterLast(prefix) => positions.iter().filter(|(_, p)| under(prefix, p)).map(|(p, _)| p + 1).max().unwrap_or(end),
            Anchor::Before(prefix) => positions.iter().filter(|(_, p)| under(prefix, p)).map(|(p, _)| *p).min().unwrap_or(end),
        };
        shift_positions(self.doc.as_table_mut(), at);
        at
    }

    /// pins.toml explains [prebuilt] in a comment above [bazel_deps] until a
    /// plugin is pinned; the first one takes that comment along.
    fn move_prebuilt_comment(&mut self, name: &str) {
        let Some(Item::Table(deps)) = self.doc.get_mut("bazel_deps") else { return };
        let Some(first) = first_positioned_mut(deps) else { return };
        let prefix = first.decor().prefix().and_then(|p| p.as_str()).unwrap_or("").to_owned();
        let paragraphs: Vec<&str> = prefix.split("\n\n").collect();
        let Some(i) = paragraphs.iter().position(|p| p.contains("[prebuilt")) else { return };
        if i + 1 >= paragraphs.len() {
            return;
        }
        let moved = format!("{}\n", paragraphs[..=i].join("\n\n"));
        let kept = format!("\n{}", paragraphs[i + 1..].join("\n\n"));
        first.decor_mut().set_prefix(kept);
        if let Some(Item::Table(t)) = self.doc.get_mut("prebuilt").and_then(|p| p.get_mut(name)) {
            t.decor_mut().set_prefix(moved);
        }
    }
}

impl std::fmt::Display for PinsDocument {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.doc.fmt(f)
    }
}

#[derive(Clone, Copy)]
enum Anchor<'a> {
    End,
    /// After the last table under this prefix (else at the end).
    AfterLast(&'a [&'a str]),
    /// Before the first table under this prefix (else at the end).
    Before(&'a [&'a str]),
}

fn table_exists(mut t: &Table, path: &[&str]) -> bool {
    for key in path {
        match t.get(key) {
            Some(Item::Table(next)) => t = next,
            _ => return false,
        }
    }
    true
}

/// Sets `key` to the string `value`, keeping the old value's decor (a
/// trailing comment, spacing); nothing changes when the value is the same.
fn set_str(t: &mut Table, key: &str, value: &str) {
    if let Some(Item::Value(old)) = t.get_mut(key) {
        if old.as_str() == Some(value) {
            return;
        }
        let decor = old.decor().clone();
        let mut new = Value::from(value);
        *new.decor_mut() = decor;
        *old = new;
        return;
    }
    t.insert(key, toml_edit::value(value));
}

/// Sets `key` to the integer `value` like [`set_str`].
fn set_int(t: &mut Table, key: &str, value: i64) {
    if let Some(Item::Value(old)) = t.get_mut(key) {
        if old.as_integer() == Some(value) {
            return;
        }
        let decor = old.decor().clone();
        let mut new = Value::from(value);
        *new.decor_mut() = decor;
        *old = new;
        return;
    }
    t.insert(key, toml_edit::value(value));
}

/// (position, dotted path) of every positioned, explicit table.
fn collect_positions(t: &Table, path: &mut Vec<String>, out: &mut Vec<(isize, Vec<String>)>) {
    for (key, item) in t.iter() {
        if let Item::Table(child) = item {
            path.push(key.to_owned());
            if let Some(p) = child.position() {
                if !child.is_implicit() {
                    out.push((p, path.clone()));
                }
            }
            collect_positions(child, path, out);
            path.pop();
        }
    }
}

fn shift_positions(t: &mut Table, from: isize) {
    for (_, item) in t.iter_mut() {
        if let Item::Table(child) = item {
            if let Some(p) = child.position() {
                if p >= from {
                    child.set_position(Some(p + 1));
                }
            }
            shift_positions(child, from);
        }
    }
}

/// The explicit table with the lowest position at or under `t`.
fn first_positioned_mut(t: &mut Table) -> Option<&mut Table> {
    let mut best: Option<(isize, Vec<String>)> = None;
    let mut all = Vec::new();
    collect_positions(t, &mut Vec::new(), &mut all);
    if !t.is_implicit() {
        if let Some(p) = t.position() {
            best = Some((p, Vec::new()));
        }
    }
    for (p, path) in all {
        if best.as_ref().is_none_or(|(b, _)| p < *b) {
            best = Some((p, path));
        }
    }
    let (_, path) = best?;
    let mut cur = t;
    for key in path {
        cur = match cur.get_mut(&key) {
            Some(Item::Table(next)) => next,
            _ => return None,
        };
    }
    Some(cur)
}
