//! Compiling StableHLO with serialized compile options, and what an
//! executable says about itself: outputs, fingerprint, memory and cost
//! figures, the optimized program, serialization.

use std::ffi::c_char;

use pjrt_sys::{args, *};

use super::{check, optional, Check};
use crate::conform::harness::{ensure, f32_values, fail, pjrt, slice, text, CheckError, Ctx, Outcome};
use crate::plugin::session::LoadedExecutable;

/// Two outputs of two element types from three arguments, input 0 donated
/// to output 0 (JAX's spelling of donation): the metadata, two-output and
/// donation checks share this one compilation.
pub const TWO_OUTPUTS: &str = r#"module @two_outputs {
  func.func public @main(%x: tensor<4xf32> {tf.aliasing_output = 0 : i32}, %n: tensor<4xi32>, %s: tensor<4xf32>) -> (tensor<4xf32>, tensor<4xi32>) {
    %0 = stablehlo.multiply %x, %s : tensor<4xf32>
    %1 = stablehlo.add %n, %n : tensor<4xi32>
    return %0, %1 : tensor<4xf32>, tensor<4xi32>
  }
}
"#;

pub fn checks() -> Vec<Check> {
    vec![
        check("compile.mlir_without_options", mlir_without_options),
        check("compile.mlir_with_options", mlir_with_options),
        check("compile.two_outputs", two_outputs),
        check("executable.name", name),
        check("executable.num_replicas", num_replicas),
        check("executable.num_partitions", num_partitions),
        check("executable.num_outputs", num_outputs),
        check("executable.output_element_types", output_element_types),
        check("executable.output_dimensions", output_dimensions),
        check("executable.output_memory_kinds", output_memory_kinds),
        check("executable.size_of_generated_code", size_of_generated_code),
        optional("executable.fingerprint", fingerprint),
        optional("executable.compiled_memory_stats", compiled_memory_stats),
        optional("executable.cost_analysis", cost_analysis),
        optional("executable.optimized_program", optimized_program),
        check("executable.serialize", serialize_check),
        check("executable.deserialize_and_load", deserialize_and_load),
        optional("executable.compile_options", compile_options),
        check("executable.addressable_devices", addressable_devices),
        optional("executable.device_assignment", device_assignment),
        check("executable.delete", delete),
    ]
}

fn mlir_without_options(ctx: &mut Ctx) -> Outcome {
    ctx.compile(crate::plugin::program::PROGRAM, &[])?;
    Ok("(a + b) * a, empty CompileOptionsProto".into())
}

/// The test program every later check of the process runs.
fn mlir_with_options(ctx: &mut Ctx) -> Outcome {
    ctx.compile_executable()?;
    Ok("(a + b) * a, 1 replica x 1 partition".into())
}

fn two_outputs(ctx: &mut Ctx) -> Outcome {
    ctx.program("two_outputs", TWO_OUTPUTS)?;
    Ok("3 arguments, 2 outputs, input 0 donated".into())
}

/// The `PJRT_Executable` of the two-output program.
fn executable(ctx: &mut Ctx) -> Result<crate::conform::harness::ExecutableGuard, CheckError> {
    let loaded = ctx.program("two_outputs", TWO_OUTPUTS)?;
    ctx.executable_of(loaded)
}

fn name(ctx: &mut Ctx) -> Outcome {
    let exe = executable(ctx)?;
    let mut a = args!(PJRT_Executable_Name_Args { executable: exe.raw });
    pjrt!(ctx, PJRT_Executable_Name, &mut a)?;
    let name = text(a.executable_name, a.executable_name_size);
    ensure!(!name.is_empty(), "empty executable name");
    Ok(name)
}

fn num_replicas(ctx: &mut Ctx) -> Outcome {
    let exe = executable(ctx)?;
    let mut a = args!(PJRT_Executable_NumReplicas_Args { executable: exe.raw });
    pjrt!(ctx, PJRT_Executable_NumReplicas, &mut a)?;
    ensure!(a.num_replicas == 1, "{} replicas, compiled for 1", a.num_replicas);
    Ok("1".into())
}

