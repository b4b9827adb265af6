//! Buffers: a host -> device -> host round trip of every element type the
//! history knows (compared bit for bit), shapes and layouts, host buffer
//! semantics, copies, deletion, the lower-level entry points.

use std::ffi::c_void;

use pjrt_sys::{args, history, *};

use super::{check, optional, Check};
use crate::conform::harness::{ensure, f32_bytes, f32_values, fail, pjrt, slice, CheckError, Ctx, Outcome};
use crate::plugin::session::Buffer;

pub fn checks() -> Vec<Check> {
    let mut checks: Vec<Check> = element_types()
        .into_iter()
        .map(|(value, name)| {
            let id = format!("buffer.roundtrip_{}", name.to_ascii_lowercase());
            check(&id, move |ctx| roundtrip(ctx, value, name))
        })
        .collect();
    checks.extend([
        check("buffer.element_type", element_type),
        check("buffer.dimensions", dimensions),
        check("buffer.unpadded_dimensions", unpadded_dimensions),
        check("buffer.dynamic_dimension_indices", dynamic_dimension_indices),
        check("buffer.on_device_size", on_device_size),
        check("buffer.device", device),
        check("buffer.memory", memory),
        check("buffer.is_on_cpu", is_on_cpu),
        check("buffer.ready_event", ready_event),
        check("buffer.memory_layout", memory_layout),
        check("buffer.to_host_size_query", to_host_size_query),
        check("buffer.scalar", scalar),
        check("buffer.zero_sized", zero_sized),
        check("buffer.rank4", rank4),
        check("buffer.host_byte_strides", host_byte_strides),
        optional("buffer.to_host_layout", to_host_layout),
        check("buffer.semantics_immutable_only_during_call", semantics_only_during_call),
        check("buffer.semantics_immutable_zero_copy", semantics_zero_copy),
        check("buffer.copy_to_device", copy_to_device),
        check("buffer.copy_to_memory", copy_to_memory),
        check("buffer.delete", delete),
        optional("buffer.unsafe_pointer", unsafe_pointer),
        optional("buffer.opaque_device_pointer", opaque_device_pointer),
        optional("buffer.external_reference_count", external_reference_count),
        optional("buffer.create_uninitialized", create_uninitialized),
        optional("buffer.async_host_to_device", async_host_to_device),
        optional("buffer.copy_raw_to_host", copy_raw_to_host),
    ]);
    checks
}

