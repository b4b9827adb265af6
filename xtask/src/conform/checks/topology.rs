//! The topology: what the client describes, its serialization, and
//! compiling against a topology without a client (ahead-of-time).

use std::ffi::c_char;

use pjrt_sys::{args, *};

use super::{check, optional, Check};
use crate::conform::harness::{ensure, named_values, pjrt, slice, text, CheckError, Ctx, Outcome};

pub fn checks() -> Vec<Check> {
    vec![
        check("topology.from_client", from_client),
        check("topology.platform_name", platform_name),
        check("topology.platform_version", platform_version),
        check("topology.device_descriptions", device_descriptions),
        optional("topology.attributes", attributes),
        optional("topology.fingerprint", fingerprint),
        optional("topology.serialize", serialize_check),
        optional("topology.deserialize", deserialize),
        optional("topology.compile_without_client", compile_without_client),
        optional("topology.create_by_name", create_by_name),
    ]
}

/// The client's topology (owned by the client).
fn topology(ctx: &mut Ctx) -> Result<*mut PJRT_TopologyDescription, CheckError> {
    let client = ctx.client()?;
    let mut a = args!(PJRT_Client_TopologyDescription_Args { client: client });
    pjrt!(ctx, PJRT_Client_TopologyDescription, &mut a)?;
    ensure!(!a.topology.is_null(), "a null topology");
    Ok(a.topology)
}

fn from_client(ctx: &mut Ctx) -> Outcome {
    topology(ctx)?;
    Ok("ok".into())
}

fn platform_name(ctx: &mut Ctx) -> Outcome {
    let t = topology(ctx)?;
    let client = ctx.client()?;
    let mut a = args!(PJRT_TopologyDescription_PlatformName_Args { topology: t });
    pjrt!(ctx, PJRT_TopologyDescription_PlatformName, &mut a)?;
    let name = text(a.platform_name, a.platform_name_size);
    let mut c = args!(PJRT_Client_PlatformName_Args { client: client });
    pjrt!(ctx, PJRT_Client_PlatformName, &mut c)?;
    let client_name = text(c.platform_name, c.platform_name_size);
    ensure!(name == client_name, "the topology's platform is {name:?}, the client's {client_name:?}");
    Ok(name)
}

fn platform_version(ctx: &mut Ctx) -> Outcome {
    let t = topology(ctx)?;
    let mut a = args!(PJRT_TopologyDescription_PlatformVersion_Args { topology: t });
    pjrt!(ctx, PJRT_TopologyDescription_PlatformVersion, &mut a)?;
    Ok(text(a.platform_version, a.platform_version_size).chars().take(80).collect())
}

fn device_descriptions(ctx: &mut Ctx) -> Outcome {
    let t = topology(ctx)?;
    let client = ctx.client()?;
    let mut a = args!(PJRT_TopologyDescription_GetDeviceDescriptions_Args { topology: t });
    pjrt!(ctx, PJRT_TopologyDescription_GetDeviceDescriptions, &mut a)?;
    let mut d = args!(PJRT_Client_Devices_Args { client: client });
    pjrt!(ctx, PJRT_Client_Devices, &mut d)?;
    ensure!(a.num_descriptions == d.num_devices, "the topology describes {} devices, the client has {}", a.num_descriptions, d.num_devices);
    Ok(format!("{} device(s)", a.num_descriptions))
}

fn attributes(ctx: &mut Ctx) -> Outcome {
    let t = topology(ctx)?;
    let mut a = args!(PJRT_TopologyDescription_Attributes_Args { topology: t });
    pjrt!(ctx, PJRT_TopologyDescription_Attributes, &mut a)?;
    let attributes = named_values(a.attributes, a.num_attributes).map_err(CheckError::Fail)?;
    Ok(if attributes.is_empty() { "(none)".into() } else { attributes.keys().cloned().collect::<Vec<_>>().join(", ") })
}

fn serialize(ctx: &mut Ctx) -> Result<Vec<u8>, CheckError> {
    let t = topology(ctx)?;
    let mut a = args!(PJRT_TopologyDescription_Serialize_Args { topology: t });
    pjrt!(ctx, PJRT_TopologyDescription_Serialize, &mut a)?;
    let bytes = unsafe { slice(a.serialized_bytes as *const u8, a.serialized_bytes_size) }.to_vec();
    if let Some(deleter) = a.serialized_topology_deleter {
        pjrt_sys::in_flight::in_plugin("a deleter", || unsafe { deleter(a.serialized_topology) });
    }
    Ok(bytes)
}

