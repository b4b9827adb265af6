//! What every check stands on: the outcome type, the context a group of
//! checks shares in its child process (the plugin, a client, a device, a
//! compiled program, each made once and on demand), and the version gate
//! every PJRT call goes through.
//!
//! The gate is what makes the suite version-aware by construction: a check
//! calls `PJRT_Api` members with [`pjrt!`] and extension members with
//! [`ext_call!`], which look the member up in the history table
//! (`pjrt_sys::history`) before calling: a member beyond the plugin's
//! `struct_size`, or one whose slot held something else at the plugin's
//! version, is UNSUPPORTED and never called; a check that sets an args
//! field the plugin's version predates asks [`Ctx::gate_field`] first. The
//! newest version a check reached is recorded with its result.

use std::cell::Cell;
use std::path::PathBuf;
use std::ptr::null_mut;

use pjrt_sys::loader::{self, Extension, Plugin};
use pjrt_sys::{args, call, history, *};
use serde::Serialize;

use crate::plugin::client_options::{self, ClientOption, NamedValues};
use crate::plugin::session::{extension_name, Buffer, Client, Event, LoadedExecutable};

/// A check's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    /// The plugin did what the C API says.
    Pass,
    /// The plugin did something else: a wrong result, an error where none is
    /// due, a crash.
    Fail,
    /// The plugin does not offer it: a member past its `struct_size` or
    /// null, an extension it lacks, a version that predates it, or an
    /// optional entry point that says UNIMPLEMENTED.
    Unsupported,
    /// Not run: a prerequisite is missing (no client, no device...).
    Skip,
    /// The harness failed, not the plugin: it crashed outside any call into
    /// the plugin (reading memory the plugin handed over included), or a
    /// check panicked. Says nothing about the plugin.
    Error,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Fail => "FAIL",
            Status::Unsupported => "UNSUPPORTED",
            Status::Skip => "SKIP",
            Status::Error => "ERROR",
        }
    }
}

/// Why a check did not pass.
#[derive(Debug, Clone)]
pub enum CheckError {
    Fail(String),
    Unsupported(String),
    Skip(String),
    /// A PJRT function returned an error: a FAIL, an UNSUPPORTED for
    /// UNIMPLEMENTED, or for any code in an optional check.
    Pjrt {
        function: &'static str,
        code: PJRT_Error_Code,
        message: String,
    },
}

impl From<loader::Error> for CheckError {
    fn from(e: loader::Error) -> Self {
        match e {
            loader::Error::Pjrt { function, code, message } => CheckError::Pjrt { function, code, message },
            loader::Error::Unsupported { .. } => CheckError::Unsupported(e.to_string()),
            other => CheckError::Fail(other.to_string()),
        }
    }
}

impl CheckError {
    /// The reason, as a check's detail words it.
    pub fn describe(&self) -> String {
        match self {
            CheckError::Fail(m) | CheckError::Unsupported(m) | CheckError::Skip(m) => m.clone(),
            CheckError::Pjrt { function, code, message } => {
                format!("{function} failed with {}: {}", loader::error_code_name(*code), message.lines().next().unwrap_or(""))
            }
        }
    }
}

pub type Outcome = Result<String, CheckError>;

/// A verdict to look at again (see [`Ctx::recheck_later`]).
struct Recheck {
    id: String,
    due: std::time::Instant,
    recheck: Box<dyn FnOnce() -> Option<String>>,
}

/// `return Err(CheckError::Fail(format!(...)))`
macro_rules! fail {
    ($($arg:tt)*) => { return Err($crate::conform::harness::CheckError::Fail(format!($($arg)*))) };
}

/// `fail!` unless the condition holds.
macro_rules! ensure {
    ($cond:expr, $($arg:tt)*) => { if !$cond { $crate::conform::harness::fail!($($arg)*) } };
}

/// Calls the `PJRT_Api` member `$name` through the version gate.
macro_rules! pjrt {
    ($ctx:expr, $name:ident, $args:expr) => {{
        let ctx: &$crate::conform::harness::Ctx = $ctx;
        ctx.gate_api(::core::stringify!($name), ::core::mem::offset_of!(pjrt_sys::PJRT_Api, $name))?;
        ctx.gate_args(::core::concat!(::core::stringify!($name), "_Args"))?;
        pjrt_sys::call!(ctx.plugin_ref(), $name, $args).map_err($crate::conform::harness::CheckError::from)
    }};
}

