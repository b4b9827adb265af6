// Constants keep their C names, as the header spells them.
#![allow(non_upper_case_globals)]
//! A small safe loader for PJRT plugins.
//!
//! [`Plugin::load`] opens a plugin, calls its `GetPjrtApi` and checks the
//! API version: another MAJOR version is refused; any MINOR version is
//! accepted, older or newer than these bindings. An older plugin has a
//! shorter `PJRT_Api`, so every member is reached through [`api_fn!`],
//! which checks it lies within the plugin's `PJRT_Api.struct_size` and
//! returns [`Error::Unsupported`] otherwise: never a read past the end.
//!
//! ```no_run
//! use pjrt_sys::{api_fn, loader::Plugin};
//! let plugin = Plugin::load("libpjrt_cpu.so".as_ref())?;
//! plugin.initialize()?;
//! println!("PJRT API {}.{}", plugin.api_version().0, plugin.api_version().1);
//! let create = api_fn!(&plugin, PJRT_Client_Create)?;
//! # Ok::<(), pjrt_sys::loader::Error>(())
//! ```

use std::ffi::c_char;
use std::fmt;
use std::mem::{offset_of, size_of};
use std::path::{Path, PathBuf};

use crate::*;

/// Everything that can go wrong talking to a plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The shared library could not be opened, has no `GetPjrtApi`, or
    /// returned an unusable `PJRT_Api`.
    Load { path: PathBuf, reason: String },
    /// The plugin speaks another MAJOR version of the PJRT API.
    IncompatibleVersion { path: PathBuf, plugin: (i32, i32), bindings: (i32, i32) },
    /// The plugin's `PJRT_Api` (or an extension) ends before the member, or
    /// leaves it null: the plugin predates it or does not implement it.
    Unsupported { what: &'static str, plugin: (i32, i32), needed_size: usize, struct_size: usize },
    /// A PJRT function returned a `PJRT_Error`.
    Pjrt { function: &'static str, code: PJRT_Error_Code, message: String },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Load { path, reason } => write!(f, "cannot load PJRT plugin {}: {reason}", path.display()),
            Error::IncompatibleVersion { path, plugin, bindings } => write!(
                f,
                "PJRT plugin {} implements PJRT API {}.{}, these bindings are for {}.{}: a different MAJOR version is not ABI compatible; use a plugin built for PJRT API {}.x",
                path.display(),
                plugin.0,
                plugin.1,
                bindings.0,
                bindings.1,
                bindings.0
            ),
            Error::Unsupported { what, plugin, needed_size, struct_size } if needed_size > struct_size => write!(
                f,
                "the plugin (PJRT API {}.{}) does not provide {what}: its struct ends at {struct_size} bytes, {what} needs {needed_size}; use a newer plugin",
                plugin.0, plugin.1
            ),
            Error::Unsupported { what, plugin, .. } => {
                write!(f, "the plugin (PJRT API {}.{}) does not implement {what} (null function pointer)", plugin.0, plugin.1)
            }
            Error::Pjrt { function, code, message } => {
                write!(f, "{function} failed with {} ({code}): {message}", error_code_name(*code))
            }
        }
    }
}