/// Every `PJRT_Buffer_Type` the history knows that holds array data, by
/// value, with its newest name (`F32`, `F8E4M3FN`, ...).
pub fn element_types() -> Vec<(PJRT_Buffer_Type, &'static str)> {
    // As the newest header has them (early versions renumbered some).
    let mut types: Vec<(PJRT_Buffer_Type, &'static str)> = history::ENUMERATORS
        .iter()
        .filter(|e| e.enumeration == "PJRT_Buffer_Type" && e.until.is_none())
        .map(|e| (e.value as PJRT_Buffer_Type, e.name.trim_start_matches("PJRT_Buffer_Type_")))
        .filter(|(_, name)| *name != "INVALID" && *name != "TOKEN")
        .collect();
    types.sort();
    types
}

/// Bits per element of a type, by its name; `None` for a name this
/// version of pjrtpkgs does not know the width of.
fn bits(name: &str) -> Option<usize> {
    Some(match name {
        "PRED" | "S8" | "U8" => 8,
        "S16" | "U16" | "F16" | "BF16" => 16,
        "S32" | "U32" | "F32" => 32,
        "S64" | "U64" | "F64" | "C64" => 64,
        "C128" => 128,
        "S4" | "U4" | "F4E2M1FN" => 4,
        "S2" | "U2" => 2,
        "S1" | "U1" => 1,
        _ if name.starts_with("F8") => 8,
        _ if name.starts_with("F6") => 6,
        _ => return None,
    })
}

/// Eight elements of `name`, as host bytes, each a valid, finite value of
/// the type (no NaN a device might canonicalize). Sub-byte types take one
/// byte per element, as PJRT host buffers do.
fn sample(name: &str) -> Option<Vec<u8>> {
    let bits = bits(name)?;
    let f16: [u16; 8] = [0x3C00, 0xC000, 0x3800, 0x4200, 0x0001, 0x7BFF, 0x8000, 0x3555];
    let bf16: [u16; 8] = [0x3F80, 0xC000, 0x3F00, 0x4040, 0x0001, 0x7F7F, 0x8000, 0x3EAA];
    let f32s = [1.5f32, -2.25, 0.0, 3.0e-39, 65504.0, -0.0, 1.0e30, 7.0];
    let f64s = [1.5f64, -2.25, 0.0, 5.0e-324, 1.0e300, -0.0, 3.25, 7.0];
    Some(match name {
        "PRED" => vec![1, 0, 1, 1, 0, 0, 1, 0],
        "F16" => f16.iter().flat_map(|v| v.to_le_bytes()).collect(),
        "BF16" => bf16.iter().flat_map(|v| v.to_le_bytes()).collect(),
        "F32" => f32_bytes(&f32s),
        "F64" => f64s.iter().flat_map(|v| v.to_le_bytes()).collect(),
        "C64" => f32s.iter().chain(f32s.iter().rev()).flat_map(|v| v.to_le_bytes()).collect(),
        "C128" => f64s.iter().chain(f64s.iter().rev()).flat_map(|v| v.to_le_bytes()).collect(),
        // Floats of one byte or less: small positive codes are finite in
        // every variant (FN, FNUZ, E8M0FNU...).
        _ if name.starts_with('F') && bits <= 8 => (0..8u8).map(|i| (i * 5 + 1) % (1 << (bits.min(6) - 1))).collect(),
        // Integers: every bit pattern is a value; sub-byte ones in range.
        _ if bits < 8 => (0..8u8).map(|i| (i * 3 + 1) % (1 << bits)).collect(),
        _ => (0..8 * bits / 8).map(|i| (i as u8).wrapping_mul(37).wrapping_add(11)).collect(),
    })
}

fn roundtrip(ctx: &mut Ctx, ty: PJRT_Buffer_Type, name: &str) -> Outcome {
    ctx.plugin()?;
    if let Some(run) = history::enumerator("PJRT_Buffer_Type", ty as i64) {
        ctx.record(run.since);
        if ctx.minor() < run.since {
            return Err(CheckError::Unsupported(format!("{name} arrived in PJRT 0.{}; the plugin is 0.{}", run.since, ctx.minor())));
        }
    }
    let Some(data) = sample(name) else {
        return Err(CheckError::Skip(format!("pjrtpkgs does not know the width of {name}")));
    };
    let buffer = match ctx.buffer(&data, ty, &[8]) {
        Ok(b) => b,
        // A type the plugin does not take is a capability, not a defect.
        Err(CheckError::Pjrt { function, code, message }) => {
            return Err(CheckError::Unsupported(format!(
                "{function}: {} ({code}): {}",
                pjrt_sys::loader::error_code_name(code),
                first_line(&message)
            )))
        }
        Err(e) => return Err(e),
    };
    let mut t = args!(PJRT_Buffer_ElementType_Args { buffer: buffer.raw() });
    pjrt!(ctx, PJRT_Buffer_ElementType, &mut t)?;
    ensure!(t.type_ == ty, "the buffer reports element type {}, created as {ty} ({name})", t.type_);
    let back = ctx.to_host(buffer.raw())?;
    if back == data {
        return Ok(format!("{} bytes, bit for bit", back.len()));
    }
    let bits = bits(name).unwrap_or(8);
    let packed = pack(&data, bits);
    if bits < 8 && back == packed {
        return Ok(format!("{} bytes packed, bit for bit", back.len()));
    }
    fail!("sent {data:02x?}, got back {back:02x?}")
}

/// Sub-byte elements packed low bits first, as XLA packs them.
fn pack(data: &[u8], bits: usize) -> Vec<u8> {
    let per_byte = 8 / bits;
    data.chunks(per_byte)
        .map(|c| c.iter().enumerate().fold(0u8, |acc, (i, v)| acc | ((v & ((1 << bits) - 1) as u8) << (i * bits))))
        .collect()
}

pub fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").chars().take(200).collect()
}

fn sample_buffer(ctx: &mut Ctx) -> Result<Buffer<'static>, CheckError> {
    ctx.buffer_f32(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3])
}

