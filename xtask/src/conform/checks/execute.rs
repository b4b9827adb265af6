//! Execution (several arguments and outputs, integer arithmetic bit for
//! bit, repeated runs, donation, an execute context) and events (await,
//! readiness, callbacks, events made by the caller).

use std::ffi::c_void;
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use pjrt_sys::loader::Plugin;
use pjrt_sys::{args, *};

use super::{check, optional, Check};
use crate::conform::harness::{ensure, f32_values, fail, pjrt, CheckError, Ctx, Outcome};

pub fn checks() -> Vec<Check> {
    vec![
        check("execute.smoke", smoke),
        check("execute.two_outputs", two_outputs),
        check("execute.repeat", repeat),
        check("execute.device_complete_event", device_complete_event),
        check("execute.donation", donation),
        check("execute.non_donatable_input", non_donatable_input),
        optional("execute.context", context),
        check("event.is_ready", is_ready),
        check("event.error_on_success", error_on_success),
        check("event.on_ready", on_ready),
        check("event.on_ready_when_ready", on_ready_when_ready),
        optional("event.create_and_set", create_and_set),
        optional("event.set_error", set_error),
    ]
}

fn f32_out(ctx: &Ctx, buffer: &crate::plugin::session::Buffer) -> Result<Vec<f32>, CheckError> {
    Ok(f32_values(&ctx.to_host(buffer.raw())?))
}

fn run_smoke(ctx: &mut Ctx, options: &mut PJRT_ExecuteOptions) -> Outcome {
    let exe = ctx.executable()?;
    let a = ctx.buffer_f32(&[1.0, 2.0, 3.0, 4.0], &[2, 2])?;
    let b = ctx.buffer_f32(&[0.5, -1.0, 10.0, 0.25], &[2, 2])?;
    let outputs = ctx.execute(exe, &[a.raw(), b.raw()], options)?;
    let [out] = outputs.as_slice() else { fail!("{} outputs, the program has 1", outputs.len()) };
    let got = f32_out(ctx, out)?;
    let expected = crate::plugin::program::expected();
    ensure!(got == expected, "(a + b) * a: got {got:?}, expected {expected:?}");
    Ok(format!("{got:?}"))
}

fn smoke(ctx: &mut Ctx) -> Outcome {
    run_smoke(ctx, &mut args!(PJRT_ExecuteOptions {}))
}

fn two_outputs(ctx: &mut Ctx) -> Outcome {
    let exe = ctx.program("two_outputs", super::compile::TWO_OUTPUTS)?;
    let [x, n, s] = two_output_arguments(ctx)?;
    let outputs = ctx.execute(exe, &[x.raw(), n.raw(), s.raw()], &mut args!(PJRT_ExecuteOptions {}))?;
    let [product, sum] = outputs.as_slice() else { fail!("{} outputs, the program has 2", outputs.len()) };
    let product = f32_out(ctx, product)?;
    ensure!(product == [2.0, 1.0, -3.0, 0.0], "x * s: got {product:?}");
    let sum: Vec<i32> = ctx.to_host(sum.raw())?.chunks_exact(4).map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    // 2^30 + 2^30 wraps to -2^31: two's complement, bit for bit.
    ensure!(sum == [20, -40, i32::MIN, 6], "n + n: got {sum:?}, expected [20, -40, {}, 6]", i32::MIN);
    Ok("f32 and s32 outputs, s32 wraps".into())
}

fn repeat(ctx: &mut Ctx) -> Outcome {
    for _ in 0..3 {
        run_smoke(ctx, &mut args!(PJRT_ExecuteOptions {}))?;
    }
    Ok("3 runs, same numbers".into())
}

fn device_complete_event(ctx: &mut Ctx) -> Outcome {
    let exe = ctx.executable()?;
    let a = ctx.buffer_f32(&[1.0, 2.0, 3.0, 4.0], &[2, 2])?;
    let inputs = [a.raw(), a.raw()];
    let argument_lists = [inputs.as_ptr()];
    let mut outputs = [std::ptr::null_mut::<PJRT_Buffer>(); 1];
    let output_lists = [outputs.as_mut_ptr()];
    let mut complete = [std::ptr::null_mut::<PJRT_Event>(); 1];
    let mut options = args!(PJRT_ExecuteOptions {});
    let mut e = args!(PJRT_LoadedExecutable_Execute_Args {
        executable: exe,
        options: &mut options,
        argument_lists: argument_lists.as_ptr(),
        num_devices: 1,
        num_args: 2,
        output_lists: output_lists.as_ptr(),
        device_complete_events: complete.as_mut_ptr(),
    });
    pjrt!(ctx, PJRT_LoadedExecutable_Execute, &mut e)?;
    let _out = crate::plugin::session::Buffer::own(ctx.plugin_ref(), outputs[0]);
    ensure!(!complete[0].is_null(), "device_complete_events was asked for and is null");
    ctx.wait(complete[0])?;
    Ok("returned and awaited".into())
}

