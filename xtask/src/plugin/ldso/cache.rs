//! `/etc/ld.so.cache`, the table `ldconfig` writes and glibc's loader
//! consults after the search paths: library name to file, per ABI.
//!
//! The format read is glibc's `glibc-ld.so.cache1.1` (the only one `ldconfig`
//! writes since glibc 2.32; older files put it after a legacy
//! `ld.so-1.7.0` table, which is skipped). A 48-byte header (magic,
//! version, entry count, string table size, endianness flag, extension
//! offset), then 24-byte entries (flags, name offset, path offset, unused
//! OS version, hwcap), then strings. String offsets count from the start of
//! the new-format header. Entries whose hwcap has bit 62 set belong to a
//! `glibc-hwcaps` subdirectory, named by the extension section with tag 1
//! (an array of string offsets indexed by the hwcap's low 32 bits).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

const MAGIC_NEW: &[u8] = b"glibc-ld.so.cache1.1";
const MAGIC_OLD: &[u8] = b"ld.so-1.7.0";
const HEADER_NEW: usize = 48;
const ENTRY_NEW: usize = 24;
const ENTRY_OLD: usize = 12;
const EXTENSION_MAGIC: u32 = 0xeaa4_2174;
const EXTENSION_GLIBC_HWCAPS: u32 = 1;
const HWCAP_EXTENSION: u64 = 1 << 62;

/// `FLAG_ELF_LIBC6`: the entry is a glibc library.
const FLAG_ELF_LIBC6: i32 = 0x0003;
const FLAG_TYPE_MASK: i32 = 0x00ff;

/// One library the cache knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The name it is looked up by (its soname, or file name).
    pub name: String,
    pub path: PathBuf,
    /// ABI flags: type (libc6 = 3) and architecture (x86-64 = 0x0300,
    /// AArch64 = 0x0a00, ...), as `ldconfig -p` prints in parentheses.
    pub flags: i32,
    /// The `glibc-hwcaps` subdirectory it is in (`x86-64-v3`), if any.
    pub hwcaps: Option<String>,
    /// A legacy hwcap mask (pre-2.33 caches); such entries are not chosen.
    pub legacy_hwcap: u64,
}

/// The parsed cache.
#[derive(Debug, Clone, Default)]
pub struct LdCache {
    pub entries: Vec<Entry>,
}

/// The cache flags of glibc libraries for a machine and class, as
/// `_dl_cache_check_flags` wants them; `None` where this model does not know
/// them (then any libc6 entry is taken, which can pick a wrong ABI).
pub fn expected_flags(machine: u16, bits: u8) -> Option<i32> {
    match (machine, bits) {
        (62, 64) => Some(FLAG_ELF_LIBC6 | 0x0300),
        (183, 64) => Some(FLAG_ELF_LIBC6 | 0x0a00),
        (62, 32) => Some(FLAG_ELF_LIBC6 | 0x0800),
        (3, 32) => Some(FLAG_ELF_LIBC6),
        _ => None,
    }
}

fn u32_at(data: &[u8], at: usize, little: bool) -> Option<u32> {
    let b: [u8; 4] = data.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(if little { u32::from_le_bytes(b) } else { u32::from_be_bytes(b) })
}

fn u64_at(data: &[u8], at: usize, little: bool) -> Option<u64> {
    let b: [u8; 8] = data.get(at..at.checked_add(8)?)?.try_into().ok()?;
    Some(if little { u64::from_le_bytes(b) } else { u64::from_be_bytes(b) })
}

fn string_at(data: &[u8], at: usize) -> Option<String> {
    let tail = data.get(at..)?;
    let end = tail.iter().position(|&b| b == 0)?;
    Some(String::from_utf8_lossy(&tail[..end]).into_owned())
}

