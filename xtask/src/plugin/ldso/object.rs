//! An ELF shared object as the dynamic loader reads it: its identity (class,
//! byte order, OS ABI, machine, type), what it asks the loader for
//! (DT_NEEDED, DT_RPATH / DT_RUNPATH, DF_1_NODEFLIB), the symbol versions it
//! needs and defines, its dynamic symbols, and its sections for the checks
//! that look inside (strings, code, GPU code).
//!
//! Any class and machine is read (a 32-bit or aarch64 plugin is diagnosed,
//! not refused). Files are memory-mapped: a 500 MB plugin costs the pages
//! that are looked at, not a 500 MB read.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use object::elf;
use object::read::elf::{FileHeader, SectionHeader as _, Sym as _};
use object::Endianness;

/// The first bytes of an ELF file: what the loader compares with itself
/// before it maps anything (glibc's `open_verify`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ident {
    /// 32 or 64.
    pub bits: u8,
    pub little_endian: bool,
    pub os_abi: u8,
    /// `e_machine` (EM_X86_64 = 62, EM_AARCH64 = 183, ...).
    pub machine: u16,
    /// `e_type` (ET_DYN = 3, ET_EXEC = 2, ...).
    pub file_type: u16,
}

impl Ident {
    /// Reads the identity from the first 20 bytes; `None` for anything that
    /// is not an ELF file.
    pub fn parse(head: &[u8]) -> Option<Ident> {
        if head.len() < 20 || &head[..4] != b"\x7fELF" {
            return None;
        }
        let bits = match head[4] {
            1 => 32,
            2 => 64,
            _ => return None,
        };
        let little_endian = match head[5] {
            1 => true,
            2 => false,
            _ => return None,
        };
        let u16_at = |at: usize| {
            let b = [head[at], head[at + 1]];
            if little_endian {
                u16::from_le_bytes(b)
            } else {
                u16::from_be_bytes(b)
            }
        };
        Some(Ident { bits, little_endian, os_abi: head[7], machine: u16_at(18), file_type: u16_at(16) })
    }

    /// Reads the identity of the file at `path` (its first 64 bytes only).
    pub fn of_file(path: &Path) -> Result<Option<Ident>> {
        let mut head = [0u8; 64];
        let mut file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        let mut read = 0;
        while read < head.len() {
            match file.read(&mut head[read..]) {
                Ok(0) => break,
                Ok(n) => read += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
            }
        }
        Ok(Ident::parse(&head[..read]))
    }

    /// "ELF 64-bit LSB x86-64", as `file` would say it.
    pub fn describe(&self) -> String {
        format!("ELF {}-bit {} {}", self.bits, if self.little_endian { "LSB" } else { "MSB" }, machine_name(self.machine))
    }

    /// Whether the loader of a process with identity `host` would map this
    /// file, and why not. Glibc skips a file that fails this and goes on
    /// searching (it is not an error unless nothing else is found).
    pub fn mismatch(&self, host: &Ident) -> Option<String> {
        if self.bits != host.bits {
            return Some(format!("wrong ELF class: {}-bit, this process is {}-bit", self.bits, host.bits));
        }
        if self.little_endian != host.little_endian {
            return Some("wrong byte order".to_owned());
        }
        if self.machine != host.machine {
            return Some(format!("built for {}, this machine is {}", machine_name(self.machine), machine_name(host.machine)));
        }
        // ELFOSABI_SYSV (0) and ELFOSABI_GNU (3) are what glibc accepts.
        if self.os_abi != 0 && self.os_abi != 3 {
            return Some(format!("ELF OS ABI {} (glibc accepts only System V and GNU)", self.os_abi));
        }
        None
    }
}

/// The name of an ELF machine, as `uname -m` says it where there is one.
pub fn machine_name(machine: u16) -> String {
    match machine {
        3 => "i386".to_owned(),
        8 => "mips".to_owned(),
        20 => "ppc".to_owned(),
        21 => "ppc64".to_owned(),
        22 => "s390x".to_owned(),
        40 => "arm".to_owned(),
        62 => "x86_64".to_owned(),
        183 => "aarch64".to_owned(),
        243 => "riscv64".to_owned(),
        258 => "loongarch64".to_owned(),
        other => format!("ELF machine {other}"),
    }
}