impl std::error::Error for Error {}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The name of a `PJRT_Error_Code`, as in `absl::StatusCode`.
pub fn error_code_name(code: PJRT_Error_Code) -> &'static str {
    match code {
        PJRT_Error_Code_OK => "OK",
        PJRT_Error_Code_CANCELLED => "CANCELLED",
        PJRT_Error_Code_UNKNOWN => "UNKNOWN",
        PJRT_Error_Code_INVALID_ARGUMENT => "INVALID_ARGUMENT",
        PJRT_Error_Code_DEADLINE_EXCEEDED => "DEADLINE_EXCEEDED",
        PJRT_Error_Code_NOT_FOUND => "NOT_FOUND",
        PJRT_Error_Code_ALREADY_EXISTS => "ALREADY_EXISTS",
        PJRT_Error_Code_PERMISSION_DENIED => "PERMISSION_DENIED",
        PJRT_Error_Code_RESOURCE_EXHAUSTED => "RESOURCE_EXHAUSTED",
        PJRT_Error_Code_FAILED_PRECONDITION => "FAILED_PRECONDITION",
        PJRT_Error_Code_ABORTED => "ABORTED",
        PJRT_Error_Code_OUT_OF_RANGE => "OUT_OF_RANGE",
        PJRT_Error_Code_UNIMPLEMENTED => "UNIMPLEMENTED",
        PJRT_Error_Code_INTERNAL => "INTERNAL",
        PJRT_Error_Code_UNAVAILABLE => "UNAVAILABLE",
        PJRT_Error_Code_DATA_LOSS => "DATA_LOSS",
        PJRT_Error_Code_UNAUTHENTICATED => "UNAUTHENTICATED",
        _ => "an unknown error code",
    }
}

/// A loaded plugin. The library is never unloaded: XLA plugins start
/// threads and register static state that `dlclose` would pull out from
/// under them.
pub struct Plugin {
    path: PathBuf,
    api: *const PJRT_Api,
    struct_size: usize,
    version: (i32, i32),
}

// The PJRT C API is thread-safe; the `PJRT_Api` table is immutable.
unsafe impl Send for Plugin {}
unsafe impl Sync for Plugin {}

impl fmt::Debug for Plugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Plugin")
            .field("path", &self.path)
            .field("api_version", &self.version)
            .field("struct_size", &self.struct_size)
            .finish()
    }
}

/// The PJRT API version of these bindings.
pub const BINDINGS_VERSION: (i32, i32) = (PJRT_API_MAJOR as i32, PJRT_API_MINOR as i32);

impl Plugin {
    /// Opens the plugin at `path`, calls `GetPjrtApi` and checks the API
    /// version. Does not initialize it: see [`Plugin::initialize`].
    pub fn load(path: &Path) -> Result<Plugin> {
        Self::load_with_flags(path, None)
    }

