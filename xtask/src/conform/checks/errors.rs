//! Misuse a binding will commit sooner or later: each must come back as a
//! `PJRT_Error` with a code and a message, never a crash (a crash fails the
//! check that caused it, and the report goes on).

use std::ffi::c_void;

use pjrt_sys::loader::error_code_name;
use pjrt_sys::{args, *};

use super::{check, Check};
use crate::conform::harness::{fail, pjrt, CheckError, Ctx, Outcome};
use crate::plugin::client_options::{self, NamedValues};
use crate::plugin::session::{Buffer, Client, LoadedExecutable};

pub fn checks() -> Vec<Check> {
    vec![
        check("errors.invalid_program", invalid_program),
        check("errors.unknown_program_format", unknown_program_format),
        check("errors.wrong_argument_count", wrong_argument_count),
        check("errors.wrong_argument_shape", wrong_argument_shape),
        check("errors.wrong_argument_type", wrong_argument_type),
        check("errors.unknown_element_type", unknown_element_type),
        check("errors.to_host_buffer_too_small", to_host_buffer_too_small),
        check("errors.lookup_unknown_device", lookup_unknown_device),
        check("errors.unknown_client_option", unknown_client_option),
        check("errors.mistyped_client_option", mistyped_client_option),
    ]
}

/// An error is expected: PASS with its code and message, FAIL on success
/// or on an error without a code (UNKNOWN says nothing a caller can act on).
fn expect_error(what: &str, outcome: Result<(), CheckError>) -> Outcome {
    match outcome {
        Ok(()) => fail!("{what} succeeded"),
        Err(CheckError::Pjrt { code, message, .. }) => {
            let message = super::buffers::first_line(&message);
            if message.trim().is_empty() {
                fail!("{what}: {} with an empty message", error_code_name(code));
            }
            if code == PJRT_Error_Code_UNKNOWN {
                fail!("{what}: an error with code UNKNOWN, not one a caller can act on: {message}");
            }
            Ok(format!("{}: {message}", error_code_name(code)))
        }
        Err(e) => Err(e),
    }
}

fn compile_text(ctx: &mut Ctx, code: &str, format: &str) -> Result<(), CheckError> {
    let client = ctx.client()?;
    let program = args!(PJRT_Program {
        code: code.as_ptr() as *mut _,
        code_size: code.len(),
        format: format.as_ptr() as *const _,
        format_size: format.len(),
    });
    let options = crate::plugin::compile_options::single_device();
    let mut a = args!(PJRT_Client_Compile_Args {
        client: client,
        program: &program,
        compile_options: options.as_ptr() as *const _,
        compile_options_size: options.len(),
    });
    pjrt!(ctx, PJRT_Client_Compile, &mut a)?;
    drop(LoadedExecutable::own(ctx.plugin_ref(), a.executable));
    Ok(())
}

fn invalid_program(ctx: &mut Ctx) -> Outcome {
    let outcome = compile_text(ctx, "this is not a StableHLO program", "mlir");
    expect_error("compiling a program that does not parse", outcome)
}

fn unknown_program_format(ctx: &mut Ctx) -> Outcome {
    let outcome = compile_text(ctx, crate::plugin::program::PROGRAM, "pjrtpkgs-no-such-format");
    expect_error("compiling a program in format \"pjrtpkgs-no-such-format\"", outcome)
}