fn element_type(ctx: &mut Ctx) -> Outcome {
    let b = sample_buffer(ctx)?;
    let mut a = args!(PJRT_Buffer_ElementType_Args { buffer: b.raw() });
    pjrt!(ctx, PJRT_Buffer_ElementType, &mut a)?;
    ensure!(a.type_ == PJRT_Buffer_Type_F32, "an F32 buffer reports element type {}", a.type_);
    Ok("F32".into())
}

fn dimensions(ctx: &mut Ctx) -> Outcome {
    let b = sample_buffer(ctx)?;
    let mut a = args!(PJRT_Buffer_Dimensions_Args { buffer: b.raw() });
    pjrt!(ctx, PJRT_Buffer_Dimensions, &mut a)?;
    let dims = unsafe { slice(a.dims, a.num_dims) };
    ensure!(dims == [2, 3], "dimensions {dims:?}, created as [2, 3]");
    Ok(format!("{dims:?}"))
}

fn unpadded_dimensions(ctx: &mut Ctx) -> Outcome {
    let b = sample_buffer(ctx)?;
    let mut a = args!(PJRT_Buffer_UnpaddedDimensions_Args { buffer: b.raw() });
    pjrt!(ctx, PJRT_Buffer_UnpaddedDimensions, &mut a)?;
    let dims = unsafe { slice(a.unpadded_dims, a.num_dims) };
    ensure!(dims == [2, 3], "unpadded dimensions {dims:?}, created as [2, 3]");
    Ok(format!("{dims:?}"))
}

fn dynamic_dimension_indices(ctx: &mut Ctx) -> Outcome {
    let b = sample_buffer(ctx)?;
    let mut a = args!(PJRT_Buffer_DynamicDimensionIndices_Args { buffer: b.raw() });
    pjrt!(ctx, PJRT_Buffer_DynamicDimensionIndices, &mut a)?;
    let dynamic = unsafe { slice(a.dynamic_dim_indices, a.num_dynamic_dims) };
    ensure!(dynamic.is_empty(), "a static shape reports dynamic dimensions {dynamic:?}");
    Ok("none (static shape)".into())
}

fn on_device_size(ctx: &mut Ctx) -> Outcome {
    let b = sample_buffer(ctx)?;
    let mut a = args!(PJRT_Buffer_OnDeviceSizeInBytes_Args { buffer: b.raw() });
    pjrt!(ctx, PJRT_Buffer_OnDeviceSizeInBytes, &mut a)?;
    ensure!(a.on_device_size_in_bytes >= 24, "{} bytes on the device for 6 f32s", a.on_device_size_in_bytes);
    Ok(format!("{} bytes", a.on_device_size_in_bytes))
}

fn device(ctx: &mut Ctx) -> Outcome {
    let b = sample_buffer(ctx)?;
    let expected = ctx.device()?;
    let mut a = args!(PJRT_Buffer_Device_Args { buffer: b.raw() });
    pjrt!(ctx, PJRT_Buffer_Device, &mut a)?;
    ensure!(a.device == expected, "the buffer is on another device than the one it was created on");
    Ok("the device it was created on".into())
}

fn memory(ctx: &mut Ctx) -> Outcome {
    let b = sample_buffer(ctx)?;
    let device = ctx.device()?;
    let expected = super::client::default_memory_of(ctx, device)?;
    let mut a = args!(PJRT_Buffer_Memory_Args { buffer: b.raw() });
    pjrt!(ctx, PJRT_Buffer_Memory, &mut a)?;
    ensure!(a.memory == expected, "a buffer created without a memory is not in the device's default memory");
    Ok("the device's default memory".into())
}

fn is_on_cpu(ctx: &mut Ctx) -> Outcome {
    let b = sample_buffer(ctx)?;
    let mut a = args!(PJRT_Buffer_IsOnCpu_Args { buffer: b.raw() });
    pjrt!(ctx, PJRT_Buffer_IsOnCpu, &mut a)?;
    Ok(a.is_on_cpu.to_string())
}

fn ready_event(ctx: &mut Ctx) -> Outcome {
    let b = sample_buffer(ctx)?;
    let mut a = args!(PJRT_Buffer_ReadyEvent_Args { buffer: b.raw() });
    pjrt!(ctx, PJRT_Buffer_ReadyEvent, &mut a)?;
    ensure!(!a.event.is_null(), "null ready event");
    ctx.wait(a.event)?;
    Ok("ready".into())
}

