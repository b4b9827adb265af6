//! The extensions' own entry points, each reached through the version gate:
//! a member past the extension's `struct_size` is UNSUPPORTED, never
//! called (an API 0.81 plugin's Layouts extension ends before
//! `GetParameterLayouts`).

use std::ffi::{c_char, c_void};
use std::ptr::null_mut;

use pjrt_sys::loader::Extension;
use pjrt_sys::{args, history, *};

use super::api::extension_struct;
use super::{check, optional, Check};
use crate::conform::harness::{ensure, ext_call, fail, pjrt, slice, text, CheckError, Ctx, Outcome};

pub fn checks() -> Vec<Check> {
    vec![
        check("extensions.entry_points", entry_points),
        check("layouts.client_default_layout", client_default_layout),
        check("layouts.buffer_layout", buffer_layout),
        check("layouts.executable_output_layouts", executable_output_layouts),
        check("layouts.executable_parameter_layouts", executable_parameter_layouts),
        optional("layouts.topology_default_layout", topology_default_layout),
        check("ffi.type_register", ffi_type_register),
        check("ffi.user_data_add", ffi_user_data_add),
        check("memory_descriptions.device", memory_descriptions),
        optional("profiler.session", profiler_session),
        check("stream.external_ready_events", stream),
        check("abi_version.runtime", abi_runtime),
        check("abi_version.executable_compatible", abi_executable),
    ]
}

/// Every function member of every extension the plugin offers, within the
/// extension's `struct_size`, is set.
fn entry_points(ctx: &mut Ctx) -> Outcome {
    let plugin = ctx.plugin()?;
    let minor = ctx.minor().min(history::NEWEST_MINOR);
    let mut checked = Vec::new();
    let mut null = Vec::new();
    for e in plugin.extensions() {
        let Some(strukt) = extension_struct(e.kind) else { continue };
        let mut count = 0;
        for f in history::fields_at(strukt, minor).into_iter().filter(|f| f.function) {
            if f.offset + f.size > e.struct_size as u64 {
                continue;
            }
            // SAFETY: within the extension's struct_size.
            let pointer = unsafe { ((e.base as *const u8).add(f.offset as usize) as *const usize).read_unaligned() };
            if pointer == 0 {
                null.push(format!("{strukt}.{}", f.name));
            } else {
                count += 1;
            }
        }
        checked.push(format!("{strukt} {count}"));
    }
    if checked.is_empty() {
        return Err(CheckError::Skip("no extension whose struct the history knows".into()));
    }
    if !null.is_empty() {
        return Err(CheckError::Unsupported(format!("null (not implemented): {}", null.join(", "))));
    }
    Ok(checked.join(", "))
}

fn layouts(ctx: &mut Ctx) -> Result<Extension, CheckError> {
    ctx.extension(PJRT_Extension_Type_Layouts)
}

/// Serializes and (when `owned`) destroys a layout.
fn serialize_layout(ctx: &Ctx, ext: &Extension, layout: *mut PJRT_Layouts_MemoryLayout, owned: bool) -> Result<String, CheckError> {
    let mut s = args!(PJRT_Layouts_MemoryLayout_Serialize_Args { layout: layout });
    let serialized = ext_call!(ctx, ext, PJRT_Layouts_Extension, PJRT_Layouts_MemoryLayout_Serialize, &mut s).map(|()| {
        let t = text(s.serialized_bytes, s.serialized_bytes_size);
        if let Some(deleter) = s.serialized_layout_deleter {
            pjrt_sys::in_flight::in_plugin("a deleter", || unsafe { deleter(s.serialized_layout) });
        }
        t
    });
    if owned {
        let mut d = args!(PJRT_Layouts_MemoryLayout_Destroy_Args { layout: layout });
        ext_call!(ctx, ext, PJRT_Layouts_Extension, PJRT_Layouts_MemoryLayout_Destroy, &mut d)?;
    }
    serialized
}