/// Calls member `$member` of extension struct `$ty` (found in the chain as
/// `$ext`, an [`Extension`]) through the version gate: never beyond the
/// extension's own `struct_size`.
macro_rules! ext_call {
    ($ctx:expr, $ext:expr, $ty:ident, $member:ident, $args:expr) => {{
        let ctx: &$crate::conform::harness::Ctx = $ctx;
        let ext: &pjrt_sys::loader::Extension = $ext;
        let offset = ::core::mem::offset_of!(pjrt_sys::$ty, $member);
        ctx.gate_extension(ext, ::core::stringify!($ty), ::core::stringify!($member), offset)?;
        let args = $args;
        ctx.gate_args($crate::conform::harness::pointee_name(&args))?;
        // SAFETY: the member lies within the extension's struct_size (gated).
        let f = unsafe { ::core::ptr::addr_of!((*(ext.base as *const pjrt_sys::$ty)).$member).read() };
        match f {
            Some(f) => ctx
                .plugin_ref()
                .check(
                    pjrt_sys::in_flight::in_plugin(::core::stringify!($member), || unsafe { pjrt_sys::no_unwind::call(f, args) }),
                    ::core::stringify!($member),
                )
                .map_err($crate::conform::harness::CheckError::from),
            None => Err($crate::conform::harness::CheckError::Unsupported(format!(
                "{}.{} is null: the plugin does not implement it",
                ::core::stringify!($ty),
                ::core::stringify!($member)
            ))),
        }
    }};
}

pub(crate) use {ensure, ext_call, fail, pjrt};

/// The name of the struct `args` points at (`&mut PJRT_X_Args` ->
/// `PJRT_X_Args`), for the args gate of [`ext_call!`].
pub fn pointee_name<T>(_: &T) -> &'static str {
    let name = std::any::type_name::<T>();
    name.rsplit("::").next().unwrap_or(name).trim_end_matches('>')
}

/// Something made once per child process, on first use: its value, or
/// why it could not be made.
type Lazy<T> = Option<Result<T, String>>;

/// What the checks of one group share.
pub struct Ctx {
    pub path: PathBuf,
    /// Where the child reports (checks, and the making of prerequisites).
    pub events: crate::plugin::child::Events,
    /// Prerequisites an earlier child crashed making, and how.
    broken: std::collections::BTreeMap<String, String>,
    pub backend: Option<String>,
    user_options: Vec<ClientOption>,
    /// The newest PJRT minor version a check reached (for its result).
    since: Cell<u32>,
    /// The check running, for [`Ctx::recheck_later`].
    pub current: String,
    /// Verdicts to look at again once every check has run.
    rechecks: Vec<Recheck>,
    // Fields drop in this order: what uses the client goes first.
    programs: Vec<(&'static str, Result<LoadedExecutable<'static>, String>)>,
    /// A second compilation of the test program: compared with the
    /// first by `executable.fingerprint`, deleted by `executable.delete`.
    spare: Option<LoadedExecutable<'static>>,
    exe: Option<Result<LoadedExecutable<'static>, CheckError>>,
    client: Lazy<Client<'static>>,
    named_values: Option<NamedValues>,
    pub options: Vec<ClientOption>,
    initialized: Lazy<()>,
    plugin: Lazy<&'static Plugin>,
}

impl Ctx {
    pub fn new(path: PathBuf, backend: Option<String>, user_options: Vec<ClientOption>, events: crate::plugin::child::Events) -> Ctx {
        Ctx {
            path,
            events,
            broken: Default::default(),
            backend,
            user_options,
            since: Cell::new(0),
            current: String::new(),
            rechecks: Vec::new(),
            programs: Vec::new(),
            spare: None,
            exe: None,
            client: None,
            named_values: None,
            options: Vec::new(),
            initialized: None,
            plugin: None,
        }
    }

    /// Takes the plugin as loaded elsewhere (by the fork server this
    /// process was forked from): [`Ctx::load`] returns it.
    pub fn adopt(&mut self, loaded: Result<&'static Plugin, String>) {
        self.plugin = Some(loaded);
    }