/// One symbol version a file requires of a library (SHT_GNU_VERNEED).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionNeed {
    /// The library as the file names it (a DT_NEEDED name).
    pub library: String,
    /// `GLIBC_2.34`.
    pub version: String,
    /// VER_FLG_WEAK: the loader only warns when it is missing.
    pub weak: bool,
    /// Undefined symbols bound to this version, sorted.
    pub symbols: Vec<String>,
}

/// A section, with what the checks that read inside need.
#[derive(Debug, Clone)]
pub struct Section {
    pub name: String,
    pub address: u64,
    pub offset: u64,
    pub size: u64,
    pub executable: bool,
    /// SHT_NOBITS (`.bss`): no bytes in the file.
    pub no_bits: bool,
}

/// An undefined dynamic symbol the file needs from somewhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Import {
    pub name: String,
    /// STB_WEAK: missing is not an error.
    pub weak: bool,
    /// The (library, version) it is bound to, when versioned.
    pub version: Option<(String, String)>,
}

/// What the loader, and the checks, read from one shared object.
pub struct ObjectFile {
    pub path: PathBuf,
    pub ident: Ident,
    pub soname: Option<String>,
    pub needed: Vec<String>,
    pub rpath: Option<String>,
    pub runpath: Option<String>,
    /// DF_1_NODEFLIB: neither ld.so.cache nor the default directories are
    /// searched for this object's dependencies.
    pub nodeflib: bool,
    pub version_needs: Vec<VersionNeed>,
    /// Version names it defines (SHT_GNU_VERDEF), the base entry (its own
    /// name) left out.
    pub version_defs: Vec<String>,
    pub imports: Vec<Import>,
    /// Names of the global and weak symbols it defines.
    pub exports: HashSet<String>,
    pub sections: Vec<Section>,
    /// `PT_INTERP`, for an executable.
    pub interpreter: Option<String>,
    map: memmap2::Mmap,
}

impl std::fmt::Debug for ObjectFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectFile").field("path", &self.path).field("soname", &self.soname).field("needed", &self.needed).finish()
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

impl ObjectFile {
    /// Maps and reads the file at `path`.
    pub fn open(path: &Path) -> Result<ObjectFile> {
        let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        // SAFETY: the map is read-only and private. A file truncated by
        // someone else while it is mapped makes reads past its new end fault
        // (SIGBUS), which is the price of not reading 500 MB plugins whole;
        // plugins and libraries are not rewritten in place in practice.
        let map = unsafe { memmap2::Mmap::map(&file) }.with_context(|| format!("cannot map {}", path.display()))?;
        let ident = Ident::parse(&map).ok_or_else(|| anyhow!("{} is not an ELF file", path.display()))?;
        let mut object = ObjectFile {
            path: path.to_path_buf(),
            ident,
            soname: None,
            needed: Vec::new(),
            rpath: None,
            runpath: None,
            nodeflib: false,
            version_needs: Vec::new(),
            version_defs: Vec::new(),
            imports: Vec::new(),
            exports: HashSet::new(),
            sections: Vec::new(),
            interpreter: None,
            map,
        };
        let parsed =
            if ident.bits == 64 { object.read::<elf::FileHeader64<Endianness>>() } else { object.read::<elf::FileHeader32<Endianness>>() };
        parsed.with_context(|| format!("cannot read {} as the loader would", path.display()))?;
        Ok(object)
    }

    /// The whole file.
    pub fn data(&self) -> &[u8] {
        &self.map
    }

    /// The bytes of the named section (empty for SHT_NOBITS), if it exists
    /// and lies inside the file.
    pub fn section_data(&self, name: &str) -> Option<(&Section, &[u8])> {
        let section = self.sections.iter().find(|s| s.name == name)?;
        Some((section, self.bytes_of(section)?))
    }

    pub fn bytes_of(&self, section: &Section) -> Option<&[u8]> {
        if section.no_bits {
            return Some(&[]);
        }
        let start = usize::try_from(section.offset).ok()?;
        let end = start.checked_add(usize::try_from(section.size).ok()?)?;
        self.map.get(start..end)
    }