fn memory_layout(ctx: &mut Ctx) -> Outcome {
    let b = sample_buffer(ctx)?;
    let mut a = args!(PJRT_Buffer_GetMemoryLayout_Args { buffer: b.raw() });
    pjrt!(ctx, PJRT_Buffer_GetMemoryLayout, &mut a)?;
    match a.layout.type_ {
        PJRT_Buffer_MemoryLayout_Type_Tiled => {
            let tiled = unsafe { a.layout.__bindgen_anon_1.tiled };
            let order = unsafe { slice(tiled.minor_to_major, tiled.minor_to_major_size) };
            ensure!(order.len() == 2, "a rank-2 buffer has a minor_to_major of {order:?}");
            Ok(format!("tiled, minor_to_major {order:?}, {} tile(s)", tiled.num_tiles))
        }
        PJRT_Buffer_MemoryLayout_Type_Strides => {
            let strides = unsafe { a.layout.__bindgen_anon_1.strides };
            Ok(format!("strides {:?}", unsafe { slice(strides.byte_strides, strides.num_byte_strides) }))
        }
        other => fail!("layout type {other}"),
    }
}

fn to_host_size_query(ctx: &mut Ctx) -> Outcome {
    let b = sample_buffer(ctx)?;
    let mut a = args!(PJRT_Buffer_ToHostBuffer_Args { src: b.raw() });
    pjrt!(ctx, PJRT_Buffer_ToHostBuffer, &mut a)?;
    ensure!(a.dst_size == 24, "a null destination asks for the size: {} bytes for 6 f32s", a.dst_size);
    Ok("24 bytes".into())
}

fn roundtrip_f32(ctx: &mut Ctx, values: &[f32], dims: &[i64]) -> Outcome {
    let b = ctx.buffer_f32(values, dims)?;
    let back = f32_values(&ctx.to_host(b.raw())?);
    ensure!(back == values, "dims {dims:?}: sent {values:?}, got back {back:?}");
    Ok(format!("dims {dims:?}"))
}

fn scalar(ctx: &mut Ctx) -> Outcome {
    roundtrip_f32(ctx, &[42.5], &[])
}

fn zero_sized(ctx: &mut Ctx) -> Outcome {
    let b = ctx.buffer_f32(&[], &[0, 3])?;
    let back = ctx.to_host(b.raw())?;
    ensure!(back.is_empty(), "a [0, 3] buffer read back {} bytes", back.len());
    Ok("dims [0, 3]".into())
}

fn rank4(ctx: &mut Ctx) -> Outcome {
    let values: Vec<f32> = (0..2 * 3 * 4).map(|i| i as f32 * 0.5 - 3.0).collect();
    roundtrip_f32(ctx, &values, &[2, 3, 1, 4])
}

