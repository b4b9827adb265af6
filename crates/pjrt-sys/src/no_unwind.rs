//! Calls into a plugin through a frame no unwinder can cross.
//!
//! A C++ exception that escapes a PJRT function is a plugin bug (the C API
//! promises a `PJRT_Error`), but what happens next depends on who unwinds.
//! Many plugins link their own copy of LLVM's libunwind and libc++abi; when
//! that unwinder reaches our Rust frames it calls Rust's personality routine,
//! which reads the frame through libgcc's accessors, i.e. a context of
//! another unwinder. One build of the harness got SIGABRT there, the next
//! SIGSEGV, for the same plugin and the same call.
//!
//! Every plugin call therefore goes through a trampoline that has no unwind
//! information (no FDE in `.eh_frame`). Every unwinder stops at it without
//! finding a handler, so the plugin's own C++ runtime calls `std::terminate`,
//! which names the exception on stderr and aborts: the SIGABRT a C caller
//! gets, whatever Rust code surrounds the call.

use core::ffi::c_void;

/// Calls `f(args)`, `f` being a plugin function taking one pointer and
/// returning one (every `PJRT_Api` member and extension entry point).
///
/// # Safety
/// As calling `f(args)` directly.
#[inline]
pub unsafe fn call<A, R>(f: unsafe extern "C" fn(*mut A) -> *mut R, args: *mut A) -> *mut R {
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    {
        // SAFETY: the trampoline calls f(args) with the C calling convention
        // and returns its result unchanged.
        unsafe { pjrt_sys_call_opaque(f as *const c_void, args.cast()).cast() }
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        unsafe { f(args) }
    }
}

/// [`call`] for the functions that return nothing (`PJRT_Error_Destroy`,
/// `PJRT_Error_Message`).
///
/// # Safety
/// As calling `f(args)` directly.
#[inline]
pub unsafe fn call_void<A>(f: unsafe extern "C" fn(*mut A), args: *mut A) {
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    {
        // SAFETY: as in `call`; the register the trampoline returns is
        // whatever f left there, and is ignored.
        unsafe { pjrt_sys_call_opaque(f as *const c_void, args.cast()) };
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        unsafe { f(args) }
    }
}

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
extern "C" {
    fn pjrt_sys_call_opaque(f: *const c_void, args: *mut c_void) -> *mut c_void;
}

// Deliberately without `.cfi_*` directives: the absence of unwind
// information is the point. The frame keeps the stack 16-byte aligned.
#[cfg(target_arch = "x86_64")]
core::arch::global_asm!(
    ".text",
    ".p2align 4",
    ".globl pjrt_sys_call_opaque",
    ".hidden pjrt_sys_call_opaque",
    ".type pjrt_sys_call_opaque, @function",
    "pjrt_sys_call_opaque:",
    "push rbp",
    "mov rbp, rsp",
    "mov rax, rdi",
    "mov rdi, rsi",
    "call rax",
    "pop rbp",
    "ret",
    ".size pjrt_sys_call_opaque, . - pjrt_sys_call_opaque",
);

#[cfg(target_arch = "aarch64")]
core::arch::global_asm!(
    ".text",
    ".p2align 2",
    ".globl pjrt_sys_call_opaque",
    ".hidden pjrt_sys_call_opaque",
    ".type pjrt_sys_call_opaque, %function",
    "pjrt_sys_call_opaque:",
    "stp x29, x30, [sp, #-16]!",
    "mov x29, sp",
    "mov x16, x0",
    "mov x0, x1",
    "blr x16",
    "ldp x29, x30, [sp], #16",
    "ret",
    ".size pjrt_sys_call_opaque, . - pjrt_sys_call_opaque",
);