    /// Marks a prerequisite ("plugin", "client") as one not to make again,
    /// nor to use if it was made here already (a lane that loaded the
    /// plugin ahead of the lead, told that the lead's load failed).
    pub fn mark_broken(&mut self, what: &str, reason: &str) {
        self.broken.insert(what.to_string(), reason.to_string());
        match what {
            "plugin" => {
                self.plugin = None;
                self.initialized = None;
            }
            "client" => self.client = None,
            _ => {}
        }
    }

    /// Announces that `what` is being made: a crash before [`made`] is
    /// blamed on it, and later children skip it.
    fn making(&mut self, what: &str) {
        self.events.emit(&serde_json::json!({ "event": "making", "what": what }));
    }

    fn made(&mut self, what: &str) {
        self.events.emit(&serde_json::json!({ "event": "made", "what": what }));
    }

    /// Loads the plugin (once): dlopen, `GetPjrtApi`, the version check.
    pub fn load(&mut self) -> Result<&'static Plugin, String> {
        if self.plugin.is_none() {
            if let Some(reason) = self.broken.get("plugin") {
                self.plugin = Some(Err(reason.clone()));
            } else {
                self.making("plugin");
                // Leaked: a plugin is never unloaded, and everything borrows it.
                self.plugin = Some(Plugin::load(&self.path).map(|p| &*Box::leak(Box::new(p))).map_err(|e| load_failure(&self.path, &e)));
                self.made("plugin");
            }
        }
        self.plugin.clone().expect("set above")
    }

    /// The plugin, or SKIP when it does not load.
    pub fn plugin(&mut self) -> Result<&'static Plugin, CheckError> {
        self.load().map_err(|_| CheckError::Skip("the plugin does not load (see api.load)".into()))
    }

    /// The plugin once loaded (the gate and the macros need it).
    pub fn plugin_ref(&self) -> &'static Plugin {
        match &self.plugin {
            Some(Ok(p)) => p,
            _ => panic!("a check called PJRT before loading the plugin: call ctx.plugin()? first"),
        }
    }

    pub fn minor(&self) -> u32 {
        self.plugin_ref().api_version().1.max(0) as u32
    }

    /// `PJRT_Plugin_Initialize`, called once: its outcome.
    pub fn initialized(&mut self) -> Result<(), String> {
        let plugin = self.load()?;
        if self.initialized.is_none() {
            self.making("plugin");
            self.initialized = Some(plugin.initialize().map_err(|e| e.to_string()));
            self.made("plugin");
        }
        self.initialized.clone().expect("set above")
    }

    /// `PJRT_Plugin_Initialize` (once), or SKIP.
    pub fn initialize(&mut self) -> Result<(), CheckError> {
        self.plugin()?;
        self.initialized().map_err(|_| CheckError::Skip("the plugin does not initialize (see plugin.initialize)".into()))
    }

    /// Creates the client (once) with the resolved options; the error is
    /// kept, so that `client.create` reports it and the rest skip.
    pub fn create_client(&mut self) -> Result<*mut PJRT_Client, String> {
        if self.client.is_none() {
            if let Some(reason) = self.broken.get("client") {
                self.client = Some(Err(reason.clone()));
            }
        }
        if self.client.is_none() {
            self.making("client");
            let result = (|| -> Result<Client<'static>, String> {
                self.initialize().map_err(|e| match e {
                    CheckError::Skip(m) => m,
                    other => format!("{other:?}"),
                })?;
                let plugin = self.plugin_ref();
                let gpu = client_options::is_gpu(self.backend.as_deref(), &plugin.extensions());
                self.options = client_options::resolve(&self.user_options, gpu);
                let named = NamedValues::new(&self.options);
                let client = Client::create_with(plugin, &named).map_err(|e| e.to_string());
                self.named_values = Some(named);
                client
            })();
            self.made("client");
            self.client = Some(result);
        }
        match self.client.as_ref().expect("set above") {
            Ok(c) => Ok(c.raw),
            Err(e) => Err(e.clone()),
        }
    }

    /// The client, or SKIP.
    pub fn client(&mut self) -> Result<*mut PJRT_Client, CheckError> {
        self.plugin()?;
        self.create_client().map_err(|_| CheckError::Skip("no client (see client.create)".into()))
    }

    /// The client's addressable devices.
    pub fn devices(&mut self) -> Result<Vec<*mut PJRT_Device>, CheckError> {
        let client = self.client()?;
        let mut a = args!(PJRT_Client_AddressableDevices_Args { client: client });
        call!(self.plugin_ref(), PJRT_Client_AddressableDevices, &mut a).map_err(|e| CheckError::Skip(format!("no devices: {e}")))?;
        Ok(unsafe { slice(a.addressable_devices, a.num_addressable_devices) }.to_vec())
    }

    /// The first addressable device, or SKIP.
    pub fn device(&mut self) -> Result<*mut PJRT_Device, CheckError> {
        self.devices()?.first().copied().ok_or_else(|| CheckError::Skip("the client has no addressable device".into()))
    }

    /// The test program (`(a + b) * a` on f32[2,2]) compiled once, or SKIP.
    pub fn executable(&mut self) -> Result<*mut PJRT_LoadedExecutable, CheckError> {
        self.compile_executable().map_err(|e| match e {
            CheckError::Skip(m) => CheckError::Skip(m),
            e => CheckError::Skip(format!("the test program does not compile: {}", e.describe())),
        })
    }

    /// The test program compiled once with the single-device options, or
    /// why it did not compile (what `compile.mlir_with_options` judges).
    pub fn compile_executable(&mut self) -> Result<*mut PJRT_LoadedExecutable, CheckError> {
        self.client()?;
        if self.exe.is_none() {
            self.exe = Some(self.compile_test_program());
        }
        match self.exe.as_ref().expect("set above") {
            Ok(e) => Ok(e.raw()),
            Err(e) => Err(e.clone()),
        }
    }

    /// The test program with the single-device options: what the first
    /// compilation and the spare are made of (the same inputs, which
    /// `executable.fingerprint` relies on).
    fn compile_test_program(&mut self) -> Result<LoadedExecutable<'static>, CheckError> {
        self.compile(crate::plugin::program::PROGRAM, &crate::plugin::compile_options::single_device())
    }

    /// The spare compilation of the test program, made as the first
    /// (compiled on first use, kept until taken).
    pub fn spare(&mut self) -> Result<*mut PJRT_LoadedExecutable, CheckError> {
        if self.spare.is_none() {
            self.spare = Some(self.compile_test_program()?);
        }
        Ok(self.spare.as_ref().expect("set above").raw())
    }

    /// The spare compilation, taken (compiled now if there is none).
    pub fn take_spare(&mut self) -> Result<LoadedExecutable<'static>, CheckError> {
        self.spare()?;
        Ok(self.spare.take().expect("made above"))
    }

    /// Looks at the running check's verdict again once every check of the
    /// process has run, and no sooner than `after` from now: `recheck`
    /// returns why the check fails after all (a callback called twice), or
    /// None. A window that would otherwise be slept through by the check.
    pub fn recheck_later(&mut self, after: std::time::Duration, recheck: impl FnOnce() -> Option<String> + 'static) {
        self.rechecks.push(Recheck { id: self.current.clone(), due: std::time::Instant::now() + after, recheck: Box::new(recheck) });
    }

    /// The rechecks (see [`Ctx::recheck_later`]), each once it is due: the
    /// checks that fail after all, and why.
    pub fn run_rechecks(&mut self) -> Vec<(String, String)> {
        let mut failed = Vec::new();
        for r in std::mem::take(&mut self.rechecks) {
            std::thread::sleep(r.due.saturating_duration_since(std::time::Instant::now()));
            if let Some(why) = (r.recheck)() {
                failed.push((r.id, why));
            }
        }
        failed
    }

    /// `code` compiled once (keyed by `key`) with the single-device options.
    pub fn program(&mut self, key: &'static str, code: &str) -> Result<*mut PJRT_LoadedExecutable, CheckError> {
        self.client()?;
        if !self.programs.iter().any(|(k, _)| *k == key) {
            let options = crate::plugin::compile_options::single_device();
            let compiled = match self.compile(code, &options) {
                Ok(exe) => Ok(exe),
                Err(CheckError::Pjrt { function, code, message }) => {
                    Err(format!("{function} failed with {}: {message}", loader::error_code_name(code)))
                }
                Err(CheckError::Fail(m) | CheckError::Skip(m) | CheckError::Unsupported(m)) => Err(m),
            };
            self.programs.push((key, compiled));
        }
        match &self.programs.iter().find(|(k, _)| *k == key).expect("inserted above").1 {
            Ok(exe) => Ok(exe.raw()),
            Err(e) => Err(CheckError::Skip(format!("the {key} program does not compile: {e}"))),
        }
    }

    /// `PJRT_Executable` of the compiled test program (owned by the guard).
    pub fn executable_of(&self, loaded: *mut PJRT_LoadedExecutable) -> Result<ExecutableGuard, CheckError> {
        let mut g = args!(PJRT_LoadedExecutable_GetExecutable_Args { loaded_executable: loaded });
        pjrt!(self, PJRT_LoadedExecutable_GetExecutable, &mut g)?;
        Ok(ExecutableGuard { plugin: self.plugin_ref(), raw: g.executable })
    }

    /// An extension the plugin offers, or UNSUPPORTED.
    pub fn extension(&mut self, kind: PJRT_Extension_Type) -> Result<Extension, CheckError> {
        let plugin = self.plugin()?;
        let name = extension_name(kind);
        if let Some(run) = history::enumerator("PJRT_Extension_Type", kind as i64) {
            self.record(run.since);
        }
        plugin.extension(kind).ok_or_else(|| CheckError::Unsupported(format!("the plugin does not offer the {name} extension")))
    }

    /// Compiles `code` (StableHLO text) with `options`; the executable is
    /// destroyed when the guard drops.
    pub fn compile(&mut self, code: &str, options: &[u8]) -> Result<LoadedExecutable<'static>, CheckError> {
        let client = self.client()?;
        let program = args!(PJRT_Program {
            code: code.as_ptr() as *mut _,
            code_size: code.len(),
            format: "mlir".as_ptr() as *const _,
            format_size: 4,
        });
        let mut a = args!(PJRT_Client_Compile_Args {
            client: client,
            program: &program,
            compile_options: options.as_ptr() as *const _,
            compile_options_size: options.len(),
        });
        pjrt!(self, PJRT_Client_Compile, &mut a)?;
        Ok(LoadedExecutable::own(self.plugin_ref(), a.executable))
    }

    /// Copies `data` (the bytes of `dims` elements of `ty`, row-major) to
    /// the first device and waits for the copy.
    pub fn buffer(&mut self, data: &[u8], ty: PJRT_Buffer_Type, dims: &[i64]) -> Result<Buffer<'static>, CheckError> {
        let client = self.client()?;
        let device = self.device()?;
        let mut a = args!(PJRT_Client_BufferFromHostBuffer_Args {
            client: client,
            data: data.as_ptr() as *const _,
            type_: ty,
            dims: dims.as_ptr(),
            num_dims: dims.len(),
            host_buffer_semantics: PJRT_HostBufferSemantics_kImmutableUntilTransferCompletes,
            device: device,
        });
        pjrt!(self, PJRT_Client_BufferFromHostBuffer, &mut a)?;
        let buffer = Buffer::own(self.plugin_ref(), a.buffer);
        self.wait(a.done_with_host_buffer)?;
        Ok(buffer)
    }

    pub fn buffer_f32(&mut self, data: &[f32], dims: &[i64]) -> Result<Buffer<'static>, CheckError> {
        self.buffer(&f32_bytes(data), PJRT_Buffer_Type_F32, dims)
    }

    /// Awaits and destroys an event the plugin handed over (null: nothing).
    pub fn wait(&self, event: *mut PJRT_Event) -> Result<(), CheckError> {
        Event::own(self.plugin_ref(), event).wait().map_err(CheckError::from)
    }

    /// The bytes of a buffer, copied back to the host.
    pub fn to_host(&self, buffer: *mut PJRT_Buffer) -> Result<Vec<u8>, CheckError> {
        let mut size = args!(PJRT_Buffer_ToHostBuffer_Args { src: buffer });
        pjrt!(self, PJRT_Buffer_ToHostBuffer, &mut size)?;
        let mut out = vec![0u8; size.dst_size];
        let mut a = args!(PJRT_Buffer_ToHostBuffer_Args { src: buffer, dst: out.as_mut_ptr() as *mut _, dst_size: size.dst_size });
        pjrt!(self, PJRT_Buffer_ToHostBuffer, &mut a)?;
        self.wait(a.event)?;
        Ok(out)
    }

    /// Runs `exe` on the first device with `inputs`; the outputs, once the
    /// execution completed.
    pub fn execute(
        &mut self,
        exe: *mut PJRT_LoadedExecutable,
        inputs: &[*mut PJRT_Buffer],
        options: &mut PJRT_ExecuteOptions,
    ) -> Result<Vec<Buffer<'static>>, CheckError> {
        let executable = self.executable_of(exe)?;
        let mut n = args!(PJRT_Executable_NumOutputs_Args { executable: executable.raw });
        pjrt!(self, PJRT_Executable_NumOutputs, &mut n)?;
        drop(executable);
        let argument_lists = [inputs.as_ptr()];
        let mut outputs: Vec<*mut PJRT_Buffer> = vec![null_mut(); n.num_outputs];
        let output_lists = [outputs.as_mut_ptr()];
        let mut complete: [*mut PJRT_Event; 1] = [null_mut()];
        let mut a = args!(PJRT_LoadedExecutable_Execute_Args {
            executable: exe,
            options: options,
            argument_lists: argument_lists.as_ptr(),
            num_devices: 1,
            num_args: inputs.len(),
            output_lists: output_lists.as_ptr(),
            device_complete_events: complete.as_mut_ptr(),
        });
        pjrt!(self, PJRT_LoadedExecutable_Execute, &mut a)?;
        let outputs: Vec<Buffer> = outputs.into_iter().map(|raw| Buffer::own(self.plugin_ref(), raw)).collect();
        self.wait(complete[0])?;
        Ok(outputs)
    }

    /// Records that the running check reached PJRT minor `since`.
    pub fn record(&self, since: u32) {
        self.since.set(self.since.get().max(since));
    }

    /// Resets the record for the next check; the newest version reached.
    pub fn take_since(&self) -> u32 {
        self.since.replace(0)
    }

    /// The version gate for a `PJRT_Api` member at `offset` (these bindings'
    /// layout).
    pub fn gate_api(&self, name: &'static str, offset: usize) -> Result<(), CheckError> {
        self.gate_member("PJRT_Api", name, offset, self.plugin_ref().struct_size(), "PJRT_Api")
    }

    /// The version gate for a member of an extension struct. Before PJRT
    /// 0.45 extension structs carry no `struct_size` and their members sit
    /// elsewhere: none is read.
    pub fn gate_extension(&self, ext: &Extension, strukt: &'static str, name: &'static str, offset: usize) -> Result<(), CheckError> {
        if !ext.sized {
            self.record(45);
            return Err(CheckError::Unsupported(format!(
                "at PJRT 0.{} extension structs carry no struct_size and lay their members out otherwise \
                 (PJRT_Extension_Base gained struct_size in 0.45): {strukt}.{name} is not read",
                self.minor()
            )));
        }
        self.gate_member(strukt, name, offset, ext.struct_size, strukt)
    }

    /// The version gate for an args struct: a field these bindings lay out
    /// otherwise than the plugin's version reads it (resized or retyped
    /// between the two versions, per the history's `CHANGES`) makes the
    /// call UNSUPPORTED. Renames and `const` keep the ABI.
    pub fn gate_args(&self, strukt: &str) -> Result<(), CheckError> {
        let bindings = pjrt_sys::loader::BINDINGS_VERSION.1 as u32;
        match args_layout_change(strukt, self.minor(), bindings) {
            Some(change) => {
                self.record(change.minor);
                Err(CheckError::Unsupported(format!(
                    "{strukt}.{} is `{}` at PJRT 0.{} and `{}` since 0.{} ({}): these bindings' layout does not apply",
                    change.after_name,
                    change.before_type,
                    self.minor(),
                    change.after_type,
                    change.minor,
                    change.kind
                )))
            }
            None => Ok(()),
        }
    }

    fn gate_member(&self, strukt: &str, name: &str, offset: usize, struct_size: usize, what: &str) -> Result<(), CheckError> {
        let minor = self.minor();
        let run = history::field(strukt, name);
        if let Some(run) = run {
            self.record(run.since);
        }
        let end = offset + std::mem::size_of::<usize>();
        if end > struct_size {
            let since = run.map(|r| format!(": it arrived in PJRT 0.{}, the plugin is 0.{minor}", r.since)).unwrap_or_default();
            return Err(CheckError::Unsupported(format!(
                "{name} lies past the end of the plugin's {what} ({struct_size} bytes, {name} needs {end}){since}"
            )));
        }
        // At the plugin's version, the slot may have held something else
        // (the API was reordered before it stabilized).
        let occupant = history::FIELDS.iter().find(|f| f.strukt == strukt && f.offset == offset as u64 && f.covers(minor));
        if let (Some(run), Some(occupant)) = (run, occupant) {
            // A rename continues its run, with the same `since`.
            if occupant.name != run.name && occupant.since != run.since {
                return Err(CheckError::Unsupported(format!(
                    "at PJRT 0.{minor} the slot of {name} (offset {offset}) holds {}: these bindings' layout does not apply",
                    occupant.name
                )));
            }
        }
        if let Some(run) = run {
            if let Some(until) = run.until {
                if minor > until {
                    return Err(CheckError::Unsupported(format!(
                        "{strukt}.{name} changed or went away after PJRT 0.{until}; the plugin is 0.{minor}"
                    )));
                }
            }
        }
        Ok(())
    }

    /// A check that sets args field `strukt.field` asks first: a plugin
    /// older than the field would silently ignore it.
    pub fn gate_field(&self, strukt: &str, field: &str) -> Result<(), CheckError> {
        let minor = self.minor();
        let Some(run) = history::field(strukt, field) else {
            return Err(CheckError::Fail(format!(
                "the history table has no {strukt}.{field} (regenerate it: cargo xtask conform --history)"
            )));
        };
        self.record(run.since);
        if minor < run.since {
            return Err(CheckError::Unsupported(format!(
                "{strukt}.{field} arrived in PJRT 0.{}; the plugin (0.{minor}) would ignore it",
                run.since
            )));
        }
        Ok(())
    }
}