/// A column-major host array (byte_strides) reads back row-major.
fn host_byte_strides(ctx: &mut Ctx) -> Outcome {
    let client = ctx.client()?;
    let device = ctx.device()?;
    // M = [[1, 2, 3], [4, 5, 6]] stored column by column.
    let column_major = f32_bytes(&[1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
    let dims = [2i64, 3];
    let strides = [4i64, 8];
    let mut a = args!(PJRT_Client_BufferFromHostBuffer_Args {
        client: client,
        data: column_major.as_ptr() as *const c_void,
        type_: PJRT_Buffer_Type_F32,
        dims: dims.as_ptr(),
        num_dims: 2,
        byte_strides: strides.as_ptr(),
        num_byte_strides: 2,
        host_buffer_semantics: PJRT_HostBufferSemantics_kImmutableUntilTransferCompletes,
        device: device,
    });
    pjrt!(ctx, PJRT_Client_BufferFromHostBuffer, &mut a)?;
    let b = Buffer::own(ctx.plugin_ref(), a.buffer);
    ctx.wait(a.done_with_host_buffer)?;
    let back = f32_values(&ctx.to_host(b.raw())?);
    ensure!(back == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0], "column-major [[1,2,3],[4,5,6]] read back row-major as {back:?}");
    Ok("column-major in, row-major out".into())
}

/// ToHostBuffer into a column-major host layout (minor_to_major [0, 1]).
fn to_host_layout(ctx: &mut Ctx) -> Outcome {
    ctx.plugin()?;
    ctx.gate_field("PJRT_Buffer_ToHostBuffer_Args", "host_layout")?;
    let b = sample_buffer(ctx)?;
    // Column-major: dimension 0 is the most minor.
    let minor_to_major = [0i64, 1];
    let mut layout = args!(PJRT_Buffer_MemoryLayout { type_: PJRT_Buffer_MemoryLayout_Type_Tiled });
    layout.__bindgen_anon_1.tiled =
        args!(PJRT_Buffer_MemoryLayout_Tiled { minor_to_major: minor_to_major.as_ptr(), minor_to_major_size: 2 });
    let mut out = vec![0u8; 24];
    let mut a =
        args!(PJRT_Buffer_ToHostBuffer_Args { src: b.raw(), host_layout: &mut layout, dst: out.as_mut_ptr() as *mut c_void, dst_size: 24 });
    pjrt!(ctx, PJRT_Buffer_ToHostBuffer, &mut a)?;
    ctx.wait(a.event)?;
    let back = f32_values(&out);
    ensure!(back == [1.0, 4.0, 2.0, 5.0, 3.0, 6.0], "[[1,2,3],[4,5,6]] copied out column-major as {back:?}");
    Ok("row-major on the device, column-major out".into())
}

/// kImmutableOnlyDuringCall: the host data may change as soon as the call
/// returns.
fn semantics_only_during_call(ctx: &mut Ctx) -> Outcome {
    let client = ctx.client()?;
    let device = ctx.device()?;
    let mut data = f32_bytes(&[1.0, 2.0, 3.0, 4.0]);
    let dims = [4i64];
    let mut a = args!(PJRT_Client_BufferFromHostBuffer_Args {
        client: client,
        data: data.as_ptr() as *const c_void,
        type_: PJRT_Buffer_Type_F32,
        dims: dims.as_ptr(),
        num_dims: 1,
        host_buffer_semantics: PJRT_HostBufferSemantics_kImmutableOnlyDuringCall,
        device: device,
    });
    pjrt!(ctx, PJRT_Client_BufferFromHostBuffer, &mut a)?;
    let b = Buffer::own(ctx.plugin_ref(), a.buffer);
    data.fill(0xff);
    ctx.wait(a.done_with_host_buffer)?;
    let back = f32_values(&ctx.to_host(b.raw())?);
    ensure!(back == [1.0, 2.0, 3.0, 4.0], "the buffer changed with the host data after the call returned: {back:?}");
    Ok("host data reusable on return".into())
}

#[repr(C, align(64))]
struct Aligned([f32; 16]);

/// kImmutableZeroCopy: the plugin may alias aligned host memory; the data
/// must stay alive and unchanged until the buffer is gone.
fn semantics_zero_copy(ctx: &mut Ctx) -> Outcome {
    let client = ctx.client()?;
    let device = ctx.device()?;
    let data = Box::new(Aligned(std::array::from_fn(|i| i as f32 + 0.25)));
    let dims = [16i64];
    let mut a = args!(PJRT_Client_BufferFromHostBuffer_Args {
        client: client,
        data: data.0.as_ptr() as *const c_void,
        type_: PJRT_Buffer_Type_F32,
        dims: dims.as_ptr(),
        num_dims: 1,
        host_buffer_semantics: PJRT_HostBufferSemantics_kImmutableZeroCopy,
        device: device,
    });
    pjrt!(ctx, PJRT_Client_BufferFromHostBuffer, &mut a)?;
    let b = Buffer::own(ctx.plugin_ref(), a.buffer);
    let back = f32_values(&ctx.to_host(b.raw())?);
    ensure!(back == data.0, "zero-copy buffer read back {back:?}");
    drop(b);
    ctx.wait(a.done_with_host_buffer)?;
    drop(data);
    Ok("16 aligned f32s".into())
}

fn copy_to_device(ctx: &mut Ctx) -> Outcome {
    let b = sample_buffer(ctx)?;
    let device = ctx.device()?;
    let mut a = args!(PJRT_Buffer_CopyToDevice_Args { buffer: b.raw(), dst_device: device });
    pjrt!(ctx, PJRT_Buffer_CopyToDevice, &mut a)?;
    let copy = Buffer::own(ctx.plugin_ref(), a.dst_buffer);
    let back = f32_values(&ctx.to_host(copy.raw())?);
    ensure!(back == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0], "the copy holds {back:?}");
    Ok("same device".into())
}

