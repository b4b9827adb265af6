//! `SHA256SUMS`, in the format `sha256sum` writes and `sha256sum -c` checks:
//! one `<64 lowercase hex>  <file name>` line per file, sorted by name.

use anyhow::{bail, Result};

/// The file name, as every consumer expects it.
pub const FILE: &str = "SHA256SUMS";

/// The text of a `SHA256SUMS` for `(file name, hex sha256)` pairs.
pub fn render(entries: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = entries.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    sorted.iter().map(|(name, sha)| format!("{sha}  {name}\n")).collect()
}

/// `(file name, hex sha256)` of every file of the release directory `dir`
/// but `SHA256SUMS` and its signature, sorted: a release lists everything
/// it publishes.
pub fn of_directory(dir: &std::path::Path) -> anyhow::Result<Vec<(String, String)>> {
    use anyhow::Context as _;
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == FILE || name == format!("{FILE}.minisig") {
            continue;
        }
        if !entry.file_type()?.is_file() {
            bail!("{} is not a regular file: a release holds files only", entry.path().display());
        }
        let mut file = std::fs::File::open(entry.path()).with_context(|| format!("cannot read {}", entry.path().display()))?;
        let mut hashing = crate::hashing::Hashing::new(std::io::sink());
        std::io::copy(&mut file, &mut hashing).with_context(|| format!("cannot read {}", entry.path().display()))?;
        out.push((name, hashing.finish().0.to_hex()));
    }
    out.sort();
    Ok(out)
}

/// Parses a `SHA256SUMS` (`  ` or ` *` between hash and name). File names
/// must be plain names: a listed path could reach outside the directory.
pub fn parse(text: &str) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let parsed = line.split_once("  ").or_else(|| line.split_once(" *"));
        let Some((sha, name)) = parsed.filter(|(sha, _)| sha.len() == 64 && sha.bytes().all(|b| b.is_ascii_hexdigit())) else {
            bail!("{FILE} line {}: `{line}` is not `<sha256>  <file>`", i + 1);
        };
        if name.is_empty() || name.contains('/') || name == "." || name == ".." {
            bail!("{FILE} line {}: `{name}` is not a plain file name", i + 1);
        }
        out.push((name.to_owned(), sha.to_ascii_lowercase()));
    }
    if out.is_empty() {
        bail!("{FILE} lists no file");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let a = ("b.tar.gz".to_owned(), "a".repeat(64));
        let b = ("a.tar.gz".to_owned(), "b".repeat(64));
        let text = render(&[a.clone(), b.clone()]);
        assert_eq!(text, format!("{}  a.tar.gz\n{}  b.tar.gz\n", "b".repeat(64), "a".repeat(64)));
        assert_eq!(parse(&text).unwrap(), vec![b, a]);
        assert!(parse(&format!("{}  ../x\n", "a".repeat(64))).is_err());
        assert!(parse("abc  x\n").is_err());
        assert_eq!(parse(&format!("{} *x\n", "A".repeat(64))).unwrap()[0].1, "a".repeat(64));
    }
}
