//! Just enough of Bazel's rc-file semantics to answer "what does
//! `--config=NAME` set?": `import`/`try-import`, `command:config` lines,
//! `--config` expansion in place (recursively), shell-like quoting and
//! line continuations. Only `common` and `build` lines count: those are what
//! a `bazel build --config=NAME` sees.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{bail, Result};

/// One rc line: the command (`build`, `common`, ...), the config it belongs to
/// (`None` for unconditional lines) and its arguments, unquoted.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RcLine {
    command: String,
    config: Option<String>,
    args: Vec<String>,
}

/// The rc lines of a Bazel workspace, in the order Bazel reads them.
#[derive(Debug, Default)]
pub struct BazelRc {
    lines: Vec<RcLine>,
}

/// Commands whose options apply to `bazel build`.
const BUILD_COMMANDS: &[&str] = &["common", "always", "build"];

impl BazelRc {
    /// Reads `first` through `read` (a path relative to the workspace root
    /// -> contents, `None` when absent), following `import` and `try-import`
    /// of `%workspace%/...` files. `extra` files are read afterwards unless
    /// an import already read them (XLA keeps its configs in
    /// `tensorflow.bazelrc`, imported by `.bazelrc` in some eras only).
    pub fn load(first: &str, extra: &[&str], read: &mut dyn FnMut(&str) -> Option<String>) -> Result<Self> {
        let mut rc = BazelRc::default();
        let mut seen = BTreeSet::new();
        rc.read_file(first, true, read, &mut seen, 0)?;
        for file in extra {
            if !seen.contains(*file) {
                rc.read_file(file, true, read, &mut seen, 0)?;
            }
        }
        Ok(rc)
    }

    /// Parses one rc text (no imports followed).
    #[cfg(test)]
    pub fn parse(text: &str) -> Self {
        let mut rc = BazelRc::default();
        for line in logical_lines(text) {
            if let Some(parsed) = parse_line(&line) {
                rc.lines.push(parsed);
            }
        }
        rc
    }

    fn read_file(
        &mut self,
        path: &str,
        optional: bool,
        read: &mut dyn FnMut(&str) -> Option<String>,
        seen: &mut BTreeSet<String>,
        depth: usize,
    ) -> Result<()> {
        if depth > 16 {
            bail!("bazelrc imports nest more than 16 deep at {path} (an import cycle?)");
        }
        if !seen.insert(path.to_string()) {
            return Ok(());
        }
        let Some(text) = read(path) else {
            if optional {
                return Ok(());
            }
            bail!("bazelrc file {path} is imported but does not exist");
        };
        for line in logical_lines(&text) {
            let mut words = split_words(&line);
            if words.is_empty() {
                continue;
            }
            let first = words.remove(0);
            if first == "import" || first == "try-import" {
                let Some(target) = words.first() else { continue };
                // Only workspace-relative imports can be read from git; the
                // others (user files, absolute paths) are not part of XLA.
                if let Some(rel) = target.strip_prefix("%workspace%/") {
                    self.read_file(rel, first == "try-import", read, seen, depth + 1)?;
                }
                continue;
            }
            if let Some(parsed) = parse_line(&line) {
                self.lines.push(parsed);
            }
        }
        Ok(())
    }

    /// Whether any `common`/`build` line defines `config`.
    pub fn has_config(&self, config: &str) -> bool {
        self.lines.iter().any(|l| l.config.as_deref() == Some(config) && BUILD_COMMANDS.contains(&l.command.as_str()))
    }

    /// Every config name defined for `bazel build`, sorted.
    pub fn configs(&self) -> BTreeSet<String> {
        self.lines.iter().filter(|l| BUILD_COMMANDS.contains(&l.command.as_str())).filter_map(|l| l.config.clone()).collect()
    }

    /// The options `--config=config` expands to for `bazel build`, in order,
    /// nested `--config`s expanded in place.
    pub fn expand(&self, config: &str) -> Result<Vec<String>> {
        let mut out = Vec::new();
        let mut stack = Vec::new();
        self.expand_into(config, &mut out, &mut stack)?;
        Ok(out)
    }

    fn expand_into(&self, config: &str, out: &mut Vec<String>, stack: &mut Vec<String>) -> Result<()> {
        if stack.iter().any(|c| c == config) {
            bail!("bazelrc config cycle: {} -> {config}", stack.join(" -> "));
        }
        stack.push(config.to_string());
        for line in &self.lines {
            if line.config.as_deref() != Some(config) || !BUILD_COMMANDS.contains(&line.command.as_str()) {
                continue;
            }
            let mut args = line.args.iter();
            while let Some(arg) = args.next() {
                if let Some(name) = arg.strip_prefix("--config=") {
                    self.expand_into(name, out, stack)?;
                } else if arg == "--config" {
                    if let Some(name) = args.next() {
                        self.expand_into(name, out, stack)?;
                    }
                } else {
                    out.push(arg.clone());
                }
            }
        }
        stack.pop();
        Ok(())
    }

    /// The `--repo_env` variables `--config=config` sets, the last setting of
    /// each winning (as in Bazel).
    pub fn repo_env(&self, config: &str) -> Result<BTreeMap<String, String>> {
        Ok(repo_env_of(&self.expand(config)?))
    }
}