    /// [`Plugin::load`] with the flags `dlopen` gets (`RTLD_NOW | RTLD_LOCAL`,
    /// `RTLD_GLOBAL`, `RTLD_DEEPBIND`...); `None`: libloading's default
    /// (`RTLD_LAZY | RTLD_LOCAL`).
    pub fn load_with_flags(path: &Path, flags: Option<i32>) -> Result<Plugin> {
        let load_err = |reason: String| Error::Load { path: path.to_path_buf(), reason };
        // dlopen's own messages for these are raw ("wrong ELF class",
        // "cannot read file data: Is a directory"): say what is wrong first.
        check_file(path).map_err(load_err)?;
        // SAFETY: loading a library runs its initializers; that is what
        // loading a PJRT plugin means.
        // dlopen runs the plugin's initializers: plugin code.
        let lib = crate::in_flight::in_plugin("dlopen", || unsafe {
            match flags {
                #[cfg(unix)]
                Some(flags) => libloading::os::unix::Library::open(Some(path), flags).map(libloading::Library::from),
                _ => libloading::Library::new(path),
            }
        })
        .map_err(|e| load_err(e.to_string()))?;
        crate::in_flight::plugin_loaded(path);
        let api = unsafe {
            let get: libloading::Symbol<unsafe extern "C" fn() -> *const PJRT_Api> =
                lib.get(b"GetPjrtApi\0").map_err(|e| load_err(format!("no GetPjrtApi symbol, not a PJRT plugin ({e})")))?;
            crate::in_flight::in_plugin("GetPjrtApi", || get())
        };
        std::mem::forget(lib);
        if api.is_null() {
            return Err(load_err("GetPjrtApi returned null".into()));
        }
        // SAFETY: every PJRT_Api starts with struct_size.
        let struct_size = unsafe { std::ptr::addr_of!((*api).struct_size).read() };
        let version_end = offset_of!(PJRT_Api, pjrt_api_version) + size_of::<PJRT_Api_Version>();
        if struct_size < version_end {
            return Err(load_err(format!("its PJRT_Api is {struct_size} bytes, too small to hold a version")));
        }
        // SAFETY: within struct_size, checked above.
        let v = unsafe { std::ptr::addr_of!((*api).pjrt_api_version).read() };
        let version = (v.major_version, v.minor_version);
        if version.0 != BINDINGS_VERSION.0 {
            return Err(Error::IncompatibleVersion { path: path.to_path_buf(), plugin: version, bindings: BINDINGS_VERSION });
        }
        Ok(Plugin { path: path.to_path_buf(), api, struct_size, version })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `(major, minor)` PJRT API version the plugin implements.
    pub fn api_version(&self) -> (i32, i32) {
        self.version
    }

    /// The plugin's `PJRT_Api.struct_size`: how much of `PJRT_Api` it has.
    pub fn struct_size(&self) -> usize {
        self.struct_size
    }

    /// The raw table, for [`api_fn!`]: fails unless the plugin's `PJRT_Api`
    /// extends to at least `end` bytes.
    #[doc(hidden)]
    pub fn api_up_to(&self, end: usize, what: &'static str) -> Result<*const PJRT_Api> {
        if end > self.struct_size {
            return Err(Error::Unsupported { what, plugin: self.version, needed_size: end, struct_size: self.struct_size });
        }
        Ok(self.api)
    }

    #[doc(hidden)]
    pub fn null_function(&self, what: &'static str) -> Error {
        Error::Unsupported { what, plugin: self.version, needed_size: 0, struct_size: self.struct_size }
    }

    /// `PJRT_Plugin_Initialize`: call once, before creating a client.
    pub fn initialize(&self) -> Result<()> {
        call!(self, PJRT_Plugin_Initialize, &mut args!(PJRT_Plugin_Initialize_Args {}))
    }

    /// Turns the `PJRT_Error*` a PJRT function returned into a `Result`,
    /// reading its message and code and destroying it.
    pub fn check(&self, error: *mut PJRT_Error, function: &'static str) -> Result<()> {
        if error.is_null() {
            return Ok(());
        }
        let mut message = String::new();
        let mut code = PJRT_Error_Code_UNKNOWN;
        // The error functions are the first members of every PJRT_Api.
        if let Ok(f) = api_fn!(self, PJRT_Error_Message) {
            let mut args = args!(PJRT_Error_Message_Args { error: error });
            crate::in_flight::in_plugin("PJRT_Error_Message", || unsafe { crate::no_unwind::call_void(f, &mut args) });
            // SAFETY: message/message_size describe a buffer owned by the error (or null).
            message = unsafe { string_from(args.message, args.message_size) };
        }
        if let Ok(f) = api_fn!(self, PJRT_Error_GetCode) {
            let mut args = args!(PJRT_Error_GetCode_Args { error: error });
            let nested = crate::in_flight::in_plugin("PJRT_Error_GetCode", || unsafe { crate::no_unwind::call(f, &mut args) });
            if nested.is_null() {
                code = args.code;
            } else {
                self.destroy_error(nested);
            }
        }
        self.destroy_error(error);
        Err(Error::Pjrt { function, code, message })
    }

    fn destroy_error(&self, error: *mut PJRT_Error) {
        if let Ok(f) = api_fn!(self, PJRT_Error_Destroy) {
            let mut args = args!(PJRT_Error_Destroy_Args { error: error });
            crate::in_flight::in_plugin("PJRT_Error_Destroy", || unsafe { crate::no_unwind::call_void(f, &mut args) });
        }
    }

    /// `(major, minor)` as the history table counts it: the minor version.
    pub fn minor(&self) -> u32 {
        self.version.1.max(0) as u32
    }

    /// The extensions the plugin offers, in chain order (see
    /// [`Plugin::extension_chain`]; what it could read before a problem).
    pub fn extensions(&self) -> Vec<Extension> {
        self.extension_chain().elements
    }

    /// The plugin's extension chain, read as its PJRT version lays it out
    /// ([`chain_layout`]): nothing before 0.31 (`void* priv`), elements
    /// without a `struct_size` up to 0.44, `PJRT_Extension_Base` since.
    /// Every element is read with [`read_plugin_memory`]: a pointer into
    /// unmapped memory ends the walk with a problem, never a crash.
    pub fn extension_chain(&self) -> ExtensionChain {
        let layout = chain_layout(self.minor());
        let mut chain = ExtensionChain { layout, elements: Vec::new(), problem: None };
        if layout == ChainLayout::Private {
            return chain;
        }
        let Ok(api) = self.api_up_to(offset_of!(PJRT_Api, extension_start) + size_of::<usize>(), "extension_start") else {
            return chain;
        };
        // SAFETY: within struct_size.
        let mut next = unsafe { std::ptr::addr_of!((*api).extension_start).read() } as usize;
        let (type_offset, next_offset, sized) = match layout {
            ChainLayout::Unsized { type_offset, next_offset } => (type_offset, next_offset, false),
            _ => (offset_of!(PJRT_Extension_Base, type_), offset_of!(PJRT_Extension_Base, next), true),
        };
        let element_size = next_offset + size_of::<usize>();
        while next != 0 {
            // A malformed chain (a cycle) must not hang us.
            if chain.elements.iter().any(|e: &Extension| e.base as usize == next) {
                chain.problem = Some(format!("the chain loops back to its element at {next:#x} after {} elements", chain.elements.len()));
                break;
            }
            if chain.elements.len() >= 256 {
                chain.problem = Some("the chain has more than 256 elements".into());
                break;
            }
            let Some(bytes) = read_plugin_memory(next, element_size) else {
                chain.problem = Some(format!(
                    "element {} of the chain, at {next:#x}, is not readable memory (read as {})",
                    chain.elements.len() + 1,
                    layout.describe()
                ));
                break;
            };
            let word = |at: usize| usize::from_ne_bytes(bytes[at..at + size_of::<usize>()].try_into().expect("one word"));
            let kind = i32::from_ne_bytes(bytes[type_offset..type_offset + 4].try_into().expect("four bytes")) as PJRT_Extension_Type;
            let struct_size = if sized { word(0) } else { 0 };
            chain.elements.push(Extension { kind, struct_size, sized, base: next as *const PJRT_Extension_Base });
            next = word(next_offset);
        }
        chain
    }

    /// The first extension of type `kind`, if the plugin has it.
    pub fn extension(&self, kind: PJRT_Extension_Type) -> Option<Extension> {
        self.extensions().into_iter().find(|e| e.kind == kind)
    }
}

/// How a plugin's `PJRT_Api.extension_start` (its second member) is laid
/// out at its PJRT version, from the history table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChainLayout {
    /// `void* priv` (before 0.31): not an extension chain; never read.
    Private,
    /// Elements that start with their type and `next` but carry no
    /// `struct_size` (`PJRT_Structure_Base` 0.31 to 0.40,
    /// `PJRT_Extension_Base` 0.41 to 0.44): their members cannot be bounded.
    Unsized { type_offset: usize, next_offset: usize },
    /// `PJRT_Extension_Base { struct_size, type, next }` (0.45 on).
    Sized,
}