/// The first change of `strukt` that breaks the ABI between a plugin of
/// PJRT `plugin` and a caller laid out for PJRT `caller`, if any.
pub fn args_layout_change(strukt: &str, plugin: u32, caller: u32) -> Option<&'static history::Change> {
    history::fields_at(strukt, caller)
        .into_iter()
        .find_map(|field| history::changes_between(strukt, field.offset, plugin, caller).find(|c| !c.keeps_abi()))
}

/// An args struct laid out by the history table, for a `PJRT_Api` member
/// newer than these bindings: 8-byte fields only (pointers, sizes, ids).
pub struct TableArgs {
    strukt: &'static str,
    words: Vec<u64>,
}

impl TableArgs {
    /// Reads an 8-byte field after the call.
    pub fn get(&self, field: &str) -> Option<u64> {
        let run = history::FIELDS.iter().find(|f| f.strukt == self.strukt && f.name == field && f.until.is_none())?;
        (run.size == 8).then(|| self.words[(run.offset / 8) as usize])
    }
}

impl Ctx {
    /// Calls `PJRT_Api` member `member`, which these bindings (PJRT
    /// 0.{bindings}) predate, with args struct `strukt` as the newest header
    /// the history knows lays it out; `fields` sets 8-byte fields. Gated like
    /// every call: past the plugin's struct_size it is UNSUPPORTED.
    pub fn call_by_table(&self, member: &'static str, strukt: &'static str, fields: &[(&str, u64)]) -> Result<TableArgs, CheckError> {
        let run = history::FIELDS
            .iter()
            .find(|f| f.strukt == "PJRT_Api" && f.name == member && f.until.is_none())
            .ok_or_else(|| CheckError::Fail(format!("the history table has no PJRT_Api.{member}")))?;
        self.gate_member("PJRT_Api", member, run.offset as usize, self.plugin_ref().struct_size(), "PJRT_Api")?;
        let size = history::struct_size_at(strukt, history::NEWEST_MINOR)
            .ok_or_else(|| CheckError::Fail(format!("the history table has no {strukt}")))?;
        let mut args = TableArgs { strukt, words: vec![0; size.div_ceil(8) as usize] };
        args.words[0] = size;
        for (name, value) in fields {
            let field = history::FIELDS
                .iter()
                .find(|f| f.strukt == strukt && f.name == *name && f.until.is_none() && f.size == 8)
                .ok_or_else(|| CheckError::Fail(format!("the history table has no 8-byte {strukt}.{name}")))?;
            args.words[(field.offset / 8) as usize] = *value;
        }
        let api = self.plugin_ref().api_up_to(run.offset as usize + 8, member)? as *const u8;
        // SAFETY: within the plugin's struct_size (gated); a PJRT_Api member
        // is a function taking its args struct and returning a PJRT_Error*.
        let f = unsafe { (api.add(run.offset as usize) as *const Option<unsafe extern "C" fn(*mut u64) -> *mut PJRT_Error>).read() };
        let Some(f) = f else {
            return Err(CheckError::Unsupported(format!("{member} is null: the plugin does not implement it")));
        };
        self.plugin_ref()
            .check(pjrt_sys::in_flight::in_plugin(member, || unsafe { pjrt_sys::no_unwind::call(f, args.words.as_mut_ptr()) }), member)?;
        Ok(args)
    }
}