impl LdCache {
    /// Reads the cache at `path`; a missing file is an empty cache (glibc
    /// runs without one).
    pub fn load(path: &Path) -> Result<LdCache> {
        match std::fs::read(path) {
            Ok(data) => LdCache::parse(&data).with_context(|| format!("cannot read the loader cache {}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(LdCache::default()),
            Err(e) => Err(e).with_context(|| format!("cannot read the loader cache {}", path.display())),
        }
    }

    /// Parses a cache file's bytes. Malformed input is an error, never a
    /// panic: entries pointing outside the file are refused.
    pub fn parse(data: &[u8]) -> Result<LdCache> {
        let start = if data.starts_with(MAGIC_NEW) {
            0
        } else if data.starts_with(MAGIC_OLD) {
            // The legacy table comes first: magic, count, 12-byte entries,
            // then the new format aligned to 8 bytes.
            let count = u32_at(data, MAGIC_OLD.len(), true).context("truncated legacy header")? as usize;
            let end = (MAGIC_OLD.len() + 4).checked_add(count.checked_mul(ENTRY_OLD).context("entry count overflows")?);
            let aligned = end.map(|e| e.div_ceil(8) * 8).context("entry count overflows")?;
            if !data.get(aligned..).is_some_and(|d| d.starts_with(MAGIC_NEW)) {
                bail!("a legacy-only (ld.so-1.7.0) cache: glibc since 2.32 no longer reads these; run ldconfig");
            }
            aligned
        } else {
            bail!("not a glibc loader cache (no `glibc-ld.so.cache1.1` magic)");
        };
        let cache = &data[start..];
        if cache.len() < HEADER_NEW {
            bail!("truncated header");
        }
        // The flags byte records the byte order (2 = little, 3 = big);
        // 0 (older writers) means this machine's.
        let little = match cache[28] {
            0 => cfg!(target_endian = "little"),
            2 => true,
            3 => false,
            other => bail!("unknown endianness flag {other}"),
        };
        let count = u32_at(cache, 20, little).context("truncated header")? as usize;
        let extension = u32_at(cache, 32, little).context("truncated header")? as usize;
        let entries_end = count.checked_mul(ENTRY_NEW).and_then(|n| n.checked_add(HEADER_NEW)).context("entry count overflows")?;
        if entries_end > cache.len() {
            bail!("{count} entries do not fit in {} bytes", cache.len());
        }

        // glibc-hwcaps subdirectory names, from the extension directory.
        let mut subdirs: Vec<String> = Vec::new();
        if extension != 0 && u32_at(cache, extension, little) == Some(EXTENSION_MAGIC) {
            let sections = u32_at(cache, extension + 4, little).context("truncated extension header")? as usize;
            for i in 0..sections.min(64) {
                let at = extension + 8 + 16 * i;
                let (Some(tag), Some(offset), Some(size)) =
                    (u32_at(cache, at, little), u32_at(cache, at + 8, little), u32_at(cache, at + 12, little))
                else {
                    bail!("truncated extension section {i}");
                };
                if tag == EXTENSION_GLIBC_HWCAPS {
                    for j in 0..(size as usize / 4) {
                        let name = u32_at(cache, offset as usize + 4 * j, little).context("truncated glibc-hwcaps table")?;
                        subdirs.push(string_at(cache, name as usize).context("glibc-hwcaps name outside the file")?);
                    }
                }
            }
        }

        let mut entries = Vec::with_capacity(count);
        for i in 0..count {
            let at = HEADER_NEW + ENTRY_NEW * i;
            let flags = u32_at(cache, at, little).context("truncated entry")? as i32;
            let key = u32_at(cache, at + 4, little).context("truncated entry")? as usize;
            let value = u32_at(cache, at + 8, little).context("truncated entry")? as usize;
            let hwcap = u64_at(cache, at + 16, little).context("truncated entry")?;
            let name = string_at(cache, key).with_context(|| format!("entry {i}: its name lies outside the file"))?;
            let path = string_at(cache, value).with_context(|| format!("entry {i}: its path lies outside the file"))?;
            let (hwcaps, legacy_hwcap) = if hwcap & HWCAP_EXTENSION != 0 {
                let index = (hwcap & 0xffff_ffff) as usize;
                (Some(subdirs.get(index).cloned().unwrap_or_else(|| format!("#{index}"))), 0)
            } else {
                (None, hwcap)
            };
            entries.push(Entry { name, path: PathBuf::from(path), flags, hwcaps, legacy_hwcap });
        }
        Ok(LdCache { entries })
    }

    /// The file glibc's loader takes for `name`: among the entries of that
    /// name and the right ABI (`flags`, see [`expected_flags`]), the one in
    /// the most preferred active `glibc-hwcaps` subdirectory (`active`, in
    /// priority order), else the one in none.
    pub fn lookup(&self, name: &str, flags: Option<i32>, active: &[String]) -> Option<&Entry> {
        let mut best: Option<(usize, &Entry)> = None;
        for entry in self.entries.iter().filter(|e| e.name == name) {
            let abi_ok = match flags {
                Some(f) => entry.flags == f,
                None => entry.flags & FLAG_TYPE_MASK == FLAG_ELF_LIBC6,
            };
            if !abi_ok || entry.legacy_hwcap != 0 {
                continue;
            }
            let priority = match &entry.hwcaps {
                Some(sub) => match active.iter().position(|a| a == sub) {
                    Some(p) => p,
                    None => continue,
                },
                None => usize::MAX,
            };
            if best.is_none_or(|(p, _)| priority < p) {
                best = Some((priority, entry));
            }
        }
        best.map(|(_, e)| e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(entries: &[(i32, &str, &str, u64)], subdirs: &[&str]) -> Vec<u8> {
        let mut strings = Vec::new();
        let base = HEADER_NEW + ENTRY_NEW * entries.len();
        let offset = |s: &str, strings: &mut Vec<u8>| {
            let at = base + strings.len();
            strings.extend_from_slice(s.as_bytes());
            strings.push(0);
            at as u32
        };
        let mut table = Vec::new();
        for (flags, name, path, hwcap) in entries {
            table.extend_from_slice(&flags.to_le_bytes());
            table.extend_from_slice(&offset(name, &mut strings).to_le_bytes());
            table.extend_from_slice(&offset(path, &mut strings).to_le_bytes());
            table.extend_from_slice(&0u32.to_le_bytes());
            table.extend_from_slice(&hwcap.to_le_bytes());
        }
        let names: Vec<u32> = subdirs.iter().map(|s| offset(s, &mut strings)).collect();
        while !(base + strings.len()).is_multiple_of(8) {
            strings.push(0);
        }
        let extension = base + strings.len();
        let mut out = MAGIC_NEW.to_vec();
        out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
        out.extend_from_slice(&(strings.len() as u32).to_le_bytes());
        out.extend_from_slice(&[2, 0, 0, 0]);
        out.extend_from_slice(&(extension as u32).to_le_bytes());
        out.extend_from_slice(&[0; 12]);
        out.extend_from_slice(&table);
        out.extend_from_slice(&strings);
        out.extend_from_slice(&EXTENSION_MAGIC.to_le_bytes());
        out.extend_from_slice(&1u32.to_le_bytes());
        let table_at = (extension + 8 + 16) as u32;
        for v in [EXTENSION_GLIBC_HWCAPS, 0, table_at, 4 * names.len() as u32] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for n in names {
            out.extend_from_slice(&n.to_le_bytes());
        }
        out
    }

    #[test]
    fn picks_the_preferred_hwcaps_subdirectory_then_the_plain_entry() {
        let data = build(
            &[
                (0x0303, "libz.so.1", "/lib/libz.so.1", 0),
                (0x0303, "libz.so.1", "/lib/glibc-hwcaps/x86-64-v3/libz.so.1", HWCAP_EXTENSION),
                (0x0003, "libz.so.1", "/lib32/libz.so.1", 0),
            ],
            &["x86-64-v3"],
        );
        let cache = LdCache::parse(&data).unwrap();
        let flags = expected_flags(62, 64);
        let v3 = ["x86-64-v3".to_owned(), "x86-64-v2".to_owned()];
        assert_eq!(cache.lookup("libz.so.1", flags, &v3).unwrap().path, Path::new("/lib/glibc-hwcaps/x86-64-v3/libz.so.1"));
        assert_eq!(cache.lookup("libz.so.1", flags, &["x86-64-v2".to_owned()]).unwrap().path, Path::new("/lib/libz.so.1"));
        assert_eq!(cache.lookup("libz.so.1", expected_flags(3, 32), &[]).unwrap().path, Path::new("/lib32/libz.so.1"));
        assert!(cache.lookup("libzz.so.1", flags, &v3).is_none());
    }

    #[test]
    fn malformed_caches_are_errors() {
        let data = build(&[(0x0303, "libz.so.1", "/lib/libz.so.1", 0)], &[]);
        for cut in [10, 30, 60] {
            assert!(LdCache::parse(&data[..cut]).is_err(), "cut at {cut}");
        }
        let mut wild = data.clone();
        wild[52..56].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(LdCache::parse(&wild).is_err());
        let mut huge = data;
        huge[20..24].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(LdCache::parse(&huge).is_err());
        assert!(LdCache::parse(b"not a cache at all").is_err());
    }
}
