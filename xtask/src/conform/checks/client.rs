//! The client and its platform; devices, their descriptions and
//! attributes; memories and their kinds.

use std::collections::BTreeSet;

use pjrt_sys::{args, *};

use super::{check, optional, Check};
use crate::conform::harness::{ensure, fail, named_values, pjrt, slice, text, CheckError, Ctx, Outcome};
use crate::plugin::client_options::NamedValues;
use crate::plugin::session::Client;

pub fn checks() -> Vec<Check> {
    vec![
        check("client.create", create),
        check("client.platform_name", platform_name),
        check("client.platform_version", platform_version),
        check("client.process_index", process_index),
        check("client.devices", devices),
        check("client.addressable_devices", addressable_devices),
        check("client.lookup_device", lookup_device),
        check("client.lookup_addressable_device", lookup_addressable_device),
        check("client.addressable_memories", addressable_memories),
        check("client.default_device_assignment", default_device_assignment),
        check("client.second_client", second_client),
        check("device.description", description),
        check("device.description_ids_unique", description_ids_unique),
        check("device.description_process_index", description_process_index),
        check("device.description_kind", description_kind),
        check("device.description_debug_string", description_debug_string),
        check("device.description_to_string", description_to_string),
        check("device.description_attributes", description_attributes),
        check("device.is_addressable", is_addressable),
        check("device.local_hardware_id", local_hardware_id),
        check("device.addressable_memories", device_memories),
        check("device.default_memory", default_memory),
        optional("device.memory_stats", memory_stats),
        optional("device.clear_memory_stats", clear_memory_stats),
        optional("device.attributes", device_attributes),
        check("device.coords", coords),
        check("memory.ids_unique", memory_ids_unique),
        check("memory.kind", memory_kind),
        check("memory.kind_id", memory_kind_id),
        check("memory.debug_string", memory_debug_string),
        check("memory.to_string", memory_to_string),
        check("memory.addressable_by_devices", memory_addressable_by_devices),
    ]
}

fn create(ctx: &mut Ctx) -> Outcome {
    ctx.plugin()?;
    ctx.initialize()?;
    ctx.gate_api("PJRT_Client_Create", std::mem::offset_of!(PJRT_Api, PJRT_Client_Create))?;
    // No client: why, as `doctor` finds it, before the plugin's words (once,
    // here: the checks that need a client only SKIP).
    ctx.create_client()
        .map_err(|e| CheckError::Fail(crate::plugin::diagnosis::explain_failure(&ctx.path, None, ctx.backend.as_deref(), &e)))?;
    let options: Vec<String> = ctx.options.iter().map(|o| o.to_string()).collect();
    Ok(if options.is_empty() { "no options".into() } else { format!("options: {}", options.join(", ")) })
}

fn platform_name(ctx: &mut Ctx) -> Outcome {
    let client = ctx.client()?;
    let mut a = args!(PJRT_Client_PlatformName_Args { client: client });
    pjrt!(ctx, PJRT_Client_PlatformName, &mut a)?;
    let name = text(a.platform_name, a.platform_name_size);
    ensure!(!name.is_empty(), "empty platform name");
    Ok(name)
}

fn platform_version(ctx: &mut Ctx) -> Outcome {
    let client = ctx.client()?;
    let mut a = args!(PJRT_Client_PlatformVersion_Args { client: client });
    pjrt!(ctx, PJRT_Client_PlatformVersion, &mut a)?;
    Ok(text(a.platform_version, a.platform_version_size).chars().take(80).collect())
}

fn process_index(ctx: &mut Ctx) -> Outcome {
    let client = ctx.client()?;
    let mut a = args!(PJRT_Client_ProcessIndex_Args { client: client });
    pjrt!(ctx, PJRT_Client_ProcessIndex, &mut a)?;
    ensure!(a.process_index >= 0, "process index {}", a.process_index);
    Ok(a.process_index.to_string())
}

fn all_devices(ctx: &mut Ctx) -> Result<Vec<*mut PJRT_Device>, CheckError> {
    let client = ctx.client()?;
    let mut a = args!(PJRT_Client_Devices_Args { client: client });
    pjrt!(ctx, PJRT_Client_Devices, &mut a)?;
    Ok(unsafe { slice(a.devices, a.num_devices) }.to_vec())
}

