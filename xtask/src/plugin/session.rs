//! The PJRT calls of the smoke test, each object owned by a guard that
//! destroys it, so every exit path frees what was created.

use std::ffi::c_void;
use std::ptr::null_mut;

use pjrt_sys::loader::{string_from, Plugin, Result};
use pjrt_sys::*;
use pjrt_sys::{args, call};

use super::client_options::NamedValues;

/// `impl Drop` for a guard `$ty { plugin, raw }`: calls `$destroy` on `raw`,
/// reporting a failure as a warning (a destructor cannot return it). With
/// `skip_null: true`, a null `raw` (nothing was created) is left alone.
macro_rules! destroy_on_drop {
    ($ty:ident, $destroy:ident($args:ident { $field:ident }), skip_null: $skip_null:literal) => {
        impl Drop for $ty<'_> {
            fn drop(&mut self) {
                if $skip_null && self.raw.is_null() {
                    return;
                }
                let mut a = args!($args { $field: self.raw });
                let _ = call!(self.plugin, $destroy, &mut a).map_err(|e| eprintln!("warning: {e}"));
            }
        }
    };
}

pub struct Client<'p> {
    pub plugin: &'p Plugin,
    pub raw: *mut PJRT_Client,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct DeviceInfo {
    pub id: i32,
    pub kind: String,
    pub description: String,
}

impl<'p> Client<'p> {
    /// `PJRT_Client_Create` with `options` (see `client_options`).
    pub fn create_with(plugin: &'p Plugin, options: &NamedValues) -> Result<Client<'p>> {
        let mut a = args!(PJRT_Client_Create_Args { create_options: options.as_ptr(), num_options: options.len() });
        call!(plugin, PJRT_Client_Create, &mut a)?;
        Ok(Client { plugin, raw: a.client })
    }

    pub fn platform_name(&self) -> Result<String> {
        let mut a = args!(PJRT_Client_PlatformName_Args { client: self.raw });
        call!(self.plugin, PJRT_Client_PlatformName, &mut a)?;
        Ok(unsafe { string_from(a.platform_name, a.platform_name_size) })
    }

    pub fn platform_version(&self) -> Result<String> {
        let mut a = args!(PJRT_Client_PlatformVersion_Args { client: self.raw });
        call!(self.plugin, PJRT_Client_PlatformVersion, &mut a)?;
        Ok(unsafe { string_from(a.platform_version, a.platform_version_size) })
    }

    pub fn addressable_devices(&self) -> Result<Vec<*mut PJRT_Device>> {
        let mut a = args!(PJRT_Client_AddressableDevices_Args { client: self.raw });
        call!(self.plugin, PJRT_Client_AddressableDevices, &mut a)?;
        if a.addressable_devices.is_null() {
            return Ok(Vec::new());
        }
        Ok(unsafe { std::slice::from_raw_parts(a.addressable_devices, a.num_addressable_devices) }.to_vec())
    }

    pub fn describe(&self, device: *mut PJRT_Device) -> Result<DeviceInfo> {
        let p = self.plugin;
        let mut d = args!(PJRT_Device_GetDescription_Args { device: device });
        call!(p, PJRT_Device_GetDescription, &mut d)?;
        let description = d.device_description;
        let mut id = args!(PJRT_DeviceDescription_Id_Args { device_description: description });
        call!(p, PJRT_DeviceDescription_Id, &mut id)?;
        let mut kind = args!(PJRT_DeviceDescription_Kind_Args { device_description: description });
        call!(p, PJRT_DeviceDescription_Kind, &mut kind)?;
        let mut text = args!(PJRT_DeviceDescription_DebugString_Args { device_description: description });
        call!(p, PJRT_DeviceDescription_DebugString, &mut text)?;
        Ok(DeviceInfo {
            id: id.id,
            kind: unsafe { string_from(kind.device_kind, kind.device_kind_size) },
            description: unsafe { string_from(text.debug_string, text.debug_string_size) },
        })
    }

    /// Compiles a program in `format` ("mlir", "hlo") with serialized
    /// `xla.CompileOptionsProto` options.
    pub fn compile(&self, code: &str, format: &str, options: &[u8]) -> Result<LoadedExecutable<'p>> {
        compile_raw(self.plugin, self.raw, code, format, options)
    }

