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
        let load_err = |reason: String| Error::Load { path: path.to_path_buf(), reason };
        // dlopen's own messages for these are raw ("wrong ELF class",
        // "cannot read file data: Is a directory"): say what is wrong first.
        check_file(path).map_err(load_err)?;
        // SAFETY: loading a library runs its initializers; that is what
        // loading a PJRT plugin means.
        let lib = unsafe { libloading::Library::new(path) }.map_err(|e| load_err(e.to_string()))?;
        let api = unsafe {
            let get: libloading::Symbol<unsafe extern "C" fn() -> *const PJRT_Api> =
                lib.get(b"GetPjrtApi\0").map_err(|e| load_err(format!("no GetPjrtApi symbol, not a PJRT plugin ({e})")))?;
            get()
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
            unsafe { crate::no_unwind::call_void(f, &mut args) };
            // SAFETY: message/message_size describe a buffer owned by the error (or null).
            message = unsafe { string_from(args.message, args.message_size) };
        }
        if let Ok(f) = api_fn!(self, PJRT_Error_GetCode) {
            let mut args = args!(PJRT_Error_GetCode_Args { error: error });
            let nested = unsafe { crate::no_unwind::call(f, &mut args) };
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
            unsafe { crate::no_unwind::call_void(f, &mut args) };
        }
    }

    /// The extensions the plugin offers, in chain order.
    pub fn extensions(&self) -> Vec<Extension> {
        let mut out = Vec::new();
        let Ok(api) = self.api_up_to(offset_of!(PJRT_Api, extension_start) + size_of::<usize>(), "extension_start") else {
            return out;
        };
        // SAFETY: within struct_size.
        let mut next = unsafe { std::ptr::addr_of!((*api).extension_start).read() } as *const PJRT_Extension_Base;
        // A malformed chain (a cycle) must not hang us.
        while !next.is_null() && out.len() < 256 {
            // SAFETY: every chain element starts with PJRT_Extension_Base.
            let base = unsafe { next.read() };
            if out.iter().any(|e: &Extension| e.base == next) {
                break;
            }
            out.push(Extension { kind: base.type_, struct_size: base.struct_size, base: next });
            next = base.next;
        }
        out
    }

    /// The first extension of type `kind`, if the plugin has it.
    pub fn extension(&self, kind: PJRT_Extension_Type) -> Option<Extension> {
        self.extensions().into_iter().find(|e| e.kind == kind)
    }
}

/// One element of the plugin's extension chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extension {
    pub kind: PJRT_Extension_Type,
    /// The extension struct's size as the plugin declares it: read no
    /// member beyond it.
    pub struct_size: usize,
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