fn num_partitions(ctx: &mut Ctx) -> Outcome {
    let exe = executable(ctx)?;
    let mut a = args!(PJRT_Executable_NumPartitions_Args { executable: exe.raw });
    pjrt!(ctx, PJRT_Executable_NumPartitions, &mut a)?;
    ensure!(a.num_partitions == 1, "{} partitions, compiled for 1", a.num_partitions);
    Ok("1".into())
}

fn num_outputs(ctx: &mut Ctx) -> Outcome {
    let exe = executable(ctx)?;
    let mut a = args!(PJRT_Executable_NumOutputs_Args { executable: exe.raw });
    pjrt!(ctx, PJRT_Executable_NumOutputs, &mut a)?;
    ensure!(a.num_outputs == 2, "{} outputs, the program has 2", a.num_outputs);
    Ok("2".into())
}

fn output_element_types(ctx: &mut Ctx) -> Outcome {
    let exe = executable(ctx)?;
    let mut a = args!(PJRT_Executable_OutputElementTypes_Args { executable: exe.raw });
    pjrt!(ctx, PJRT_Executable_OutputElementTypes, &mut a)?;
    let types = unsafe { slice(a.output_types, a.num_output_types) };
    ensure!(types == [PJRT_Buffer_Type_F32, PJRT_Buffer_Type_S32], "output types {types:?}, the program returns [F32, S32]");
    Ok("F32, S32".into())
}

fn output_dimensions(ctx: &mut Ctx) -> Outcome {
    let exe = executable(ctx)?;
    let mut a = args!(PJRT_Executable_OutputDimensions_Args { executable: exe.raw });
    pjrt!(ctx, PJRT_Executable_OutputDimensions, &mut a)?;
    let sizes = unsafe { slice(a.dim_sizes, a.num_outputs) };
    let dims = unsafe { slice(a.dims, sizes.iter().sum()) };
    ensure!(sizes == [1, 1] && dims == [4, 4], "output ranks {sizes:?}, dims {dims:?}; the program returns [4], [4]");
    Ok("[4], [4]".into())
}

fn output_memory_kinds(ctx: &mut Ctx) -> Outcome {
    let exe = executable(ctx)?;
    let mut a = args!(PJRT_Executable_OutputMemoryKinds_Args { executable: exe.raw });
    pjrt!(ctx, PJRT_Executable_OutputMemoryKinds, &mut a)?;
    ensure!(a.num_outputs == 2, "{} memory kinds for 2 outputs", a.num_outputs);
    let kinds = unsafe { slice(a.memory_kinds, a.num_outputs) };
    let sizes = unsafe { slice(a.memory_kind_sizes, a.num_outputs) };
    Ok(kinds.iter().zip(sizes).map(|(k, n)| text(*k, *n)).collect::<Vec<_>>().join(", "))
}

fn size_of_generated_code(ctx: &mut Ctx) -> Outcome {
    let exe = executable(ctx)?;
    let mut a = args!(PJRT_Executable_SizeOfGeneratedCodeInBytes_Args { executable: exe.raw });
    pjrt!(ctx, PJRT_Executable_SizeOfGeneratedCodeInBytes, &mut a)?;
    ensure!(a.size_in_bytes >= -1, "size {}", a.size_in_bytes);
    Ok(format!("{} bytes", a.size_in_bytes))
}

fn fingerprint_of(ctx: &Ctx, exe: *mut PJRT_Executable) -> Result<Vec<u8>, CheckError> {
    let mut a = args!(PJRT_Executable_Fingerprint_Args { executable: exe });
    pjrt!(ctx, PJRT_Executable_Fingerprint, &mut a)?;
    Ok(unsafe { slice(a.executable_fingerprint as *const u8, a.executable_fingerprint_size) }.to_vec())
}