/// The `--repo_env` variables a list of Bazel options sets (`--repo_env=K=V`
/// or `--repo_env K=V`, quotes removed), the last setting of each winning.
pub fn repo_env_of(options: &[String]) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    let mut it = options.iter();
    while let Some(opt) = it.next() {
        let assignment = if let Some(rest) = opt.strip_prefix("--repo_env=") {
            Some(rest.to_string())
        } else if opt == "--repo_env" {
            it.next().cloned()
        } else {
            None
        };
        if let Some((key, value)) = assignment.as_deref().and_then(|a| a.split_once('=')) {
            env.insert(key.to_string(), unquote(value));
        }
    }
    env
}

/// Joins backslash-continued lines and drops comments and blank lines.
fn logical_lines(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for raw in text.lines() {
        let line = raw.trim_end();
        if let Some(head) = line.strip_suffix('\\') {
            current.push_str(head);
            current.push(' ');
            continue;
        }
        current.push_str(line);
        let trimmed = current.trim();
        if !trimmed.is_empty() && !trimmed.starts_with('#') {
            out.push(trimmed.to_string());
        }
        current.clear();
    }
    if !current.trim().is_empty() && !current.trim().starts_with('#') {
        out.push(current.trim().to_string());
    }
    out
}

fn parse_line(line: &str) -> Option<RcLine> {
    let mut words = split_words(line);
    if words.is_empty() {
        return None;
    }
    let head = words.remove(0);
    let (command, config) = match head.split_once(':') {
        Some((cmd, cfg)) => (cmd.to_string(), Some(cfg.to_string())),
        None => (head, None),
    };
    Some(RcLine { command, config, args: words })
}

/// Splits on whitespace, honouring single and double quotes (removed) and
/// stopping at an unquoted `#` that starts a word (a trailing comment).
fn split_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => word.push(c),
            None => match c {
                '"' | '\'' => {
                    quote = Some(c);
                    in_word = true;
                }
                '\\' => {
                    if let Some(next) = chars.next() {
                        word.push(next);
                    }
                    in_word = true;
                }
                '#' if !in_word => break,
                c if c.is_whitespace() => {
                    if in_word {
                        words.push(std::mem::take(&mut word));
                        in_word = false;
                    }
                }
                c => {
                    word.push(c);
                    in_word = true;
                }
            },
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

fn unquote(value: &str) -> String {
    let v = value.trim();
    for q in ['"', '\''] {
        if v.len() >= 2 && v.starts_with(q) && v.ends_with(q) {
            return v[1..v.len() - 1].to_string();
        }
    }
    v.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const RC: &str = r#"
# Default versions.
common:cuda_version --repo_env=HERMETIC_CUDA_VERSION="12.9.1"
common:cuda_version --repo_env=HERMETIC_NCCL_VERSION="2.27.7"
common:cuda --repo_env TF_NEED_CUDA=1
common:cuda --config=cuda_version
common:cuda_nvcc --config=cuda
test:pjrt_cuda12 --repo_env=HERMETIC_CUDA_VERSION="0.0.0"
build:pjrt_cuda12 --config=cuda_nvcc
build:pjrt_cuda12 --repo_env=HERMETIC_CUDA_VERSION="12.8.0" \
    --repo_env=HERMETIC_CUDA_COMPUTE_CAPABILITIES="sm_50,compute_120"  # trailing comment
common:rocm_ci_hermetic --repo_env="ROCM_DISTRO_VERSION=rocm_7.10.0_gfx90X"
"#;

    #[test]
    fn nested_configs_expand_in_place_and_last_wins() {
        let rc = BazelRc::parse(RC);
        let env = rc.repo_env("pjrt_cuda12").unwrap();
        assert_eq!(env["HERMETIC_CUDA_VERSION"], "12.8.0");
        assert_eq!(env["HERMETIC_NCCL_VERSION"], "2.27.7");
        assert_eq!(env["TF_NEED_CUDA"], "1");
        assert_eq!(env["HERMETIC_CUDA_COMPUTE_CAPABILITIES"], "sm_50,compute_120");
        assert_eq!(rc.repo_env("rocm_ci_hermetic").unwrap()["ROCM_DISTRO_VERSION"], "rocm_7.10.0_gfx90X");
        assert!(rc.has_config("pjrt_cuda12"));
        assert!(!rc.has_config("pjrt_cuda13"));
    }

    #[test]
    fn imports_are_followed_once_and_cycles_fail() {
        let mut files = BTreeMap::from([
            (".bazelrc", "import %workspace%/tf.bazelrc\ntry-import %workspace%/missing.bazelrc\nbuild:a --config=b\n"),
            ("tf.bazelrc", "build:b --repo_env=X=1\n"),
        ]);
        let rc = BazelRc::load(".bazelrc", &["tf.bazelrc"], &mut |p| files.get(p).map(|s| s.to_string())).unwrap();
        assert_eq!(rc.expand("a").unwrap(), vec!["--repo_env=X=1"]);
        files.insert(".bazelrc", "import %workspace%/missing.bazelrc\n");
        let err = BazelRc::load(".bazelrc", &[], &mut |p| files.get(p).map(|s| s.to_string())).unwrap_err();
        assert!(err.to_string().contains("missing.bazelrc"), "{err}");
        let rc = BazelRc::parse("build:a --config=b\nbuild:b --config=a\n");
        assert!(rc.expand("a").unwrap_err().to_string().contains("cycle"));
    }
}
