//! File writes that never leave a half-written file behind, tree copies,
//! and the words messages use for a file's type.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};

/// Writes `contents` to `path` through a temporary file in the same
/// directory, fsynced, then renamed over the target: readers see the old
/// file or the new one, never a mix. The original permissions are kept.
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    let tmp = temp_beside(path, contents)?;
    tmp.persist(path).map_err(|e| e.error).with_context(|| format!("cannot replace {}", path.display()))?;
    Ok(())
}

/// A temporary file in `path`'s directory holding `contents`, fsynced, with
/// the permissions of `path` when it exists: ready to be renamed over `path`
/// (`persist`). Dropped, it is removed.
pub fn temp_beside(path: &Path, contents: &[u8]) -> Result<tempfile::NamedTempFile> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".pjrtpkgs-")
        .suffix(".tmp")
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a temporary file in {}", dir.display()))?;
    tmp.write_all(contents)
        .and_then(|()| tmp.as_file().sync_all())
        .with_context(|| format!("cannot write a temporary file for {}", path.display()))?;
    if let Ok(meta) = std::fs::metadata(path) {
        std::fs::set_permissions(tmp.path(), meta.permissions())
            .with_context(|| format!("cannot copy the permissions of {}", path.display()))?;
    }
    Ok(tmp)
}

/// Copies the file or directory tree `from` to `to`, creating parents;
/// entries named `target` (build outputs) are left out at every depth, and a
/// `from` that does not exist copies nothing.
pub fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    if from.is_dir() {
        std::fs::create_dir_all(to)?;
        for e in std::fs::read_dir(from)? {
            let e = e?;
            if e.file_name() != "target" {
                copy_tree(&e.path(), &to.join(e.file_name()))?;
            }
        }
    } else if from.is_file() {
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::copy(from, to)?;
    }
    Ok(())
}

/// `name` when it is safe to use as one component of a path: not empty, not
/// `.` or `..`, no `/` (nor `\` or NUL), at most 255 bytes. Names from any
/// input (pins.toml, PyPI's answers, the command line) pass through here
/// before they name a file, so none can reach outside its directory.
/// `what` says what the name is, for the error.
pub fn single_component<'a>(name: &'a str, what: &str) -> anyhow::Result<&'a str> {
    let problem = if name.is_empty() {
        Some("it is empty")
    } else if name == "." || name == ".." {
        Some("it names a directory (`.` or `..`)")
    } else if name.contains(['/', '\\', '\0']) {
        Some("it holds a path separator")
    } else if name.len() > 255 {
        Some("it is longer than 255 bytes")
    } else {
        None
    };
    match problem {
        Some(why) => anyhow::bail!("{what} `{}` cannot be used as a file name: {why}", name.escape_debug()),
        None => Ok(name),
    }
}

/// Creates `dir` and the directories missing above it with mode 0700,
/// whatever the umask (a key directory is nobody else's to list).
/// Directories that exist are left as they are.
pub fn create_private_dirs(dir: &Path) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let mut missing = Vec::new();
    let mut at = Some(dir);
    while let Some(d) = at.filter(|d| !d.as_os_str().is_empty() && std::fs::symlink_metadata(d).is_err()) {
        missing.push(d.to_path_buf());
        at = d.parent();
    }
    for d in missing.iter().rev() {
        match std::fs::DirBuilder::new().mode(0o700).create(d) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e).with_context(|| format!("cannot create {}", d.display())),
        }
        // The mode given to mkdir(2) is masked by the umask; 0700 must hold.
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700)).with_context(|| format!("cannot restrict {}", d.display()))?;
    }
    Ok(())
}

/// Whether a temporary file or directory named `<prefix><pid>-<random>` was
/// left behind: `rest` is the name after the prefix. True when the process
/// `pid` is gone (killed mid-download or mid-extraction) or the entry is
/// older than a day (a pid can be reused); a name without a pid counts by
/// age only.
pub fn abandoned(path: &Path, rest: &str) -> bool {
    let pid = rest.split('-').next().and_then(|p| p.parse::<i32>().ok()).filter(|&p| p > 0);
    let gone = pid.is_some_and(|pid| {
        // kill(pid, 0) sends nothing; ESRCH = no such process (EPERM: alive, another user's).
        let status = unsafe { libc::kill(pid, 0) };
        status != 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
    });
    let old = std::fs::symlink_metadata(path).and_then(|m| m.modified()).ok().and_then(|t| t.elapsed().ok());
    gone || old.is_some_and(|age| age > std::time::Duration::from_secs(24 * 3600))
}

/// What a file of this type is, for a message: "a regular file", "a
/// symbolic link", "a FIFO", "a device", "a directory", "a socket".
pub fn file_type_name(file_type: rustix::fs::FileType) -> &'static str {
    use rustix::fs::FileType;
    match file_type {
        FileType::RegularFile => "a regular file",
        FileType::Symlink => "a symbolic link",
        FileType::Fifo => "a FIFO",
        FileType::CharacterDevice | FileType::BlockDevice => "a device",
        FileType::Directory => "a directory",
        FileType::Socket => "a socket",
        _ => "of an unknown kind",
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn single_components() {
        for ok in ["xla-cpu-pjrt", "0.0.1", "x86_64-linux", "a..b", ".hidden", "libtpu.so"] {
            assert!(super::single_component(ok, "name").is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", "../x", "a/b", "/abs", "a\\b", "a\0b"] {
            assert!(super::single_component(bad, "name").is_err(), "{bad:?}");
        }
        assert!(super::single_component(&"x".repeat(256), "name").is_err());
    }
}