fn client_default_layout(ctx: &mut Ctx) -> Outcome {
    let ext = layouts(ctx)?;
    let client = ctx.client()?;
    let dims = [2i64, 3];
    let mut a = args!(PJRT_Layouts_PJRT_Client_GetDefaultLayout_Args {
        client: client,
        type_: PJRT_Buffer_Type_F32,
        dims: dims.as_ptr(),
        num_dims: 2
    });
    ext_call!(ctx, &ext, PJRT_Layouts_Extension, PJRT_Layouts_PJRT_Client_GetDefaultLayout, &mut a)?;
    let layout = serialize_layout(ctx, &ext, a.layout, true)?;
    ensure!(!layout.is_empty(), "an empty serialized layout");
    Ok(format!("f32[2,3]: {layout}"))
}

fn buffer_layout(ctx: &mut Ctx) -> Outcome {
    let ext = layouts(ctx)?;
    let b = ctx.buffer_f32(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3])?;
    let mut a = args!(PJRT_Layouts_PJRT_Buffer_MemoryLayout_Args { buffer: b.raw() });
    ext_call!(ctx, &ext, PJRT_Layouts_Extension, PJRT_Layouts_PJRT_Buffer_MemoryLayout, &mut a)?;
    Ok(format!("f32[2,3] buffer: {}", serialize_layout(ctx, &ext, a.layout, true)?))
}

fn executable_output_layouts(ctx: &mut Ctx) -> Outcome {
    let ext = layouts(ctx)?;
    let loaded = ctx.program("two_outputs", super::compile::TWO_OUTPUTS)?;
    let exe = ctx.executable_of(loaded)?;
    let mut a = args!(PJRT_Layouts_PJRT_Executable_GetOutputLayouts_Args { executable: exe.raw });
    ext_call!(ctx, &ext, PJRT_Layouts_Extension, PJRT_Layouts_PJRT_Executable_GetOutputLayouts, &mut a)?;
    ensure!(a.num_outputs == 2, "{} output layouts for 2 outputs", a.num_outputs);
    // Owned by the executable: serialized, not destroyed.
    let layouts: Vec<String> =
        unsafe { slice(a.layouts, a.num_outputs) }.iter().map(|l| serialize_layout(ctx, &ext, *l, false)).collect::<Result<_, _>>()?;
    Ok(layouts.join(", "))
}

fn executable_parameter_layouts(ctx: &mut Ctx) -> Outcome {
    let ext = layouts(ctx)?;
    let loaded = ctx.program("two_outputs", super::compile::TWO_OUTPUTS)?;
    let exe = ctx.executable_of(loaded)?;
    let mut a = args!(PJRT_Layouts_PJRT_Executable_GetParameterLayouts_Args { executable: exe.raw });
    ext_call!(ctx, &ext, PJRT_Layouts_Extension, PJRT_Layouts_PJRT_Executable_GetParameterLayouts, &mut a)?;
    ensure!(a.num_parameters == 3, "{} parameter layouts for 3 parameters", a.num_parameters);
    let layouts: Vec<String> =
        unsafe { slice(a.layouts, a.num_parameters) }.iter().map(|l| serialize_layout(ctx, &ext, *l, false)).collect::<Result<_, _>>()?;
    Ok(layouts.join(", "))
}

fn topology_default_layout(ctx: &mut Ctx) -> Outcome {
    let ext = layouts(ctx)?;
    let client = ctx.client()?;
    let mut t = args!(PJRT_Client_TopologyDescription_Args { client: client });
    pjrt!(ctx, PJRT_Client_TopologyDescription, &mut t)?;
    let dims = [4i64, 8];
    let mut a = args!(PJRT_Layouts_PJRT_Topology_GetDefaultLayout_Args {
        topology_description: t.topology,
        type_: PJRT_Buffer_Type_F32,
        dims: dims.as_ptr(),
        num_dims: 2,
    });
    ext_call!(ctx, &ext, PJRT_Layouts_Extension, PJRT_Layouts_PJRT_Topology_GetDefaultLayout, &mut a)?;
    Ok(format!("f32[4,8]: {}", serialize_layout(ctx, &ext, a.layout, true)?))
}

fn ffi(ctx: &mut Ctx) -> Result<Extension, CheckError> {
    ctx.extension(PJRT_Extension_Type_FFI)
}