fn devices(ctx: &mut Ctx) -> Outcome {
    let devices = all_devices(ctx)?;
    ensure!(!devices.is_empty(), "the client has no devices");
    ensure!(devices.iter().all(|d| !d.is_null()), "a device is null");
    Ok(format!("{} device(s)", devices.len()))
}

fn addressable_devices(ctx: &mut Ctx) -> Outcome {
    let client = ctx.client()?;
    let mut a = args!(PJRT_Client_AddressableDevices_Args { client: client });
    pjrt!(ctx, PJRT_Client_AddressableDevices, &mut a)?;
    let addressable = unsafe { slice(a.addressable_devices, a.num_addressable_devices) }.to_vec();
    ensure!(!addressable.is_empty(), "no addressable device");
    let all: BTreeSet<usize> = all_devices(ctx)?.iter().map(|d| *d as usize).collect();
    ensure!(addressable.iter().all(|d| all.contains(&(*d as usize))), "an addressable device is not among the client's devices");
    Ok(format!("{} of {} device(s)", addressable.len(), all.len()))
}

fn description_of(ctx: &Ctx, device: *mut PJRT_Device) -> Result<*mut PJRT_DeviceDescription, CheckError> {
    let mut a = args!(PJRT_Device_GetDescription_Args { device: device });
    pjrt!(ctx, PJRT_Device_GetDescription, &mut a)?;
    ensure!(!a.device_description.is_null(), "PJRT_Device_GetDescription returned null");
    Ok(a.device_description)
}

fn id_of(ctx: &Ctx, device: *mut PJRT_Device) -> Result<i32, CheckError> {
    let mut a = args!(PJRT_DeviceDescription_Id_Args { device_description: description_of(ctx, device)? });
    pjrt!(ctx, PJRT_DeviceDescription_Id, &mut a)?;
    Ok(a.id)
}

fn lookup_device(ctx: &mut Ctx) -> Outcome {
    let client = ctx.client()?;
    let device = ctx.device()?;
    let id = id_of(ctx, device)?;
    let mut a = args!(PJRT_Client_LookupDevice_Args { client: client, id: id });
    pjrt!(ctx, PJRT_Client_LookupDevice, &mut a)?;
    ensure!(a.device == device, "LookupDevice({id}) returned another device");
    Ok(format!("id {id}"))
}

fn hardware_id(ctx: &Ctx, device: *mut PJRT_Device) -> Result<i32, CheckError> {
    let mut a = args!(PJRT_Device_LocalHardwareId_Args { device: device });
    pjrt!(ctx, PJRT_Device_LocalHardwareId, &mut a)?;
    Ok(a.local_hardware_id)
}

fn lookup_addressable_device(ctx: &mut Ctx) -> Outcome {
    let client = ctx.client()?;
    let device = ctx.device()?;
    let hw = hardware_id(ctx, device)?;
    if hw < 0 {
        return Err(CheckError::Skip(format!("the device has no local hardware id ({hw})")));
    }
    let mut a = args!(PJRT_Client_LookupAddressableDevice_Args { client: client, local_hardware_id: hw });
    pjrt!(ctx, PJRT_Client_LookupAddressableDevice, &mut a)?;
    ensure!(a.addressable_device == device, "LookupAddressableDevice({hw}) returned another device");
    Ok(format!("local hardware id {hw}"))
}

fn client_memories(ctx: &mut Ctx) -> Result<Vec<*mut PJRT_Memory>, CheckError> {
    let client = ctx.client()?;
    let mut a = args!(PJRT_Client_AddressableMemories_Args { client: client });
    pjrt!(ctx, PJRT_Client_AddressableMemories, &mut a)?;
    Ok(unsafe { slice(a.addressable_memories, a.num_addressable_memories) }.to_vec())
}

fn addressable_memories(ctx: &mut Ctx) -> Outcome {
    let memories = client_memories(ctx)?;
    ensure!(!memories.is_empty(), "the client has no addressable memory");
    Ok(format!("{} memory space(s)", memories.len()))
}