    /// Copies a dense row-major f32 array to `device`, waiting until the
    /// plugin is done with the host memory.
    pub fn buffer_from_f32(&self, data: &[f32], dims: &[i64], device: *mut PJRT_Device) -> Result<Buffer<'p>> {
        let mut a = args!(PJRT_Client_BufferFromHostBuffer_Args {
            client: self.raw,
            data: data.as_ptr() as *const c_void,
            type_: PJRT_Buffer_Type_F32,
            dims: dims.as_ptr(),
            num_dims: dims.len(),
            host_buffer_semantics: PJRT_HostBufferSemantics_kImmutableUntilTransferCompletes,
            device: device,
        });
        call!(self.plugin, PJRT_Client_BufferFromHostBuffer, &mut a)?;
        let buffer = Buffer { plugin: self.plugin, raw: a.buffer };
        Event::own(self.plugin, a.done_with_host_buffer).wait()?;
        Ok(buffer)
    }
}

destroy_on_drop!(Client, PJRT_Client_Destroy(PJRT_Client_Destroy_Args { client }), skip_null: false);

/// Compiles a program in `format` ("mlir", "hlo") with serialized
/// `xla.CompileOptionsProto` options on the raw client `client`.
pub fn compile_raw<'p>(
    plugin: &'p Plugin,
    client: *mut PJRT_Client,
    code: &str,
    format: &str,
    options: &[u8],
) -> Result<LoadedExecutable<'p>> {
    let program = args!(PJRT_Program {
        code: code.as_ptr() as *mut _,
        code_size: code.len(),
        format: format.as_ptr() as *const _,
        format_size: format.len(),
    });
    let mut a = args!(PJRT_Client_Compile_Args {
        client: client,
        program: &program,
        compile_options: options.as_ptr() as *const _,
        compile_options_size: options.len(),
    });
    call!(plugin, PJRT_Client_Compile, &mut a)?;
    Ok(LoadedExecutable { plugin, raw: a.executable })
}

pub struct LoadedExecutable<'p> {
    plugin: &'p Plugin,
    raw: *mut PJRT_LoadedExecutable,
}