fn register_type(ctx: &Ctx, ext: &Extension, name: &str) -> Result<i64, CheckError> {
    // Required: the plugin reads the deleter from it.
    let mut info = PJRT_FFI_Type_Info { deleter: None, serialize: None, deserialize: None };
    let mut a =
        args!(PJRT_FFI_Type_Register_Args { type_name: name.as_ptr() as *const c_char, type_name_size: name.len(), type_info: &mut info });
    ext_call!(ctx, ext, PJRT_FFI_Extension, type_register, &mut a)?;
    Ok(a.type_id)
}

fn ffi_type_register(ctx: &mut Ctx) -> Outcome {
    let ext = ffi(ctx)?;
    ctx.plugin()?;
    let first = register_type(ctx, &ext, "pjrtpkgs_conform_type_a")?;
    let second = register_type(ctx, &ext, "pjrtpkgs_conform_type_b")?;
    ensure!(first != second, "two type names got the same id {first}");
    Ok(format!("ids {first} and {second}"))
}

fn ffi_user_data_add(ctx: &mut Ctx) -> Outcome {
    let ext = ffi(ctx)?;
    ctx.plugin()?;
    let id = register_type(ctx, &ext, "pjrtpkgs_conform_user_data")?;
    let mut c = args!(PJRT_ExecuteContext_Create_Args {});
    pjrt!(ctx, PJRT_ExecuteContext_Create, &mut c)?;
    static mut DATA: u64 = 42;
    let mut a = args!(PJRT_FFI_UserData_Add_Args {
        context: c.context,
        user_data: PJRT_FFI_UserData { type_id: id, data: std::ptr::addr_of_mut!(DATA) as *mut c_void },
    });
    let added = ext_call!(ctx, &ext, PJRT_FFI_Extension, user_data_add, &mut a);
    pjrt!(ctx, PJRT_ExecuteContext_Destroy, &mut args!(PJRT_ExecuteContext_Destroy_Args { context: c.context }))?;
    added?;
    Ok(format!("user data of type {id} added to an execute context"))
}

fn memory_descriptions(ctx: &mut Ctx) -> Outcome {
    let ext = ctx.extension(PJRT_Extension_Type_MemoryDescriptions)?;
    let device = ctx.device()?;
    let mut d = args!(PJRT_Device_GetDescription_Args { device: device });
    pjrt!(ctx, PJRT_Device_GetDescription, &mut d)?;
    let mut a = args!(PJRT_DeviceDescription_MemoryDescriptions_Args { device_description: d.device_description });
    ext_call!(ctx, &ext, PJRT_MemoryDescriptions_Extension, PJRT_DeviceDescription_MemoryDescriptions, &mut a)?;
    let descriptions = unsafe { slice(a.memory_descriptions, a.num_memory_descriptions) }.to_vec();
    if descriptions.is_empty() {
        return Ok("the device describes no memories".into());
    }
    ensure!(a.default_memory_index < descriptions.len(), "default memory index {} of {}", a.default_memory_index, descriptions.len());
    let mut kinds = Vec::new();
    for m in descriptions {
        let mut k = args!(PJRT_MemoryDescription_Kind_Args { memory_description: m });
        ext_call!(ctx, &ext, PJRT_MemoryDescriptions_Extension, PJRT_MemoryDescription_Kind, &mut k)?;
        kinds.push(format!("{}={}", text(k.kind, k.kind_size), k.kind_id));
    }
    Ok(format!("{} (default {})", kinds.join(", "), a.default_memory_index))
}