fn default_device_assignment(ctx: &mut Ctx) -> Outcome {
    let client = ctx.client()?;
    let mut assignment = [-1i32; 1];
    let mut a = args!(PJRT_Client_DefaultDeviceAssignment_Args {
        client: client,
        num_replicas: 1,
        num_partitions: 1,
        default_assignment_size: 1,
        default_assignment: assignment.as_mut_ptr(),
    });
    pjrt!(ctx, PJRT_Client_DefaultDeviceAssignment, &mut a)?;
    let ids: BTreeSet<i32> = all_devices(ctx)?.into_iter().map(|d| id_of(ctx, d)).collect::<Result<_, _>>()?;
    ensure!(ids.contains(&assignment[0]), "1 replica x 1 partition assigned to device id {}, not a device of the client", assignment[0]);
    Ok(format!("device id {}", assignment[0]))
}

/// A second client, created and destroyed while the first lives.
fn second_client(ctx: &mut Ctx) -> Outcome {
    ctx.client()?;
    let named = NamedValues::new(&ctx.options);
    let plugin = ctx.plugin_ref();
    ctx.gate_api("PJRT_Client_Destroy", std::mem::offset_of!(PJRT_Api, PJRT_Client_Destroy))?;
    let second = Client::create_with(plugin, &named)?;
    drop(second);
    Ok("created and destroyed".into())
}

fn description(ctx: &mut Ctx) -> Outcome {
    let device = ctx.device()?;
    description_of(ctx, device)?;
    Ok("ok".into())
}

fn description_ids_unique(ctx: &mut Ctx) -> Outcome {
    let devices = all_devices(ctx)?;
    let ids: Vec<i32> = devices.iter().map(|d| id_of(ctx, *d)).collect::<Result<_, _>>()?;
    let unique: BTreeSet<i32> = ids.iter().copied().collect();
    ensure!(unique.len() == ids.len(), "device ids repeat: {ids:?}");
    Ok(format!("ids {ids:?}"))
}

fn description_process_index(ctx: &mut Ctx) -> Outcome {
    let device = ctx.device()?;
    let mut a = args!(PJRT_DeviceDescription_ProcessIndex_Args { device_description: description_of(ctx, device)? });
    pjrt!(ctx, PJRT_DeviceDescription_ProcessIndex, &mut a)?;
    ensure!(a.process_index >= 0, "process index {}", a.process_index);
    Ok(a.process_index.to_string())
}

fn description_kind(ctx: &mut Ctx) -> Outcome {
    let device = ctx.device()?;
    let mut a = args!(PJRT_DeviceDescription_Kind_Args { device_description: description_of(ctx, device)? });
    pjrt!(ctx, PJRT_DeviceDescription_Kind, &mut a)?;
    let kind = text(a.device_kind, a.device_kind_size);
    ensure!(!kind.is_empty(), "empty device kind");
    Ok(kind)
}

fn description_debug_string(ctx: &mut Ctx) -> Outcome {
    let device = ctx.device()?;
    let mut a = args!(PJRT_DeviceDescription_DebugString_Args { device_description: description_of(ctx, device)? });
    pjrt!(ctx, PJRT_DeviceDescription_DebugString, &mut a)?;
    Ok(text(a.debug_string, a.debug_string_size).chars().take(80).collect())
}

fn description_to_string(ctx: &mut Ctx) -> Outcome {
    let device = ctx.device()?;
    let mut a = args!(PJRT_DeviceDescription_ToString_Args { device_description: description_of(ctx, device)? });
    pjrt!(ctx, PJRT_DeviceDescription_ToString, &mut a)?;
    Ok(text(a.to_string, a.to_string_size).chars().take(80).collect())
}

fn description_attributes(ctx: &mut Ctx) -> Outcome {
    let device = ctx.device()?;
    let mut a = args!(PJRT_DeviceDescription_Attributes_Args { device_description: description_of(ctx, device)? });
    pjrt!(ctx, PJRT_DeviceDescription_Attributes, &mut a)?;
    let attributes = named_values(a.attributes, a.num_attributes).map_err(CheckError::Fail)?;
    Ok(if attributes.is_empty() { "(none)".into() } else { attributes.keys().cloned().collect::<Vec<_>>().join(", ") })
}

fn is_addressable(ctx: &mut Ctx) -> Outcome {
    for device in ctx.devices()? {
        let mut a = args!(PJRT_Device_IsAddressable_Args { device: device });
        pjrt!(ctx, PJRT_Device_IsAddressable, &mut a)?;
        ensure!(a.is_addressable, "an addressable device says it is not addressable");
    }
    Ok("every addressable device says so".into())
}