fn serialize_check(ctx: &mut Ctx) -> Outcome {
    let bytes = serialize(ctx)?;
    ensure!(!bytes.is_empty(), "0 bytes");
    Ok(format!("{} bytes", bytes.len()))
}

fn destroy(ctx: &Ctx, topology: *mut PJRT_TopologyDescription) -> Result<(), CheckError> {
    pjrt!(ctx, PJRT_TopologyDescription_Destroy, &mut args!(PJRT_TopologyDescription_Destroy_Args { topology: topology }))
}

fn deserialize(ctx: &mut Ctx) -> Outcome {
    let bytes = serialize(ctx)?;
    let mut a = args!(PJRT_TopologyDescription_Deserialize_Args {
        serialized_topology: bytes.as_ptr() as *const c_char,
        serialized_topology_size: bytes.len(),
    });
    pjrt!(ctx, PJRT_TopologyDescription_Deserialize, &mut a)?;
    let mut n = args!(PJRT_TopologyDescription_PlatformName_Args { topology: a.topology });
    let named = pjrt!(ctx, PJRT_TopologyDescription_PlatformName, &mut n).map(|()| text(n.platform_name, n.platform_name_size));
    destroy(ctx, a.topology)?;
    Ok(format!("{} bytes back to a {} topology", bytes.len(), named?))
}

fn compile_without_client(ctx: &mut Ctx) -> Outcome {
    let t = topology(ctx)?;
    let code = crate::plugin::program::PROGRAM;
    let program =
        args!(PJRT_Program { code: code.as_ptr() as *mut _, code_size: code.len(), format: "mlir".as_ptr() as *const _, format_size: 4 });
    let options = crate::plugin::compile_options::single_device();
    let mut a = args!(PJRT_Compile_Args {
        topology: t,
        program: &program,
        compile_options: options.as_ptr() as *const _,
        compile_options_size: options.len(),
    });
    pjrt!(ctx, PJRT_Compile, &mut a)?;
    let exe = a.executable;
    let mut s = args!(PJRT_Executable_Serialize_Args { executable: exe });
    let serialized = pjrt!(ctx, PJRT_Executable_Serialize, &mut s).map(|()| {
        if let Some(deleter) = s.serialized_executable_deleter {
            pjrt_sys::in_flight::in_plugin("a deleter", || unsafe { deleter(s.serialized_executable) });
        }
        s.serialized_bytes_size
    });
    pjrt!(ctx, PJRT_Executable_Destroy, &mut args!(PJRT_Executable_Destroy_Args { executable: exe }))?;
    Ok(format!("{} bytes of executable, no client involved", serialized?))
}

fn create_by_name(ctx: &mut Ctx) -> Outcome {
    ctx.plugin()?;
    ctx.initialize()?;
    let name = "pjrtpkgs-conform";
    let mut a =
        args!(PJRT_TopologyDescription_Create_Args { topology_name: name.as_ptr() as *const c_char, topology_name_size: name.len() });
    pjrt!(ctx, PJRT_TopologyDescription_Create, &mut a)?;
    destroy(ctx, a.topology)?;
    Ok("created and destroyed".into())
}

/// PJRT 0.101, newer than these bindings: called by the history's layout.
/// The same topology fingerprints the same twice.
fn fingerprint(ctx: &mut Ctx) -> Outcome {
    let t = topology(ctx)?;
    let call = |ctx: &Ctx| -> Result<u64, CheckError> {
        let args = ctx.call_by_table(
            "PJRT_TopologyDescription_Fingerprint",
            "PJRT_TopologyDescription_Fingerprint_Args",
            &[("topology", t as u64)],
        )?;
        args.get("fingerprint").ok_or_else(|| CheckError::Fail("no fingerprint field".into()))
    };
    let (first, second) = (call(ctx)?, call(ctx)?);
    ensure!(first == second, "two fingerprints of one topology: {first:#x}, {second:#x}");
    Ok(format!("{first:#x}"))
}