    fn read<Elf: FileHeader<Endian = Endianness>>(&mut self) -> Result<()> {
        let data: &[u8] = &self.map;
        let bad = |e: object::read::Error| anyhow!("malformed ELF: {e}");
        let header = Elf::parse(data).map_err(bad)?;
        let endian = header.endian().map_err(bad)?;
        let sections = header.sections(endian, data).map_err(bad)?;
        for (_, s) in sections.enumerate() {
            let name = text(sections.section_name(endian, s).unwrap_or_default());
            self.sections.push(Section {
                name,
                address: s.sh_addr(endian).into(),
                offset: s.sh_offset(endian).into(),
                size: s.sh_size(endian).into(),
                executable: s.sh_flags(endian).0 & elf::SHF_EXECINSTR.0 != 0,
                no_bits: s.sh_type(endian) == elf::SHT_NOBITS,
            });
        }
        for segment in header.program_headers(endian, data).map_err(bad)? {
            use object::read::elf::ProgramHeader as _;
            if segment.p_type(endian) == elf::PT_INTERP {
                if let Ok(Some(bytes)) = segment.interpreter(endian, data) {
                    self.interpreter = Some(text(bytes));
                }
            }
        }

        let dynamic = sections.dynamic_table(endian, data).map_err(bad)?;
        for d in dynamic.iter() {
            let value = || dynamic.string(d).map(text).map_err(bad);
            match d.tag {
                elf::DT_NEEDED => self.needed.push(value()?),
                elf::DT_SONAME => self.soname = Some(value()?),
                elf::DT_RUNPATH => self.runpath = Some(value()?),
                elf::DT_RPATH => self.rpath = Some(value()?),
                elf::DT_FLAGS_1 => self.nodeflib = d.val & elf::DF_1_NODEFLIB.0 != 0,
                _ => {}
            }
        }

        let mut needs: BTreeMap<(String, String), (bool, Vec<String>)> = BTreeMap::new();
        if let Some((mut iter, link)) = sections.gnu_verneed(endian, data).map_err(bad)? {
            let strings = sections.strings(endian, data, link).map_err(bad)?;
            while let Some((need, mut auxes)) = iter.next().map_err(bad)? {
                let file = text(need.file(endian, strings).map_err(bad)?);
                while let Some(aux) = auxes.next().map_err(bad)? {
                    let weak = aux.vna_flags.get(endian).0 & elf::VER_FLG_WEAK.0 != 0;
                    needs.insert((file.clone(), text(aux.name(endian, strings).map_err(bad)?)), (weak, Vec::new()));
                }
            }
        }
        if let Some((mut iter, link)) = sections.gnu_verdef(endian, data).map_err(bad)? {
            let strings = sections.strings(endian, data, link).map_err(bad)?;
            while let Some((def, mut auxes)) = iter.next().map_err(bad)? {
                let base = def.vd_flags.get(endian).0 & elf::VER_FLG_BASE.0 != 0;
                if let Some(aux) = auxes.next().map_err(bad)? {
                    if !base {
                        self.version_defs.push(text(aux.name(endian, strings).map_err(bad)?));
                    }
                }
            }
        }

        let symbols = sections.symbols(endian, data, elf::SHT_DYNSYM).map_err(bad)?;
        let versions = sections.versions(endian, data).map_err(bad)?;
        for (index, symbol) in symbols.enumerate() {
            if index.0 == 0 {
                continue;
            }
            let name = symbols.symbol_name(endian, symbol).map_err(bad)?;
            let bind = symbol.st_bind();
            if !symbol.is_undefined(endian) {
                if bind == elf::STB_GLOBAL || bind == elf::STB_WEAK || bind == elf::STB_GNU_UNIQUE {
                    self.exports.insert(text(name));
                }
                continue;
            }
            let mut version = None;
            if let Some(versions) = &versions {
                if let Some(v) = versions.version(versions.version_index(endian, index).index()).map_err(bad)? {
                    if let Some(file) = v.file() {
                        let key = (text(file), text(v.name()));
                        needs.entry(key.clone()).or_insert((false, Vec::new())).1.push(text(name));
                        version = Some(key);
                    }
                }
            }
            self.imports.push(Import { name: text(name), weak: bind == elf::STB_WEAK, version });
        }
        self.version_needs = needs
            .into_iter()
            .map(|((library, version), (weak, mut symbols))| {
                symbols.sort();
                symbols.dedup();
                VersionNeed { library, version, weak, symbols }
            })
            .collect();
        if !matches!(self.ident.file_type, 2 | 3) {
            bail!("ELF type {} is neither a shared library nor an executable", self.ident.file_type);
        }
        Ok(())
    }
}
