//! A plugin's ELF, as the dynamic loader sees it: the libraries it needs
//! (DT_NEEDED), where it looks for them (DT_RUNPATH / DT_RPATH), the symbol
//! versions it requires from each (SHT_GNU_VERNEED, with the undefined
//! symbols bound to each version), and a rewrite of its run-time search path
//! in place.
//!
//! Reading uses the `object` crate. The rewrite changes bytes inside the
//! existing `.dynamic` and `.dynstr` only: no section moves, no size
//! changes, so nothing else in a 300 MB plugin can be disturbed. It can
//! remove the search path, or replace it with a string no longer than the
//! old one (`$ORIGIN` replaces any store path); it cannot add one where
//! there was none (that needs a new string table: relink with
//! `-Wl,-rpath,'$ORIGIN'` instead).

use std::collections::BTreeMap;

use anyhow::{anyhow, bail, Context, Result};
use object::elf;
use object::read::elf::{FileHeader, ProgramHeader as _, SectionHeader as _, Sym as _};
use object::{Endian, Endianness};

type Header = elf::FileHeader64<Endianness>;

/// The architectures released plugins are built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    X86_64,
    Aarch64,
}

impl Arch {
    /// As in Nix systems and `uname -m`.
    pub fn name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
        }
    }
}

/// One symbol version the file requires from a library.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    pub library: String,
    /// `GLIBC_2.27`.
    pub version: String,
    /// `VER_FLG_WEAK`: the loader only warns when it is missing.
    pub weak: bool,
    /// Its `vna_hash` is not the ELF hash of its name: the loader, which
    /// compares both, finds it in no library.
    pub bad_hash: bool,
    /// The undefined symbols bound to this version, sorted.
    pub symbols: Vec<String>,
}

/// What the dynamic loader reads from a shared library.
#[derive(Debug, Clone)]
pub struct ElfInfo {
    pub arch: Arch,
    pub soname: Option<String>,
    pub needed: Vec<String>,
    /// DT_RUNPATH, as written (a `:`-separated list).
    pub runpath: Option<String>,
    /// DT_RPATH, the deprecated form.
    pub rpath: Option<String>,
    /// Sorted by library, then version.
    pub requirements: Vec<Requirement>,
    /// Whether it defines `GetPjrtApi`, the entry point of every PJRT plugin.
    pub exports_get_pjrt_api: bool,
    /// The symbol versions it defines (`.gnu.version_d`, without the base
    /// entry); empty when it has no version definitions.
    pub defined_versions: Vec<String>,
    /// `e_ident[EI_OSABI]` and `e_ident[EI_ABIVERSION]`.
    pub os_abi: u8,
    pub abi_version: u8,
    /// `DF_1_NOOPEN`: dlopen() refuses it.
    pub no_dlopen: bool,
    /// The size of its TLS block when it uses the static TLS model
    /// (`DF_STATIC_TLS`), which a dlopen()ed library takes from the small
    /// surplus the loader keeps.
    pub static_tls: Option<u64>,
}