fn is_deleted(ctx: &Ctx, buffer: *mut PJRT_Buffer) -> Result<bool, CheckError> {
    let mut d = args!(PJRT_Buffer_IsDeleted_Args { buffer: buffer });
    pjrt!(ctx, PJRT_Buffer_IsDeleted, &mut d)?;
    Ok(d.is_deleted)
}

/// The two-output program's arguments: x (donated to output 0), n, s.
fn two_output_arguments(ctx: &mut Ctx) -> Result<[crate::plugin::session::Buffer<'static>; 3], CheckError> {
    let x = ctx.buffer_f32(&[1.0, 2.0, 3.0, 4.0], &[4])?;
    let n: Vec<u8> = [10i32, -20, 1 << 30, 3].iter().flat_map(|v| v.to_le_bytes()).collect();
    let n = ctx.buffer(&n, PJRT_Buffer_Type_S32, &[4])?;
    let s = ctx.buffer_f32(&[2.0, 0.5, -1.0, 0.0], &[4])?;
    Ok([x, n, s])
}

/// A donated input is consumed by the execution: deleted afterwards.
fn donation(ctx: &mut Ctx) -> Outcome {
    let exe = ctx.program("two_outputs", super::compile::TWO_OUTPUTS)?;
    let [x, n, s] = two_output_arguments(ctx)?;
    let outputs = ctx.execute(exe, &[x.raw(), n.raw(), s.raw()], &mut args!(PJRT_ExecuteOptions {}))?;
    let [product, _] = outputs.as_slice() else { fail!("{} outputs, the program has 2", outputs.len()) };
    let got = f32_out(ctx, product)?;
    ensure!(got == [2.0, 1.0, -3.0, 0.0], "x * s: got {got:?}");
    ensure!(is_deleted(ctx, x.raw())?, "input 0 is aliased to output 0 (tf.aliasing_output) but was not donated: still live after the run");
    ensure!(!is_deleted(ctx, n.raw())? && !is_deleted(ctx, s.raw())?, "inputs 1 and 2 were not donated but one is deleted");
    Ok("input 0 consumed, inputs 1 and 2 kept".into())
}

/// `non_donatable_input_indices` keeps an aliased input alive.
fn non_donatable_input(ctx: &mut Ctx) -> Outcome {
    ctx.plugin()?;
    ctx.gate_field("PJRT_ExecuteOptions", "non_donatable_input_indices")?;
    let exe = ctx.program("two_outputs", super::compile::TWO_OUTPUTS)?;
    let [x, n, s] = two_output_arguments(ctx)?;
    let keep = [0i64];
    let mut options = args!(PJRT_ExecuteOptions { non_donatable_input_indices: keep.as_ptr(), num_non_donatable_input_indices: 1 });
    let outputs = ctx.execute(exe, &[x.raw(), n.raw(), s.raw()], &mut options)?;
    let [product, _] = outputs.as_slice() else { fail!("{} outputs, the program has 2", outputs.len()) };
    ensure!(f32_out(ctx, product)? == [2.0, 1.0, -3.0, 0.0], "x * s is wrong");
    ensure!(!is_deleted(ctx, x.raw())?, "input 0 was marked non-donatable but was consumed");
    ensure!(f32_out(ctx, &x)? == [1.0, 2.0, 3.0, 4.0], "input 0 changed");
    Ok("input 0 kept and unchanged".into())
}

fn context(ctx: &mut Ctx) -> Outcome {
    ctx.plugin()?;
    ctx.gate_field("PJRT_ExecuteOptions", "context")?;
    let mut c = args!(PJRT_ExecuteContext_Create_Args {});
    pjrt!(ctx, PJRT_ExecuteContext_Create, &mut c)?;
    let mut options = args!(PJRT_ExecuteOptions { context: c.context });
    let result = run_smoke(ctx, &mut options);
    pjrt!(ctx, PJRT_ExecuteContext_Destroy, &mut args!(PJRT_ExecuteContext_Destroy_Args { context: c.context }))?;
    result.map(|_| "an execute context, same numbers".into())
}