impl ChainLayout {
    pub fn describe(self) -> &'static str {
        match self {
            ChainLayout::Private => "`void* priv`, not an extension chain",
            ChainLayout::Unsized { .. } => "elements of type and next, without struct_size (PJRT 0.31 to 0.44)",
            ChainLayout::Sized => "PJRT_Extension_Base { struct_size, type, next }",
        }
    }
}

/// The layout of the extension chain at PJRT `minor` (see [`ChainLayout`]).
pub fn chain_layout(minor: u32) -> ChainLayout {
    use crate::history::{CHANGES, FIELDS};
    let minor = minor.min(crate::history::NEWEST_MINOR);
    // A rename continues its run (same `since`), so the name a version gave
    // the slot is in the change that renamed it.
    let renamed = CHANGES.iter().find(|c| c.strukt == "PJRT_Api" && c.offset == size_of::<usize>() as u64 && c.before_name == "priv");
    if renamed.is_some_and(|c| minor < c.minor) {
        return ChainLayout::Private;
    }
    let element: Vec<_> =
        FIELDS.iter().filter(|f| (f.strukt == "PJRT_Extension_Base" || f.strukt == "PJRT_Structure_Base") && f.covers(minor)).collect();
    let offset_of = |name: &str| element.iter().find(|f| f.name == name).map(|f| f.offset as usize);
    match (offset_of("struct_size"), offset_of("type"), offset_of("next")) {
        (None, Some(type_offset), Some(next_offset)) => ChainLayout::Unsized { type_offset, next_offset },
        _ => ChainLayout::Sized,
    }
}