/// Calls a `PLUGIN_Profiler_Api` member within that table's own struct_size.
macro_rules! profiler_call {
    ($ctx:expr, $api:expr, $member:ident, $args:expr) => {{
        let api: *const PLUGIN_Profiler_Api = $api;
        let size = unsafe { (*api).struct_size };
        let offset = ::core::mem::offset_of!(PLUGIN_Profiler_Api, $member);
        if offset + 8 > size {
            return Err(CheckError::Unsupported(format!("PLUGIN_Profiler_Api.{} lies past its {size} bytes", stringify!($member))));
        }
        match unsafe { (*api).$member } {
            Some(f) => {
                let args = $args;
                profiler_error(
                    api,
                    pjrt_sys::in_flight::in_plugin(concat!("PLUGIN_Profiler_Api.", stringify!($member)), || unsafe {
                        pjrt_sys::no_unwind::call(f, args)
                    }),
                    concat!("PLUGIN_Profiler_Api.", stringify!($member)),
                )
            }
            None => Err(CheckError::Unsupported(format!("PLUGIN_Profiler_Api.{} is null", stringify!($member)))),
        }
    }};
}

/// A profiler error (its own error type) as a CheckError, destroyed.
fn profiler_error(api: *const PLUGIN_Profiler_Api, error: *mut PLUGIN_Profiler_Error, what: &'static str) -> Result<(), CheckError> {
    if error.is_null() {
        return Ok(());
    }
    let mut message = String::from("(no message)");
    let mut code = PJRT_Error_Code_UNKNOWN;
    unsafe {
        if let Some(f) = (*api).error_message {
            let mut m = args!(PLUGIN_Profiler_Error_Message_Args { error: error });
            f(&mut m);
            message = text(m.message, m.message_size);
        }
        if let Some(f) = (*api).error_get_code {
            let mut c = args!(PLUGIN_Profiler_Error_GetCode_Args { error: error });
            if f(&mut c).is_null() {
                code = c.code as PJRT_Error_Code;
            }
        }
        if let Some(f) = (*api).error_destroy {
            let mut d = args!(PLUGIN_Profiler_Error_Destroy_Args { error: error });
            f(&mut d);
        }
    }
    Err(CheckError::Pjrt { function: what, code, message })
}

/// Create, start, stop, collect, destroy: a profiling session around one
/// execution.
fn profiler_session(ctx: &mut Ctx) -> Outcome {
    let ext = ctx.extension(PJRT_Extension_Type_Profiler)?;
    ctx.plugin()?;
    let offset = std::mem::offset_of!(PJRT_Profiler_Extension, profiler_api);
    ctx.gate_extension(&ext, "PJRT_Profiler_Extension", "profiler_api", offset)?;
    let api = unsafe { (*(ext.base as *const PJRT_Profiler_Extension)).profiler_api } as *const PLUGIN_Profiler_Api;
    ensure!(!api.is_null(), "the Profiler extension's profiler_api is null");
    let mut c = args!(PLUGIN_Profiler_Create_Args {});
    profiler_call!(ctx, api, create, &mut c)?;
    let profiler = c.profiler;
    let session = (|| -> Outcome {
        profiler_call!(ctx, api, start, &mut args!(PLUGIN_Profiler_Start_Args { profiler: profiler }))?;
        let ran = ctx.executable().and_then(|exe| {
            let a = ctx.buffer_f32(&[1.0, 2.0, 3.0, 4.0], &[2, 2])?;
            ctx.execute(exe, &[a.raw(), a.raw()], &mut args!(PJRT_ExecuteOptions {})).map(drop)
        });
        profiler_call!(ctx, api, stop, &mut args!(PLUGIN_Profiler_Stop_Args { profiler: profiler }))?;
        let mut size = args!(PLUGIN_Profiler_CollectData_Args { profiler: profiler });
        profiler_call!(ctx, api, collect_data, &mut size)?;
        let mut data = vec![0u8; size.buffer_size_in_bytes];
        let mut collect = args!(PLUGIN_Profiler_CollectData_Args {
            profiler: profiler,
            buffer: if data.is_empty() { null_mut() } else { data.as_mut_ptr() },
            buffer_size_in_bytes: data.len(),
        });
        profiler_call!(ctx, api, collect_data, &mut collect)?;
        Ok(format!("{} bytes of trace{}", data.len(), if ran.is_ok() { " around one execution" } else { " (no execution: no client)" }))
    })();
    profiler_call!(ctx, api, destroy, &mut args!(PLUGIN_Profiler_Destroy_Args { profiler: profiler }))?;
    session
}