fn ready_event(ctx: &mut Ctx) -> Result<(*mut PJRT_Event, crate::plugin::session::Buffer<'static>), CheckError> {
    let b = ctx.buffer_f32(&[1.0, 2.0], &[2])?;
    let mut a = args!(PJRT_Buffer_ReadyEvent_Args { buffer: b.raw() });
    pjrt!(ctx, PJRT_Buffer_ReadyEvent, &mut a)?;
    ensure!(!a.event.is_null(), "null ready event");
    Ok((a.event, b))
}

fn destroy_event(ctx: &Ctx, event: *mut PJRT_Event) -> Result<(), CheckError> {
    pjrt!(ctx, PJRT_Event_Destroy, &mut args!(PJRT_Event_Destroy_Args { event: event }))
}

fn is_ready(ctx: &mut Ctx) -> Outcome {
    let (event, _b) = ready_event(ctx)?;
    pjrt!(ctx, PJRT_Event_Await, &mut args!(PJRT_Event_Await_Args { event: event }))?;
    let mut r = args!(PJRT_Event_IsReady_Args { event: event });
    pjrt!(ctx, PJRT_Event_IsReady, &mut r)?;
    destroy_event(ctx, event)?;
    ensure!(r.is_ready, "not ready after Await returned");
    Ok("ready after Await".into())
}

fn error_on_success(ctx: &mut Ctx) -> Outcome {
    let (event, _b) = ready_event(ctx)?;
    pjrt!(ctx, PJRT_Event_Await, &mut args!(PJRT_Event_Await_Args { event: event }))?;
    let outcome = pjrt!(ctx, PJRT_Event_Error, &mut args!(PJRT_Event_Error_Args { event: event }));
    destroy_event(ctx, event)?;
    match outcome {
        Ok(()) => Ok("no error".into()),
        Err(CheckError::Pjrt { code, message, .. }) => {
            fail!("a successful event reports {}: {message}", pjrt_sys::loader::error_code_name(code))
        }
        Err(e) => Err(e),
    }
}

/// What an OnReady callback saw: one entry per call, the error if any.
struct Notice {
    plugin: &'static Plugin,
    calls: Mutex<Vec<Option<(PJRT_Error_Code, String)>>>,
    called: Condvar,
}

unsafe extern "C" fn notice_ready(error: *mut PJRT_Error, user_arg: *mut c_void) {
    let notice = unsafe { &*(user_arg as *const Notice) };
    // The callback owns the error: check() reads and destroys it.
    let seen = match notice.plugin.check(error, "the event") {
        Ok(()) => None,
        Err(pjrt_sys::loader::Error::Pjrt { code, message, .. }) => Some((code, message)),
        Err(other) => Some((PJRT_Error_Code_UNKNOWN, other.to_string())),
    };
    notice.calls.lock().unwrap_or_else(|p| p.into_inner()).push(seen);
    notice.called.notify_all();
}

/// How long after its first call a callback is watched for a second one.
const SECOND_CALL_WINDOW: Duration = Duration::from_millis(20);

/// What a callback saw by the time it was first called.
struct Called {
    notice: &'static Notice,
    calls: Vec<Option<(PJRT_Error_Code, String)>>,
}

/// Registers a callback on `event` and waits (up to a minute) for it.
fn await_callback(ctx: &Ctx, event: *mut PJRT_Event, before_wait: impl FnOnce() -> Result<(), CheckError>) -> Result<Called, CheckError> {
    // Leaked: a callback that comes late must still find it.
    let notice: &'static Notice =
        Box::leak(Box::new(Notice { plugin: ctx.plugin_ref(), calls: Mutex::new(Vec::new()), called: Condvar::new() }));
    let mut a =
        args!(PJRT_Event_OnReady_Args { event: event, callback: Some(notice_ready), user_arg: notice as *const Notice as *mut c_void });
    pjrt!(ctx, PJRT_Event_OnReady, &mut a)?;
    before_wait()?;
    let calls = notice.calls.lock().unwrap_or_else(|p| p.into_inner());
    let (calls, _) = notice.called.wait_timeout_while(calls, Duration::from_secs(60), |c| c.is_empty()).unwrap_or_else(|p| p.into_inner());
    Ok(Called { notice, calls: calls.clone() })
}

/// The verdict on the calls seen so far. A second call (a buggy plugin's)
/// is looked for once the other checks of the process have run, at least
/// [`SECOND_CALL_WINDOW`] after the first: the check fails then.
fn judge_callback(ctx: &mut Ctx, called: Called) -> Outcome {
    let Called { notice, calls } = called;
    if calls.len() == 1 {
        ctx.recheck_later(SECOND_CALL_WINDOW, move || {
            let n = notice.calls.lock().unwrap_or_else(|p| p.into_inner()).len();
            (n > 1).then(|| format!("called {n} times (the later calls after the check had passed)"))
        });
    }
    judge_calls(&calls)
}