/// What [`Plugin::extension_chain`] read.
#[derive(Debug, Clone)]
pub struct ExtensionChain {
    pub layout: ChainLayout,
    pub elements: Vec<Extension>,
    /// Why the walk stopped early: a cycle, unreadable memory.
    pub problem: Option<String>,
}

impl ExtensionChain {
    /// Whether the elements carry a `struct_size` (PJRT 0.45 on).
    pub fn layout_sized(&self) -> bool {
        self.layout == ChainLayout::Sized
    }
}

/// Copies `len` bytes of this process's memory at `address`, or `None`
/// when they are not all readable: how the harness reads pointers a plugin
/// handed over without trusting them (a garbage pointer is an answer, not
/// a crash). Linux: `process_vm_readv` on this process, else a pipe, which
/// refuses an unreadable source with EFAULT.
pub fn read_plugin_memory(address: usize, len: usize) -> Option<Vec<u8>> {
    if address == 0 || address.checked_add(len).is_none() {
        return None;
    }
    let mut out = vec![0u8; len];
    if len == 0 {
        return Some(out);
    }
    #[cfg(target_os = "linux")]
    {
        let local = libc::iovec { iov_base: out.as_mut_ptr() as *mut _, iov_len: len };
        let remote = libc::iovec { iov_base: address as *mut _, iov_len: len };
        // SAFETY: the kernel checks the remote range; `out` is ours.
        let n = unsafe { libc::process_vm_readv(libc::getpid(), &local, 1, &remote, 1, 0) };
        if n == len as isize {
            return Some(out);
        }
        let error = std::io::Error::last_os_error().raw_os_error();
        if n >= 0 || error == Some(libc::EFAULT) {
            return None;
        }
    }
    // No process_vm_readv (another OS, a seccomp filter): a pipe's write
    // fails with EFAULT on an unreadable source.
    let mut fds = [0; 2];
    // SAFETY: plain syscalls on descriptors we own.
    unsafe {
        if libc::pipe(fds.as_mut_ptr()) != 0 {
            return None;
        }
        let mut done = 0;
        let mut ok = true;
        while done < len {
            let chunk = (len - done).min(4096);
            let w = libc::write(fds[1], (address + done) as *const _, chunk);
            if w <= 0 || libc::read(fds[0], out.as_mut_ptr().add(done) as *mut _, w as usize) != w {
                ok = false;
                break;
            }
            done += w as usize;
        }
        libc::close(fds[0]);
        libc::close(fds[1]);
        ok.then_some(out)
    }
}