/// A `PJRT_Executable` from `PJRT_LoadedExecutable_GetExecutable`, destroyed on drop.
pub struct ExecutableGuard {
    plugin: &'static Plugin,
    pub raw: *mut PJRT_Executable,
}

impl Drop for ExecutableGuard {
    fn drop(&mut self) {
        let mut d = args!(PJRT_Executable_Destroy_Args { executable: self.raw });
        let _ = call!(self.plugin, PJRT_Executable_Destroy, &mut d);
    }
}

/// The message for a plugin that does not load (`api.load`'s reason, and
/// `--together`'s): why, as `doctor` finds it without loading the plugin,
/// then the loader's own words.
pub fn load_failure(path: &std::path::Path, error: &loader::Error) -> String {
    crate::plugin::diagnosis::explain_failure(path, None, None, &error.to_string())
}

/// A `(pointer, count)` array from the plugin as a slice (empty when null).
///
/// # Safety
/// `data` must point to `len` valid elements, or be null.
pub unsafe fn slice<'a, T>(data: *const T, len: usize) -> &'a [T] {
    if data.is_null() || len == 0 {
        &[]
    } else {
        std::slice::from_raw_parts(data, len)
    }
}

/// A `(pointer, size)` string from the plugin.
pub fn text(data: *const std::ffi::c_char, size: usize) -> String {
    unsafe { loader::string_from(data, size) }
}