impl ElfInfo {
    /// The entries of DT_RUNPATH and DT_RPATH, in the loader's order of use.
    pub fn search_path(&self) -> Vec<&str> {
        // With a DT_RUNPATH the loader ignores DT_RPATH; both are listed, as
        // both are left behind in the file and both must be clean.
        self.runpath.iter().chain(self.rpath.iter()).flat_map(|p| p.split(':')).collect()
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Parses the header of a 64-bit ELF shared library.
fn header(data: &[u8]) -> Result<(&Header, Endianness)> {
    if data.len() < 16 || &data[..4] != b"\x7fELF" {
        bail!("not an ELF file");
    }
    if data[4] != elf::ELFCLASS64.0 {
        bail!("a 32-bit ELF file: only 64-bit plugins (x86_64, aarch64) are released");
    }
    let header = Header::parse(data).map_err(|e| anyhow!("not a valid ELF file: {e}"))?;
    let endian = header.endian().map_err(|e| anyhow!("not a valid ELF file: {e}"))?;
    if header.e_type(endian) != elf::ET_DYN {
        bail!("not a shared library (ELF type {})", header.e_type(endian).0);
    }
    Ok((header, endian))
}

/// Reads what the loader reads.
pub fn read(data: &[u8]) -> Result<ElfInfo> {
    let (header, endian) = header(data)?;
    let arch = match header.e_machine(endian) {
        elf::EM_X86_64 => Arch::X86_64,
        elf::EM_AARCH64 => Arch::Aarch64,
        other => bail!("built for ELF machine {}: released plugins are x86_64 or aarch64", other.0),
    };
    let bad = |e: object::read::Error| anyhow!("malformed ELF: {e}");
    let sections = header.sections(endian, data).map_err(bad)?;
    let dynamic = sections.dynamic_table(endian, data).map_err(bad)?;
    if dynamic.is_empty() {
        bail!("no dynamic section: not a shared library the loader can open");
    }
    let (mut soname, mut needed, mut runpath, mut rpath) = (None, Vec::new(), None, None);
    let (mut flags, mut flags_1) = (0u64, 0u64);
    for d in dynamic.iter() {
        let value = || dynamic.string(d).map(text).map_err(bad);
        match d.tag {
            elf::DT_NEEDED => needed.push(value()?),
            elf::DT_SONAME => soname = Some(value()?),
            elf::DT_RUNPATH => runpath = Some(value()?),
            elf::DT_RPATH => rpath = Some(value()?),
            elf::DT_FLAGS => flags = d.val,
            elf::DT_FLAGS_1 => flags_1 = d.val,
            _ => {}
        }
    }
    let tls =
        header.program_headers(endian, data).map_err(bad)?.iter().find(|ph| ph.p_type(endian) == elf::PT_TLS).map(|ph| ph.p_memsz(endian));

    // Every version the file requires, even one no symbol uses: the loader
    // checks them all when it opens the file.
    let mut required: BTreeMap<(String, String), (bool, Vec<String>, bool)> = BTreeMap::new();
    if let Some((mut needs, link)) = sections.gnu_verneed(endian, data).map_err(bad)? {
        let strings = sections.strings(endian, data, link).map_err(bad)?;
        while let Some((need, mut auxes)) = needs.next().map_err(bad)? {
            let file = text(need.file(endian, strings).map_err(bad)?);
            while let Some(aux) = auxes.next().map_err(bad)? {
                let weak = aux.vna_flags.get(endian).0 & elf::VER_FLG_WEAK.0 != 0;
                let name = aux.name(endian, strings).map_err(bad)?;
                let bad_hash = aux.vna_hash.get(endian) != elf_hash(name);
                let entry = required.entry((file.clone(), text(name))).or_default();
                entry.0 |= weak;
                entry.2 |= bad_hash;
            }
        }
    }
    let mut defined_versions = Vec::new();
    if let Some((mut defs, link)) = sections.gnu_verdef(endian, data).map_err(bad)? {
        let strings = sections.strings(endian, data, link).map_err(bad)?;
        while let Some((def, mut auxes)) = defs.next().map_err(bad)? {
            if def.vd_flags.get(endian).0 & elf::VER_FLG_BASE.0 != 0 {
                continue;
            }
            if let Some(aux) = auxes.next().map_err(bad)? {
                let name = aux.name(endian, strings).map_err(bad)?;
                // A definition whose hash is not its name's matches no requirement.
                if def.vd_hash.get(endian) == elf_hash(name) {
                    defined_versions.push(text(name));
                }
            }
        }
    }
    defined_versions.sort();
    defined_versions.dedup();
    let symbols = sections.symbols(endian, data, elf::SHT_DYNSYM).map_err(bad)?;
    let versions = sections.versions(endian, data).map_err(bad)?;
    let mut exports_get_pjrt_api = false;
    for (index, symbol) in symbols.enumerate() {
        let name = symbols.symbol_name(endian, symbol).map_err(bad)?;
        if !symbol.is_undefined(endian) {
            exports_get_pjrt_api |= name == b"GetPjrtApi" && symbol.st_type() == elf::STT_FUNC;
            continue;
        }
        let Some(versions) = &versions else { continue };
        let Some(version) = versions.version(versions.version_index(endian, index).index()).map_err(bad)? else { continue };
        if let Some(file) = version.file() {
            required.entry((text(file), text(version.name()))).or_default().1.push(text(name));
        }
    }
    let requirements = required
        .into_iter()
        .map(|((library, version), (weak, mut symbols, bad_hash))| {
            symbols.sort();
            symbols.dedup();
            Requirement { library, version, weak, bad_hash, symbols }
        })
        .collect();
    let ident = &header.e_ident;
    Ok(ElfInfo {
        arch,
        soname,
        needed,
        runpath,
        rpath,
        requirements,
        exports_get_pjrt_api,
        defined_versions,
        os_abi: ident.os_abi.0,
        abi_version: ident.abi_version,
        no_dlopen: flags_1 & elf::DF_1_NOOPEN.0 != 0,
        static_tls: (flags & elf::DF_STATIC_TLS.0 != 0).then(|| tls.unwrap_or(0)),
    })
}

/// The System V ELF hash of a name, as `.gnu.version_r` / `.gnu.version_d`
/// record it.
pub fn elf_hash(name: &[u8]) -> u32 {
    let mut h: u32 = 0;
    for &c in name {
        h = (h << 4).wrapping_add(u32::from(c));
        let g = h & 0xf000_0000;
        if g != 0 {
            h ^= g >> 24;
        }
        h &= !g;
    }
    h
}

/// The byte ranges the rewrite may touch, and every string the rest of the
/// file still uses (which must survive it).
struct Layout {
    endian: Endianness,
    /// File offset and entry count of `.dynamic`.
    dynamic: (usize, usize),
    /// File offset and size of `.dynstr`.
    dynstr: (usize, usize),
    /// Offsets into `.dynstr` of every string used by something other than
    /// DT_RUNPATH / DT_RPATH.
    kept_strings: Vec<usize>,
}

fn layout(data: &[u8]) -> Result<Layout> {
    let (header, endian) = header(data)?;
    let bad = |e: object::read::Error| anyhow!("malformed ELF: {e}");
    let sections = header.sections(endian, data).map_err(bad)?;
    let (index, section) = sections
        .enumerate()
        .find(|(_, s)| s.sh_type(endian) == elf::SHT_DYNAMIC)
        .ok_or_else(|| anyhow!("no .dynamic section to rewrite"))?;
    let entry = std::mem::size_of::<elf::Dyn64<Endianness>>();
    if section.sh_entsize(endian) as usize != entry {
        bail!("unexpected .dynamic entry size {} (section {})", section.sh_entsize(endian), index.0);
    }
    let dynamic = (section.sh_offset(endian) as usize, section.sh_size(endian) as usize / entry);
    let link = object::SectionIndex(section.sh_link(endian) as usize);
    let strtab = sections.section(link).map_err(bad)?;
    let dynstr = (strtab.sh_offset(endian) as usize, strtab.sh_size(endian) as usize);
    let within = |(offset, size): (usize, usize)| offset.checked_add(size).is_some_and(|end| end <= data.len());
    if !within((dynamic.0, dynamic.1 * entry)) || !within(dynstr) {
        bail!("the dynamic section or its string table lies outside the file");
    }

    let mut kept = Vec::new();
    let table = sections.dynamic_table(endian, data).map_err(bad)?;
    for d in table.iter() {
        if d.is_string() && d.tag != elf::DT_RUNPATH && d.tag != elf::DT_RPATH {
            kept.push(d.val as usize);
        }
    }
    let symbols = sections.symbols(endian, data, elf::SHT_DYNSYM).map_err(bad)?;
    if symbols.string_section() == link {
        kept.extend(symbols.iter().map(|s| s.st_name(endian) as usize));
    }
    if let Some((mut needs, l)) = sections.gnu_verneed(endian, data).map_err(bad)? {
        if l == link {
            while let Some((need, mut auxes)) = needs.next().map_err(bad)? {
                kept.push(need.vn_file.get(endian) as usize);
                while let Some(aux) = auxes.next().map_err(bad)? {
                    kept.push(aux.vna_name.get(endian) as usize);
                }
            }
        }
    }
    if let Some((mut defs, l)) = sections.gnu_verdef(endian, data).map_err(bad)? {
        if l == link {
            while let Some((_, mut auxes)) = defs.next().map_err(bad)? {
                while let Some(aux) = auxes.next().map_err(bad)? {
                    kept.push(aux.vda_name.get(endian) as usize);
                }
            }
        }
    }
    kept.sort_unstable();
    kept.dedup();
    Ok(Layout { endian, dynamic, dynstr, kept_strings: kept })
}

/// Bytes of `.dynstr` (relative offsets) that some kept string occupies.
fn protected(strings: &[u8], kept: &[usize]) -> Vec<(usize, usize)> {
    kept.iter()
        .filter(|&&start| start < strings.len())
        .map(|&start| {
            let end = strings[start..].iter().position(|&b| b == 0).map_or(strings.len(), |n| start + n + 1);
            (start, end)
        })
        .collect()
}

fn overlaps(ranges: &[(usize, usize)], start: usize, end: usize) -> bool {
    ranges.iter().any(|&(a, b)| a < end && start < b)
}

/// Makes the file's run-time search path `new` (`None`: no search path),
/// rewriting `data` in place. DT_RPATH becomes DT_RUNPATH; strings that no
/// longer have a user are zeroed, so no store path is left in the file.
/// Returns whether anything changed.
pub fn set_search_path(data: &mut [u8], new: Option<&str>) -> Result<bool> {
    let before = read(data)?;
    let current = before.runpath.as_deref().or(before.rpath.as_deref());
    if current == new && before.rpath.is_none() {
        return Ok(false);
    }
    let layout = layout(data)?;
    let endian = layout.endian;
    let (dyn_offset, count) = layout.dynamic;
    let entry_at = |data: &[u8], i: usize| -> (i64, u64) {
        let at = dyn_offset + i * 16;
        let tag = endian.read_u64(data[at..at + 8].try_into().expect("8 bytes")) as i64;
        let val = endian.read_u64(data[at + 8..at + 16].try_into().expect("8 bytes"));
        (tag, val)
    };
    let mut entries: Vec<(i64, u64)> = Vec::with_capacity(count);
    for i in 0..count {
        let (tag, val) = entry_at(data, i);
        if tag == elf::DT_NULL.0 {
            break;
        }
        entries.push((tag, val));
    }
    let is_path = |tag: i64| tag == elf::DT_RUNPATH.0 || tag == elf::DT_RPATH.0;
    let old_strings: Vec<usize> = entries.iter().filter(|(t, _)| is_path(*t)).map(|(_, v)| *v as usize).collect();

    let (str_offset, str_size) = layout.dynstr;
    let strings = data[str_offset..str_offset + str_size].to_vec();
    let keep = protected(&strings, &layout.kept_strings);
    let string_end = |start: usize| strings.get(start..)?.iter().position(|&b| b == 0).map(|n| start + n);

    // The new entries: the search path first in place of the old one.
    let mut new_entries: Vec<(i64, u64)> = Vec::with_capacity(entries.len());
    let mut write_string: Option<usize> = None;
    for &(tag, val) in &entries {
        if !is_path(tag) {
            new_entries.push((tag, val));
        } else if let (Some(path), None) = (new, write_string) {
            let start = val as usize;
            let end = string_end(start).ok_or_else(|| anyhow!("the search path string is not terminated"))?;
            if end - start < path.len() {
                bail!(
                    "cannot write the search path `{path}` in place: the old one (`{}`) is shorter; relink with -Wl,-rpath,'{path}'",
                    text(&strings[start..end])
                );
            }
            if overlaps(&keep, start, start + path.len() + 1) {
                bail!("cannot write the search path `{path}` in place: its string is shared with another name in .dynstr");
            }
            write_string = Some(start);
            new_entries.push((elf::DT_RUNPATH.0, val));
        }
    }
    if let (Some(path), None) = (new, write_string) {
        bail!("the file has no RUNPATH or RPATH to rewrite in place as `{path}`; relink it with -Wl,-rpath,'{path}'");
    }

    // Scrub the old strings (what no kept name uses), then write the new one.
    for start in old_strings {
        let Some(end) = string_end(start) else { continue };
        for offset in start..end {
            if !overlaps(&keep, offset, offset + 1) {
                data[str_offset + offset] = 0;
            }
        }
    }
    if let (Some(path), Some(start)) = (new, write_string) {
        let at = str_offset + start;
        data[at..at + path.len()].copy_from_slice(path.as_bytes());
        data[at + path.len()] = 0;
    }
    for i in 0..count {
        let (tag, val) = new_entries.get(i).copied().unwrap_or((elf::DT_NULL.0, 0));
        let at = dyn_offset + i * 16;
        data[at..at + 8].copy_from_slice(&endian.write_u64(tag as u64));
        data[at + 8..at + 16].copy_from_slice(&endian.write_u64(val));
    }

    // Read back what the loader will see.
    let after = read(data).context("the rewritten file no longer parses")?;
    if after.runpath.as_deref() != new || after.rpath.is_some() || after.needed != before.needed || after.soname != before.soname {
        bail!("the rewrite did not give the intended dynamic section (RUNPATH {:?}, RPATH {:?})", after.runpath, after.rpath);
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    #[test]
    fn elf_hash_of_version_names() {
        // The value glibc itself records for the x86_64 base version.
        assert_eq!(super::elf_hash(b"GLIBC_2.2.5"), 0x0969_1a75);
        assert_eq!(super::elf_hash(b""), 0);
    }
}