/// One element of the plugin's extension chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extension {
    pub kind: PJRT_Extension_Type,
    /// The extension struct's size as the plugin declares it: read no
    /// member beyond it. 0 for an element without one (before 0.45).
    pub struct_size: usize,
    /// Whether the element carries a `struct_size` (PJRT 0.45 on); one that
    /// does not has no member that can be read safely.
    pub sized: bool,
    /// The extension struct; cast it to its type (e.g.
    /// `PJRT_Layouts_Extension`) after checking `struct_size`.
    pub base: *const PJRT_Extension_Base,
}

impl Extension {
    /// `PJRT_Extension_Type_Layouts` -> `"Layouts"`; `None` for a type
    /// newer than these bindings.
    pub fn name(&self) -> Option<&'static str> {
        extension_type_name(self.kind)
    }
}

/// The name of an extension type, without its `PJRT_Extension_Type_`
/// prefix, as the newest header the history table knows names it (newer
/// than these bindings: `XlaTransform` is type 24). `None` for a type
/// newer than that header.
pub fn extension_type_name(kind: PJRT_Extension_Type) -> Option<&'static str> {
    crate::history::enumerator_name("PJRT_Extension_Type", kind as i64).map(|n| n.trim_start_matches("PJRT_Extension_Type_"))
}

/// Refuses what cannot be this machine's plugin before `dlopen` sees it: a
/// directory, a file that is not ELF, an ELF file for another architecture
/// (read from its header: `e_ident[EI_CLASS]`, `e_machine`).
fn check_file(path: &Path) -> std::result::Result<(), String> {
    use std::io::Read;
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read it: {e}"))?;
    if meta.is_dir() {
        return Err("it is a directory, not a shared library: give the plugin's .so file".into());
    }
    if !cfg!(target_os = "linux") {
        return Ok(());
    }
    let mut header = [0u8; 20];
    let mut file = std::fs::File::open(path).map_err(|e| format!("cannot open it: {e}"))?;
    let mut read = 0;
    while read < header.len() {
        match file.read(&mut header[read..]) {
            Ok(0) => break,
            Ok(n) => read += n,
            Err(e) => return Err(format!("cannot read it: {e}")),
        }
    }
    if read < header.len() || &header[..4] != b"\x7fELF" {
        return Err("it is not an ELF shared library (no ELF header)".into());
    }
    let machine = match header[5] {
        2 => u16::from_be_bytes([header[18], header[19]]),
        _ => u16::from_le_bytes([header[18], header[19]]),
    };
    let bits = if header[4] == 2 { 64 } else { 32 };
    let built_for = elf_machine_name(machine, bits);
    let host = std::env::consts::ARCH;
    if built_for != host {
        return Err(format!("it is built for {built_for}, this machine is {host}: use the plugin's {host} build"));
    }
    Ok(())
}

/// `e_machine` (and the ELF class) as Rust names architectures
/// (`std::env::consts::ARCH`).
fn elf_machine_name(machine: u16, bits: u32) -> String {
    match (machine, bits) {
        (62, 64) => "x86_64".into(),
        (3, 32) => "x86".into(),
        (183, 64) => "aarch64".into(),
        (40, 32) => "arm".into(),
        (243, 64) => "riscv64".into(),
        (21, 64) => "powerpc64".into(),
        (22, 64) => "s390x".into(),
        (8, _) => "mips".into(),
        (other, bits) => format!("ELF machine {other} ({bits}-bit)"),
    }
}

/// A `(pointer, size)` pair from the plugin as a string (lossy UTF-8).
///
/// # Safety
/// `data` must point to `size` readable bytes, or be null.
pub unsafe fn string_from(data: *const c_char, size: usize) -> String {
    if data.is_null() {
        return String::new();
    }
    String::from_utf8_lossy(std::slice::from_raw_parts(data as *const u8, size)).into_owned()
}

// api_fn! assumes every member it reads is one function pointer.
const _: () = assert!(size_of::<PJRT_Client_Create>() == size_of::<usize>());