/// A cache key: the same program compiled twice has the same fingerprint.
/// The test program's (the process that compiles it runs this check).
fn fingerprint(ctx: &mut Ctx) -> Outcome {
    let loaded = ctx.executable()?;
    let exe = ctx.executable_of(loaded)?;
    let first = fingerprint_of(ctx, exe.raw)?;
    ensure!(!first.is_empty(), "empty fingerprint");
    // The spare compilation, which executable.delete then deletes.
    let again = ctx.spare()?;
    let again = ctx.executable_of(again)?;
    let second = fingerprint_of(ctx, again.raw)?;
    ensure!(first == second, "the same program compiled twice has two fingerprints");
    Ok(format!("{} bytes, stable across compilations", first.len()))
}

fn compiled_memory_stats(ctx: &mut Ctx) -> Outcome {
    let exe = executable(ctx)?;
    let mut a = args!(PJRT_Executable_GetCompiledMemoryStats_Args { executable: exe.raw });
    pjrt!(ctx, PJRT_Executable_GetCompiledMemoryStats, &mut a)?;
    ensure!(a.argument_size_in_bytes >= 0 && a.output_size_in_bytes >= 0, "negative sizes");
    Ok(format!("arguments {} B, outputs {} B, temp {} B", a.argument_size_in_bytes, a.output_size_in_bytes, a.temp_size_in_bytes))
}

fn cost_analysis(ctx: &mut Ctx) -> Outcome {
    let exe = executable(ctx)?;
    let mut a = args!(PJRT_Executable_GetCostAnalysis_Args { executable: exe.raw });
    pjrt!(ctx, PJRT_Executable_GetCostAnalysis, &mut a)?;
    let properties = crate::conform::harness::named_values(a.properties, a.num_properties).map_err(CheckError::Fail)?;
    Ok(format!("{} properties", properties.len()))
}

fn optimized_program(ctx: &mut Ctx) -> Outcome {
    let exe = executable(ctx)?;
    let mut program = args!(PJRT_Program {});
    let mut a = args!(PJRT_Executable_OptimizedProgram_Args { executable: exe.raw, program: &mut program });
    pjrt!(ctx, PJRT_Executable_OptimizedProgram, &mut a)?;
    let size = program.code_size;
    ensure!(size > 0, "the optimized program is 0 bytes");
    let mut code = vec![0u8; size];
    program.code = code.as_mut_ptr() as *mut c_char;
    let mut a = args!(PJRT_Executable_OptimizedProgram_Args { executable: exe.raw, program: &mut program });
    pjrt!(ctx, PJRT_Executable_OptimizedProgram, &mut a)?;
    Ok(format!("{size} bytes, format {}", text(program.format, program.format_size)))
}

/// The serialized executable, copied out (the plugin's copy is freed).
pub fn serialize(ctx: &Ctx, exe: *mut PJRT_Executable) -> Result<Vec<u8>, CheckError> {
    let mut a = args!(PJRT_Executable_Serialize_Args { executable: exe });
    pjrt!(ctx, PJRT_Executable_Serialize, &mut a)?;
    let bytes = unsafe { slice(a.serialized_bytes as *const u8, a.serialized_bytes_size) }.to_vec();
    if let Some(deleter) = a.serialized_executable_deleter {
        pjrt_sys::in_flight::in_plugin("a deleter", || unsafe { deleter(a.serialized_executable) });
    }
    Ok(bytes)
}

fn serialize_check(ctx: &mut Ctx) -> Outcome {
    let exe = executable(ctx)?;
    let bytes = serialize(ctx, exe.raw)?;
    ensure!(!bytes.is_empty(), "0 bytes");
    Ok(format!("{} bytes", bytes.len()))
}