fn local_hardware_id(ctx: &mut Ctx) -> Outcome {
    let ids: Vec<i32> = ctx.devices()?.into_iter().map(|d| hardware_id(ctx, d)).collect::<Result<_, _>>()?;
    let known: Vec<i32> = ids.iter().copied().filter(|i| *i >= 0).collect();
    ensure!(known.iter().collect::<BTreeSet<_>>().len() == known.len(), "local hardware ids repeat: {ids:?}");
    Ok(format!("{ids:?}"))
}

fn memories_of(ctx: &Ctx, device: *mut PJRT_Device) -> Result<Vec<*mut PJRT_Memory>, CheckError> {
    let mut a = args!(PJRT_Device_AddressableMemories_Args { device: device });
    pjrt!(ctx, PJRT_Device_AddressableMemories, &mut a)?;
    Ok(unsafe { slice(a.memories, a.num_memories) }.to_vec())
}

fn kind_of(ctx: &Ctx, memory: *mut PJRT_Memory) -> Result<String, CheckError> {
    let mut a = args!(PJRT_Memory_Kind_Args { memory: memory });
    pjrt!(ctx, PJRT_Memory_Kind, &mut a)?;
    Ok(text(a.kind, a.kind_size))
}

fn device_memories(ctx: &mut Ctx) -> Outcome {
    let device = ctx.device()?;
    let memories = memories_of(ctx, device)?;
    ensure!(!memories.is_empty(), "the device has no addressable memory");
    let kinds: Vec<String> = memories.iter().map(|m| kind_of(ctx, *m)).collect::<Result<_, _>>()?;
    Ok(kinds.join(", "))
}

pub fn default_memory_of(ctx: &Ctx, device: *mut PJRT_Device) -> Result<*mut PJRT_Memory, CheckError> {
    let mut a = args!(PJRT_Device_DefaultMemory_Args { device: device });
    pjrt!(ctx, PJRT_Device_DefaultMemory, &mut a)?;
    ensure!(!a.memory.is_null(), "PJRT_Device_DefaultMemory returned null");
    Ok(a.memory)
}

fn default_memory(ctx: &mut Ctx) -> Outcome {
    let device = ctx.device()?;
    let memory = default_memory_of(ctx, device)?;
    ensure!(memories_of(ctx, device)?.contains(&memory), "the default memory is not among the device's memories");
    kind_of(ctx, memory)
}

fn memory_stats(ctx: &mut Ctx) -> Outcome {
    let device = ctx.device()?;
    let mut a = args!(PJRT_Device_MemoryStats_Args { device: device });
    pjrt!(ctx, PJRT_Device_MemoryStats, &mut a)?;
    ensure!(a.bytes_in_use >= 0, "bytes_in_use {}", a.bytes_in_use);
    Ok(format!(
        "bytes_in_use={}{}",
        a.bytes_in_use,
        if a.bytes_limit_is_set { format!(", bytes_limit={}", a.bytes_limit) } else { String::new() }
    ))
}

fn device_attributes(ctx: &mut Ctx) -> Outcome {
    let device = ctx.device()?;
    let mut a = args!(PJRT_Device_GetAttributes_Args { device: device });
    pjrt!(ctx, PJRT_Device_GetAttributes, &mut a)?;
    let attributes = named_values(a.attributes, a.num_attributes).map_err(CheckError::Fail);
    if let Some(deleter) = a.attributes_deleter {
        pjrt_sys::in_flight::in_plugin("a deleter", || unsafe { deleter(a.device_attributes) });
    }
    let attributes = attributes?;
    Ok(if attributes.is_empty() { "(none)".into() } else { attributes.keys().cloned().collect::<Vec<_>>().join(", ") })
}

fn memory_ids_unique(ctx: &mut Ctx) -> Outcome {
    let memories = client_memories(ctx)?;
    let mut ids = Vec::new();
    for m in &memories {
        let mut a = args!(PJRT_Memory_Id_Args { memory: *m });
        pjrt!(ctx, PJRT_Memory_Id, &mut a)?;
        ids.push(a.id);
    }
    ensure!(ids.iter().collect::<BTreeSet<_>>().len() == ids.len(), "memory ids repeat: {ids:?}");
    Ok(format!("{ids:?}"))
}