impl<'p> LoadedExecutable<'p> {
    /// Takes ownership of an executable the plugin returned.
    pub fn own(plugin: &'p Plugin, raw: *mut PJRT_LoadedExecutable) -> LoadedExecutable<'p> {
        LoadedExecutable { plugin, raw }
    }

    pub fn raw(&self) -> *mut PJRT_LoadedExecutable {
        self.raw
    }

    pub fn num_outputs(&self) -> Result<usize> {
        let p = self.plugin;
        let mut g = args!(PJRT_LoadedExecutable_GetExecutable_Args { loaded_executable: self.raw });
        call!(p, PJRT_LoadedExecutable_GetExecutable, &mut g)?;
        let mut n = args!(PJRT_Executable_NumOutputs_Args { executable: g.executable });
        let result = call!(p, PJRT_Executable_NumOutputs, &mut n);
        let mut d = args!(PJRT_Executable_Destroy_Args { executable: g.executable });
        call!(p, PJRT_Executable_Destroy, &mut d)?;
        result.map(|()| n.num_outputs)
    }

    /// Runs on one device with `inputs`, waits for completion and returns
    /// the outputs.
    pub fn execute(&self, inputs: &[&Buffer<'p>]) -> Result<Vec<Buffer<'p>>> {
        let num_outputs = self.num_outputs()?;
        let mut options = args!(PJRT_ExecuteOptions {});
        let arguments: Vec<*mut PJRT_Buffer> = inputs.iter().map(|b| b.raw).collect();
        let argument_lists = [arguments.as_ptr()];
        let mut outputs: Vec<*mut PJRT_Buffer> = vec![null_mut(); num_outputs];
        let output_lists = [outputs.as_mut_ptr()];
        let mut complete: [*mut PJRT_Event; 1] = [null_mut()];
        let mut a = args!(PJRT_LoadedExecutable_Execute_Args {
            executable: self.raw,
            options: &mut options,
            argument_lists: argument_lists.as_ptr(),
            num_devices: 1,
            num_args: arguments.len(),
            output_lists: output_lists.as_ptr(),
            device_complete_events: complete.as_mut_ptr(),
        });
        call!(self.plugin, PJRT_LoadedExecutable_Execute, &mut a)?;
        let outputs: Vec<Buffer> = outputs.into_iter().map(|raw| Buffer { plugin: self.plugin, raw }).collect();
        Event::own(self.plugin, complete[0]).wait()?;
        Ok(outputs)
    }
}

destroy_on_drop!(LoadedExecutable, PJRT_LoadedExecutable_Destroy(PJRT_LoadedExecutable_Destroy_Args { executable }), skip_null: false);

pub struct Buffer<'p> {
    plugin: &'p Plugin,
    raw: *mut PJRT_Buffer,
}

impl<'p> Buffer<'p> {
    /// Takes ownership of a buffer the plugin returned (null: none).
    pub fn own(plugin: &'p Plugin, raw: *mut PJRT_Buffer) -> Buffer<'p> {
        Buffer { plugin, raw }
    }

    pub fn raw(&self) -> *mut PJRT_Buffer {
        self.raw
    }

    /// Copies the buffer back into host memory as f32s.
    pub fn to_f32(&self) -> Result<Vec<f32>> {
        // A first call without a destination asks for the size.
        let mut size = args!(PJRT_Buffer_ToHostBuffer_Args { src: self.raw });
        call!(self.plugin, PJRT_Buffer_ToHostBuffer, &mut size)?;
        let mut out = vec![0f32; size.dst_size.div_ceil(4)];
        let mut a = args!(PJRT_Buffer_ToHostBuffer_Args { src: self.raw, dst: out.as_mut_ptr() as *mut c_void, dst_size: size.dst_size });
        call!(self.plugin, PJRT_Buffer_ToHostBuffer, &mut a)?;
        Event::own(self.plugin, a.event).wait()?;
        Ok(out)
    }
}

destroy_on_drop!(Buffer, PJRT_Buffer_Destroy(PJRT_Buffer_Destroy_Args { buffer }), skip_null: true);

/// An event the plugin handed us; destroyed when dropped.
pub struct Event<'p> {
    plugin: &'p Plugin,
    raw: *mut PJRT_Event,
}

impl<'p> Event<'p> {
    pub fn own(plugin: &'p Plugin, raw: *mut PJRT_Event) -> Event<'p> {
        Event { plugin, raw }
    }

    /// Blocks until the event is ready; its error, if any, is the result.
    pub fn wait(self) -> Result<()> {
        if self.raw.is_null() {
            return Ok(());
        }
        let mut a = args!(PJRT_Event_Await_Args { event: self.raw });
        call!(self.plugin, PJRT_Event_Await, &mut a)
    }
}

destroy_on_drop!(Event, PJRT_Event_Destroy(PJRT_Event_Destroy_Args { event }), skip_null: true);

/// "Layouts", or "unknown type 25 (newer than PJRT 0.114)".
pub fn extension_name(kind: PJRT_Extension_Type) -> String {
    pjrt_sys::loader::extension_type_name(kind).map(str::to_string).unwrap_or_else(|| {
        format!("unknown type {kind} (newer than PJRT 0.{}, the newest header pjrtpkgs knows)", pjrt_sys::history::NEWEST_MINOR)
    })
}