/// Serialize, load back, and run: the numbers must match.
fn deserialize_and_load(ctx: &mut Ctx) -> Outcome {
    let client = ctx.client()?;
    let loaded = ctx.executable()?;
    let exe = ctx.executable_of(loaded)?;
    let bytes = serialize(ctx, exe.raw)?;
    let mut a = args!(PJRT_Executable_DeserializeAndLoad_Args {
        client: client,
        serialized_executable: bytes.as_ptr() as *const c_char,
        serialized_executable_size: bytes.len(),
    });
    pjrt!(ctx, PJRT_Executable_DeserializeAndLoad, &mut a)?;
    let reloaded = LoadedExecutable::own(ctx.plugin_ref(), a.loaded_executable);
    let x = ctx.buffer_f32(&[1.0, 2.0, 3.0, 4.0], &[2, 2])?;
    let y = ctx.buffer_f32(&[0.5, -1.0, 10.0, 0.25], &[2, 2])?;
    let out = ctx.execute(reloaded.raw(), &[x.raw(), y.raw()], &mut args!(PJRT_ExecuteOptions {}))?;
    let [out] = out.as_slice() else { fail!("{} outputs, the program has 1", out.len()) };
    let got = f32_values(&ctx.to_host(out.raw())?);
    ensure!(got == crate::plugin::program::expected(), "the reloaded executable computed {got:?}");
    Ok(format!("{} bytes reloaded, same numbers", bytes.len()))
}

fn compile_options(ctx: &mut Ctx) -> Outcome {
    let exe = executable(ctx)?;
    let mut a = args!(PJRT_Executable_GetCompileOptions_Args { executable: exe.raw });
    pjrt!(ctx, PJRT_Executable_GetCompileOptions, &mut a)?;
    let bytes = unsafe { slice(a.serialized_bytes as *const u8, a.serialized_bytes_size) }.to_vec();
    if let Some(deleter) = a.serialized_compile_options_deleter {
        pjrt_sys::in_flight::in_plugin("a deleter", || unsafe { deleter(a.serialized_compile_options) });
    }
    // Field 3 (executable_build_options), length-delimited: what we sent.
    ensure!(bytes.contains(&0x1a), "the {} bytes returned carry no executable_build_options", bytes.len());
    Ok(format!("{} bytes of CompileOptionsProto", bytes.len()))
}

fn addressable_devices(ctx: &mut Ctx) -> Outcome {
    let loaded = ctx.program("two_outputs", TWO_OUTPUTS)?;
    let device = ctx.device()?;
    let mut a = args!(PJRT_LoadedExecutable_AddressableDevices_Args { executable: loaded });
    pjrt!(ctx, PJRT_LoadedExecutable_AddressableDevices, &mut a)?;
    let devices = unsafe { slice(a.addressable_devices, a.num_addressable_devices) };
    ensure!(devices.len() == 1, "{} devices for a single-device program", devices.len());
    ensure!(devices[0] == device, "compiled for device_ordinal -1, the executable runs on a device other than the first");
    Ok("1 device".into())
}

fn device_assignment(ctx: &mut Ctx) -> Outcome {
    let loaded = ctx.program("two_outputs", TWO_OUTPUTS)?;
    let mut a = args!(PJRT_LoadedExecutable_GetDeviceAssignment_Args { executable: loaded });
    pjrt!(ctx, PJRT_LoadedExecutable_GetDeviceAssignment, &mut a)?;
    let size = a.serialized_bytes_size;
    if let Some(deleter) = a.serialized_device_assignment_deleter {
        pjrt_sys::in_flight::in_plugin("a deleter", || unsafe { deleter(a.serialized_device_assignment) });
    }
    ensure!(size > 0, "an empty device assignment");
    Ok(format!("{size} bytes of DeviceAssignmentProto"))
}

/// Deletes an executable no other check uses: the spare compilation of the
/// test program (made by executable.fingerprint, or now).
fn delete(ctx: &mut Ctx) -> Outcome {
    let exe = ctx.take_spare()?;
    pjrt!(ctx, PJRT_LoadedExecutable_Delete, &mut args!(PJRT_LoadedExecutable_Delete_Args { executable: exe.raw() }))?;
    let mut d = args!(PJRT_LoadedExecutable_IsDeleted_Args { executable: exe.raw() });
    pjrt!(ctx, PJRT_LoadedExecutable_IsDeleted, &mut d)?;
    ensure!(d.is_deleted, "IsDeleted is false after Delete");
    Ok("deleted".into())
}