fn stream(ctx: &mut Ctx) -> Outcome {
    let ext = ctx.extension(PJRT_Extension_Type_Stream)?;
    let device = ctx.device()?;
    let mut a = args!(PJRT_Get_Stream_For_External_Ready_Events_Args { device: device });
    ext_call!(ctx, &ext, PJRT_Stream_Extension, get_stream, &mut a)?;
    ensure!(a.stream != 0, "a null stream");
    Ok("a stream for external ready events".into())
}

fn abi(ctx: &mut Ctx) -> Result<Extension, CheckError> {
    ctx.extension(PJRT_Extension_Type_AbiVersion)
}

fn runtime_abi(ctx: &mut Ctx, ext: &Extension) -> Result<*mut PJRT_RuntimeAbiVersion, CheckError> {
    let client = ctx.client()?;
    let mut a = args!(PJRT_Client_RuntimeAbiVersion_Args { client: client });
    ext_call!(ctx, ext, PJRT_AbiVersion_Extension, client_runtime_abi_version, &mut a)?;
    ensure!(!a.abi_version.is_null(), "a null runtime ABI version");
    Ok(a.abi_version)
}

fn abi_runtime(ctx: &mut Ctx) -> Outcome {
    let ext = abi(ctx)?;
    let version = runtime_abi(ctx, &ext)?;
    let result = (|| -> Outcome {
        let mut p = args!(PJRT_RuntimeAbiVersion_PlatformId_Args { abi_version: version });
        ext_call!(ctx, &ext, PJRT_AbiVersion_Extension, runtime_abi_version_platform_id, &mut p)?;
        let mut t = args!(PJRT_RuntimeAbiVersion_ToProto_Args { abi_version: version });
        ext_call!(ctx, &ext, PJRT_AbiVersion_Extension, runtime_abi_version_to_proto, &mut t)?;
        let size = t.serialized_proto_size;
        if let Some(deleter) = t.serialized_proto_deleter {
            pjrt_sys::in_flight::in_plugin("a deleter", || unsafe { deleter(t.serialized_proto_holder) });
        }
        ensure!(size > 0, "an empty serialized runtime ABI version");
        Ok(format!("platform id {:#x}, {size} bytes of proto", p.platform_id))
    })();
    let mut d = args!(PJRT_RuntimeAbiVersion_Destroy_Args { abi_version: version });
    ext_call!(ctx, &ext, PJRT_AbiVersion_Extension, runtime_abi_version_destroy, &mut d)?;
    result
}

/// The plugin judges its own executable compatible with its runtime.
fn abi_executable(ctx: &mut Ctx) -> Outcome {
    let ext = abi(ctx)?;
    let loaded = ctx.executable()?;
    let exe = ctx.executable_of(loaded)?;
    let runtime = runtime_abi(ctx, &ext)?;
    let mut e = args!(PJRT_Executable_GetAbiVersion_Args { executable: exe.raw });
    let got = ext_call!(ctx, &ext, PJRT_AbiVersion_Extension, executable_get_abi_version, &mut e);
    let result = got.and_then(|()| {
        let mut c =
            args!(PJRT_RuntimeAbiVersion_IsCompatibleWithExecutable_Args { abi_version: runtime, executable_abi_version: e.abi_version });
        let verdict = ext_call!(ctx, &ext, PJRT_AbiVersion_Extension, runtime_abi_version_is_compatible_with_executable, &mut c);
        let mut d = args!(PJRT_ExecutableAbiVersion_Destroy_Args { abi_version: e.abi_version });
        ext_call!(ctx, &ext, PJRT_AbiVersion_Extension, executable_abi_version_destroy, &mut d)?;
        match verdict {
            Ok(()) => Ok("compatible".to_string()),
            Err(CheckError::Pjrt { message, .. }) => fail!("the plugin finds its own executable incompatible: {message}"),
            Err(e) => Err(e),
        }
    });
    let mut d = args!(PJRT_RuntimeAbiVersion_Destroy_Args { abi_version: runtime });
    ext_call!(ctx, &ext, PJRT_AbiVersion_Extension, runtime_abi_version_destroy, &mut d)?;
    result
}