fn memory_kind(ctx: &mut Ctx) -> Outcome {
    let memories = client_memories(ctx)?;
    let kinds: BTreeSet<String> = memories.iter().map(|m| kind_of(ctx, *m)).collect::<Result<_, _>>()?;
    ensure!(kinds.iter().all(|k| !k.is_empty()), "a memory has an empty kind");
    Ok(kinds.into_iter().collect::<Vec<_>>().join(", "))
}

fn memory_kind_id(ctx: &mut Ctx) -> Outcome {
    let memories = client_memories(ctx)?;
    let mut by_kind: std::collections::BTreeMap<String, BTreeSet<i32>> = Default::default();
    for m in &memories {
        let mut a = args!(PJRT_Memory_Kind_Id_Args { memory: *m });
        pjrt!(ctx, PJRT_Memory_Kind_Id, &mut a)?;
        by_kind.entry(kind_of(ctx, *m)?).or_default().insert(a.kind_id);
    }
    let ambiguous: Vec<String> = by_kind.iter().filter(|(_, ids)| ids.len() > 1).map(|(k, ids)| format!("{k}: {ids:?}")).collect();
    ensure!(ambiguous.is_empty(), "one kind, several kind ids: {}", ambiguous.join("; "));
    Ok(by_kind.iter().map(|(k, ids)| format!("{k}={}", ids.iter().next().unwrap_or(&-1))).collect::<Vec<_>>().join(", "))
}

fn memory_debug_string(ctx: &mut Ctx) -> Outcome {
    let memory = *client_memories(ctx)?.first().ok_or_else(|| CheckError::Skip("no memory".into()))?;
    let mut a = args!(PJRT_Memory_DebugString_Args { memory: memory });
    pjrt!(ctx, PJRT_Memory_DebugString, &mut a)?;
    Ok(text(a.debug_string, a.debug_string_size).chars().take(80).collect())
}

fn memory_to_string(ctx: &mut Ctx) -> Outcome {
    let memory = *client_memories(ctx)?.first().ok_or_else(|| CheckError::Skip("no memory".into()))?;
    let mut a = args!(PJRT_Memory_ToString_Args { memory: memory });
    pjrt!(ctx, PJRT_Memory_ToString, &mut a)?;
    Ok(text(a.to_string, a.to_string_size).chars().take(80).collect())
}

fn memory_addressable_by_devices(ctx: &mut Ctx) -> Outcome {
    let device = ctx.device()?;
    let memories = memories_of(ctx, device)?;
    for m in &memories {
        let mut a = args!(PJRT_Memory_AddressableByDevices_Args { memory: *m });
        pjrt!(ctx, PJRT_Memory_AddressableByDevices, &mut a)?;
        let devices = unsafe { slice(a.devices, a.num_devices) };
        if !devices.contains(&device) {
            fail!("memory {} of the device does not list the device among those that address it", kind_of(ctx, *m)?);
        }
    }
    Ok(format!("{} memory space(s) of the device list it", memories.len()))
}

/// PJRT 0.106, newer than these bindings: called by the history's layout.
fn clear_memory_stats(ctx: &mut Ctx) -> Outcome {
    let device = ctx.device()?;
    ctx.call_by_table("PJRT_Device_ClearMemoryStats", "PJRT_Device_ClearMemoryStats_Args", &[("device", device as u64)])?;
    Ok("cleared".into())
}

/// Where the device sits in its mesh: a `coords` attribute of its
/// description or of the device (TPU and GPU plugins report one).
fn coords(ctx: &mut Ctx) -> Outcome {
    let device = ctx.device()?;
    let mut a = args!(PJRT_DeviceDescription_Attributes_Args { device_description: description_of(ctx, device)? });
    pjrt!(ctx, PJRT_DeviceDescription_Attributes, &mut a)?;
    let attributes = named_values(a.attributes, a.num_attributes).map_err(CheckError::Fail)?;
    match attributes.get("coords") {
        Some(serde_json::Value::Array(c)) if !c.is_empty() => Ok(format!("{c:?}")),
        Some(other) => fail!("coords is {other}, not a list of integers"),
        None => Err(CheckError::Unsupported("the plugin reports no coords attribute".into())),
    }
}