pub fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

pub fn f32_values(bytes: &[u8]) -> Vec<f32> {
    bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

/// Reads PJRT named values (attributes) into JSON.
pub fn named_values(values: *const PJRT_NamedValue, count: usize) -> Result<serde_json::Map<String, serde_json::Value>, String> {
    let mut out = serde_json::Map::new();
    for v in unsafe { slice(values, count) } {
        let name = text(v.name, v.name_size);
        let value = unsafe {
            match v.type_ {
                PJRT_NamedValue_kString => serde_json::Value::from(text(v.__bindgen_anon_1.string_value, v.value_size)),
                PJRT_NamedValue_kInt64 => serde_json::Value::from(v.__bindgen_anon_1.int64_value),
                PJRT_NamedValue_kInt64List => {
                    if v.value_size > 1 << 20 {
                        return Err(format!("attribute {name}: a list of {} values", v.value_size));
                    }
                    serde_json::Value::from(slice(v.__bindgen_anon_1.int64_array_value, v.value_size).to_vec())
                }
                PJRT_NamedValue_kFloat => serde_json::Value::from(v.__bindgen_anon_1.float_value as f64),
                PJRT_NamedValue_kBool => serde_json::Value::from(v.__bindgen_anon_1.bool_value),
                other => return Err(format!("attribute {name} has type {other}, not a PJRT_NamedValue_Type")),
            }
        };
        out.insert(name, value);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every change of an args struct that breaks the ABI is refused by the
    /// gate for a plugin on the other side of it (the audit in
    /// docs/conform.md); every kind of change is one the gate knows.
    #[test]
    fn every_abi_change_is_gated() {
        let known = ["renamed", "requalified", "typed", "enum_renamed", "embedded", "resized", "retyped"];
        for change in history::CHANGES {
            assert!(known.contains(&change.kind), "a new kind of change: {change:?}");
            if change.keeps_abi() || !change.strukt.ends_with("_Args") {
                continue;
            }
            let gated = args_layout_change(change.strukt, change.minor - 1, change.minor);
            assert!(gated.is_some(), "{change:?} is not gated");
        }
        let ffi = args_layout_change("PJRT_FFI_UserData_Add_Args", 81, 93).expect("user_data shrank at 0.82");
        assert_eq!((ffi.kind, ffi.minor), ("resized", 82));
        assert!(args_layout_change("PJRT_FFI_UserData_Add_Args", 82, 93).is_none());
        assert!(args_layout_change("PJRT_Client_Create_Args", 20, 93).is_none(), "priv, const: the ABI holds");
    }
}