fn copy_to_memory(ctx: &mut Ctx) -> Outcome {
    let b = sample_buffer(ctx)?;
    let device = ctx.device()?;
    let default = super::client::default_memory_of(ctx, device)?;
    let mut m = args!(PJRT_Device_AddressableMemories_Args { device: device });
    pjrt!(ctx, PJRT_Device_AddressableMemories, &mut m)?;
    let memories = unsafe { slice(m.memories, m.num_memories) }.to_vec();
    let target = memories.iter().copied().find(|x| *x != default).unwrap_or(default);
    let mut k = args!(PJRT_Memory_Kind_Args { memory: target });
    pjrt!(ctx, PJRT_Memory_Kind, &mut k)?;
    let kind = crate::conform::harness::text(k.kind, k.kind_size);
    let mut a = args!(PJRT_Buffer_CopyToMemory_Args { buffer: b.raw(), dst_memory: target });
    pjrt!(ctx, PJRT_Buffer_CopyToMemory, &mut a)?;
    let copy = Buffer::own(ctx.plugin_ref(), a.dst_buffer);
    let back = f32_values(&ctx.to_host(copy.raw())?);
    ensure!(back == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0], "the copy in {kind} holds {back:?}");
    Ok(format!("to {kind}"))
}

/// Delete frees the data; the buffer then says so, and reading it is an
/// error, not a crash.
fn delete(ctx: &mut Ctx) -> Outcome {
    let b = sample_buffer(ctx)?;
    pjrt!(ctx, PJRT_Buffer_Delete, &mut args!(PJRT_Buffer_Delete_Args { buffer: b.raw() }))?;
    let mut d = args!(PJRT_Buffer_IsDeleted_Args { buffer: b.raw() });
    pjrt!(ctx, PJRT_Buffer_IsDeleted, &mut d)?;
    ensure!(d.is_deleted, "IsDeleted is false after Delete");
    match ctx.to_host(b.raw()) {
        Err(CheckError::Pjrt { code, .. }) => Ok(format!("reading it then fails with {}", pjrt_sys::loader::error_code_name(code))),
        Err(other) => Err(other),
        Ok(bytes) => fail!("a deleted buffer read back {} bytes", bytes.len()),
    }
}

fn unsafe_pointer(ctx: &mut Ctx) -> Outcome {
    let b = sample_buffer(ctx)?;
    let mut a = args!(PJRT_Buffer_UnsafePointer_Args { buffer: b.raw() });
    pjrt!(ctx, PJRT_Buffer_UnsafePointer, &mut a)?;
    ensure!(a.buffer_pointer != 0, "null pointer");
    Ok("non-null".into())
}

fn opaque_device_pointer(ctx: &mut Ctx) -> Outcome {
    let b = sample_buffer(ctx)?;
    let mut a = args!(PJRT_Buffer_OpaqueDeviceMemoryDataPointer_Args { buffer: b.raw() });
    pjrt!(ctx, PJRT_Buffer_OpaqueDeviceMemoryDataPointer, &mut a)?;
    ensure!(!a.device_memory_ptr.is_null(), "null pointer");
    Ok("non-null".into())
}

fn external_reference_count(ctx: &mut Ctx) -> Outcome {
    let b = sample_buffer(ctx)?;
    pjrt!(
        ctx,
        PJRT_Buffer_IncreaseExternalReferenceCount,
        &mut args!(PJRT_Buffer_IncreaseExternalReferenceCount_Args { buffer: b.raw() })
    )?;
    pjrt!(
        ctx,
        PJRT_Buffer_DecreaseExternalReferenceCount,
        &mut args!(PJRT_Buffer_DecreaseExternalReferenceCount_Args { buffer: b.raw() })
    )?;
    Ok("increased and decreased".into())
}