fn execute_with(ctx: &mut Ctx, inputs: &[&Buffer<'static>]) -> Result<(), CheckError> {
    let exe = ctx.executable()?;
    let raw: Vec<*mut PJRT_Buffer> = inputs.iter().map(|b| b.raw()).collect();
    ctx.execute(exe, &raw, &mut args!(PJRT_ExecuteOptions {})).map(drop)
}

fn wrong_argument_count(ctx: &mut Ctx) -> Outcome {
    let a = ctx.buffer_f32(&[1.0, 2.0, 3.0, 4.0], &[2, 2])?;
    let outcome = execute_with(ctx, &[&a]);
    expect_error("executing a program of 2 arguments with 1", outcome)
}

fn wrong_argument_shape(ctx: &mut Ctx) -> Outcome {
    let a = ctx.buffer_f32(&[1.0, 2.0, 3.0, 4.0], &[2, 2])?;
    let b = ctx.buffer_f32(&[1.0, 2.0, 3.0], &[3])?;
    let outcome = execute_with(ctx, &[&a, &b]);
    expect_error("executing with f32[3] where f32[2,2] is expected", outcome)
}

fn wrong_argument_type(ctx: &mut Ctx) -> Outcome {
    let a = ctx.buffer_f32(&[1.0, 2.0, 3.0, 4.0], &[2, 2])?;
    let ints: Vec<u8> = [1i32, 2, 3, 4].iter().flat_map(|v| v.to_le_bytes()).collect();
    let b = ctx.buffer(&ints, PJRT_Buffer_Type_S32, &[2, 2])?;
    let outcome = execute_with(ctx, &[&a, &b]);
    expect_error("executing with s32[2,2] where f32[2,2] is expected", outcome)
}

fn unknown_element_type(ctx: &mut Ctx) -> Outcome {
    let client = ctx.client()?;
    let device = ctx.device()?;
    let data = [0u8; 64];
    let dims = [4i64];
    let mut a = args!(PJRT_Client_BufferFromHostBuffer_Args {
        client: client,
        data: data.as_ptr() as *const c_void,
        type_: 1000,
        dims: dims.as_ptr(),
        num_dims: 1,
        host_buffer_semantics: PJRT_HostBufferSemantics_kImmutableUntilTransferCompletes,
        device: device,
    });
    let outcome = pjrt!(ctx, PJRT_Client_BufferFromHostBuffer, &mut a);
    if outcome.is_ok() {
        let _b = Buffer::own(ctx.plugin_ref(), a.buffer);
        ctx.wait(a.done_with_host_buffer)?;
    }
    expect_error("a buffer of element type 1000", outcome)
}

fn to_host_buffer_too_small(ctx: &mut Ctx) -> Outcome {
    let b = ctx.buffer_f32(&[1.0, 2.0, 3.0, 4.0], &[4])?;
    let mut out = [0u8; 8];
    let mut a = args!(PJRT_Buffer_ToHostBuffer_Args { src: b.raw(), dst: out.as_mut_ptr() as *mut c_void, dst_size: out.len() });
    let outcome = pjrt!(ctx, PJRT_Buffer_ToHostBuffer, &mut a).and_then(|()| ctx.wait(a.event));
    expect_error("copying 16 bytes into an 8-byte destination", outcome)
}

fn lookup_unknown_device(ctx: &mut Ctx) -> Outcome {
    let client = ctx.client()?;
    let mut a = args!(PJRT_Client_LookupDevice_Args { client: client, id: 1 << 30 });
    let outcome = pjrt!(ctx, PJRT_Client_LookupDevice, &mut a);
    expect_error("looking up device id 2^30", outcome)
}

fn create_with(ctx: &mut Ctx, extra: &str) -> Result<(), CheckError> {
    ctx.client()?;
    let mut options = ctx.options.clone();
    options.push(client_options::parse(extra).map_err(|e| CheckError::Fail(format!("{e:#}")))?);
    let named = NamedValues::new(&options);
    Client::create_with(ctx.plugin_ref(), &named).map(drop).map_err(CheckError::from)
}

/// Older plugins ignore option names they do not know: no check of the
/// names is a missing capability (a typo goes unnoticed), not a defect.
fn unknown_client_option(ctx: &mut Ctx) -> Outcome {
    match create_with(ctx, "pjrtpkgs_no_such_option=1") {
        Ok(()) => {
            Err(CheckError::Unsupported("the plugin accepts option names it does not know (a misspelt option goes unnoticed)".into()))
        }
        outcome => expect_error("creating a client with an unknown option", outcome),
    }
}

fn mistyped_client_option(ctx: &mut Ctx) -> Outcome {
    ctx.plugin()?;
    let gpu = client_options::is_gpu(ctx.backend.as_deref(), &ctx.plugin_ref().extensions());
    let extra = if gpu { "preallocate:string=no" } else { "cpu_device_count:string=two" };
    let outcome = create_with(ctx, extra);
    expect_error(&format!("creating a client with {extra}"), outcome)
}