fn judge_calls(calls: &[Option<(PJRT_Error_Code, String)>]) -> Outcome {
    match calls {
        [] => fail!("the callback was not called within 60 s"),
        [None] => Ok("called once, no error".into()),
        [Some((code, message))] => fail!("called with {}: {message}", pjrt_sys::loader::error_code_name(*code)),
        more => fail!("called {} times", more.len()),
    }
}

fn on_ready(ctx: &mut Ctx) -> Outcome {
    let exe = ctx.executable()?;
    let a = ctx.buffer_f32(&[1.0, 2.0, 3.0, 4.0], &[2, 2])?;
    let inputs = [a.raw(), a.raw()];
    let argument_lists = [inputs.as_ptr()];
    let mut outputs = [std::ptr::null_mut::<PJRT_Buffer>(); 1];
    let output_lists = [outputs.as_mut_ptr()];
    let mut complete = [std::ptr::null_mut::<PJRT_Event>(); 1];
    let mut options = args!(PJRT_ExecuteOptions {});
    let mut e = args!(PJRT_LoadedExecutable_Execute_Args {
        executable: exe,
        options: &mut options,
        argument_lists: argument_lists.as_ptr(),
        num_devices: 1,
        num_args: 2,
        output_lists: output_lists.as_ptr(),
        device_complete_events: complete.as_mut_ptr(),
    });
    pjrt!(ctx, PJRT_LoadedExecutable_Execute, &mut e)?;
    let _out = crate::plugin::session::Buffer::own(ctx.plugin_ref(), outputs[0]);
    ensure!(!complete[0].is_null(), "no completion event");
    let calls = await_callback(ctx, complete[0], || Ok(()))?;
    destroy_event(ctx, complete[0])?;
    judge_callback(ctx, calls).map(|d| format!("on the completion event: {d}"))
}

fn on_ready_when_ready(ctx: &mut Ctx) -> Outcome {
    let (event, _b) = ready_event(ctx)?;
    pjrt!(ctx, PJRT_Event_Await, &mut args!(PJRT_Event_Await_Args { event: event }))?;
    let calls = await_callback(ctx, event, || Ok(()))?;
    destroy_event(ctx, event)?;
    judge_callback(ctx, calls).map(|d| format!("on an event already ready: {d}"))
}

fn create_and_set(ctx: &mut Ctx) -> Outcome {
    ctx.plugin()?;
    let mut c = args!(PJRT_Event_Create_Args {});
    pjrt!(ctx, PJRT_Event_Create, &mut c)?;
    let event = c.event;
    let mut r = args!(PJRT_Event_IsReady_Args { event: event });
    pjrt!(ctx, PJRT_Event_IsReady, &mut r)?;
    ensure!(!r.is_ready, "a new event is ready before it is set");
    let calls = await_callback(ctx, event, || {
        pjrt!(ctx, PJRT_Event_Set, &mut args!(PJRT_Event_Set_Args { event: event, error_code: PJRT_Error_Code_OK }))
    })?;
    pjrt!(ctx, PJRT_Event_Await, &mut args!(PJRT_Event_Await_Args { event: event }))?;
    destroy_event(ctx, event)?;
    judge_callback(ctx, calls).map(|d| format!("set OK: {d}"))
}

fn set_error(ctx: &mut Ctx) -> Outcome {
    ctx.plugin()?;
    let mut c = args!(PJRT_Event_Create_Args {});
    pjrt!(ctx, PJRT_Event_Create, &mut c)?;
    let event = c.event;
    let message = "set by pjrtpkgs conform";
    pjrt!(
        ctx,
        PJRT_Event_Set,
        &mut args!(PJRT_Event_Set_Args {
            event: event,
            error_code: PJRT_Error_Code_DATA_LOSS,
            error_message: message.as_ptr() as *const _,
            error_message_size: message.len(),
        })
    )?;
    let awaited = pjrt!(ctx, PJRT_Event_Await, &mut args!(PJRT_Event_Await_Args { event: event }));
    destroy_event(ctx, event)?;
    match awaited {
        Err(CheckError::Pjrt { code: PJRT_Error_Code_DATA_LOSS, message: got, .. }) if got.contains(message) => {
            Ok("Await returns DATA_LOSS with the message".into())
        }
        Err(CheckError::Pjrt { code, message: got, .. }) => {
            fail!("set to DATA_LOSS \"{message}\", Await returned {}: {got}", pjrt_sys::loader::error_code_name(code))
        }
        Ok(()) => fail!("set to an error, Await returned none"),
        Err(e) => Err(e),
    }
}