fn create_uninitialized(ctx: &mut Ctx) -> Outcome {
    let client = ctx.client()?;
    let device = ctx.device()?;
    let dims = [3i64, 5];
    let mut a = args!(PJRT_Client_CreateUninitializedBuffer_Args {
        client: client,
        shape_dims: dims.as_ptr(),
        shape_num_dims: 2,
        shape_element_type: PJRT_Buffer_Type_S32,
        device: device,
    });
    pjrt!(ctx, PJRT_Client_CreateUninitializedBuffer, &mut a)?;
    let b = Buffer::own(ctx.plugin_ref(), a.buffer);
    let mut d = args!(PJRT_Buffer_Dimensions_Args { buffer: b.raw() });
    pjrt!(ctx, PJRT_Buffer_Dimensions, &mut d)?;
    let got = unsafe { slice(d.dims, d.num_dims) };
    ensure!(got == dims, "dimensions {got:?}, asked for {dims:?}");
    Ok("s32[3,5]".into())
}

fn async_host_to_device(ctx: &mut Ctx) -> Outcome {
    let client = ctx.client()?;
    let device = ctx.device()?;
    let memory = super::client::default_memory_of(ctx, device)?;
    let dims = [4i64];
    let mut spec = args!(PJRT_ShapeSpec { dims: dims.as_ptr(), num_dims: 1, element_type: PJRT_Buffer_Type_F32 });
    let mut a = args!(PJRT_Client_CreateBuffersForAsyncHostToDevice_Args {
        client: client,
        shape_specs: &mut spec,
        num_shape_specs: 1,
        memory: memory,
    });
    pjrt!(ctx, PJRT_Client_CreateBuffersForAsyncHostToDevice, &mut a)?;
    let manager = a.transfer_manager;
    let result = (|| -> Outcome {
        let data = f32_bytes(&[9.0, 8.0, 7.0, 6.0]);
        let mut r = args!(PJRT_AsyncHostToDeviceTransferManager_RetrieveBuffer_Args { transfer_manager: manager, buffer_index: 0 });
        pjrt!(ctx, PJRT_AsyncHostToDeviceTransferManager_RetrieveBuffer, &mut r)?;
        let b = Buffer::own(ctx.plugin_ref(), r.buffer_out);
        // Two chunks, the second one last.
        for (offset, last) in [(0usize, false), (8, true)] {
            let mut t = args!(PJRT_AsyncHostToDeviceTransferManager_TransferData_Args {
                transfer_manager: manager,
                buffer_index: 0,
                data: data[offset..].as_ptr() as *const c_void,
                offset: offset as i64,
                transfer_size: 8,
                is_last_transfer: last,
            });
            pjrt!(ctx, PJRT_AsyncHostToDeviceTransferManager_TransferData, &mut t)?;
            ctx.wait(t.done_with_h2d_transfer)?;
        }
        let back = f32_values(&ctx.to_host(b.raw())?);
        ensure!(back == [9.0, 8.0, 7.0, 6.0], "two chunks arrived as {back:?}");
        Ok("two chunks into f32[4]".into())
    })();
    let _ = pjrt!(
        ctx,
        PJRT_AsyncHostToDeviceTransferManager_Destroy,
        &mut args!(PJRT_AsyncHostToDeviceTransferManager_Destroy_Args { transfer_manager: manager })
    );
    result
}

fn copy_raw_to_host(ctx: &mut Ctx) -> Outcome {
    let b = sample_buffer(ctx)?;
    let mut out = vec![0u8; 8];
    let mut a =
        args!(PJRT_Buffer_CopyRawToHost_Args { buffer: b.raw(), dst: out.as_mut_ptr() as *mut c_void, offset: 4, transfer_size: 8 });
    pjrt!(ctx, PJRT_Buffer_CopyRawToHost, &mut a)?;
    ctx.wait(a.event)?;
    let back = f32_values(&out);
    ensure!(back == [2.0, 3.0], "bytes 4..12 of [1..6] came back as {back:?}");
    Ok("bytes 4..12".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_element_type_has_a_width_and_a_sample() {
        let types = element_types();
        assert!(types.len() >= 28, "{types:?}");
        for (value, name) in types {
            let bits = bits(name).unwrap_or_else(|| panic!("no width for {name} ({value})"));
            let data = sample(name).unwrap();
            assert_eq!(data.len(), 8 * bits.max(8) / 8, "{name}");
        }
    }

    #[test]
    fn sub_byte_packing_is_low_bits_first() {
        assert_eq!(pack(&[1, 2, 3, 4], 4), [0x21, 0x43]);
        assert_eq!(pack(&[1, 0, 1, 1], 2), [0b01_01_00_01]);
    }
}
