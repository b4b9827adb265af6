//! Which PJRT call a process is in, kept where a crash cannot erase it.
//!
//! A harness that runs plugins in a child process must say, when the child
//! dies, whose fault it was: a crash inside a call into the plugin is the
//! plugin's; one in the harness's own code (reading what a plugin handed
//! over included) is the harness's. The child maps a small file shared with
//! its parent ([`install`]); every call into a plugin ([`in_plugin`], used
//! by [`call!`](crate::call) and the loader) writes its name there before
//! and clears the "in a call" mark after, with plain stores: no system call
//! per PJRT call. A signal handler adds the faulting instruction's address,
//! whether it lies in a plugin's code, and whether the thread was the
//! harness's. The parent reads the file after the child died ([`Record::read`]).
//!
//! Without [`install`] every function here is a no-op.

use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, Ordering};

const NAME_BYTES: usize = 96;
const RANGES: usize = 16;

/// The shared record, as laid out in the file.
#[repr(C)]
struct Slot {
    /// 1 while the harness is inside a call into a plugin.
    in_call: AtomicU32,
    name_len: AtomicU32,
    name: [AtomicU64; NAME_BYTES / 8],
    /// The signal that killed the process, 0 if none was caught.
    signal: AtomicU32,
    /// 1 if the signal arrived on the harness's thread.
    on_harness_thread: AtomicU32,
    /// 1 if the faulting instruction lies in a plugin's code.
    in_plugin_code: AtomicU32,
    _pad: AtomicU32,
    fault_address: AtomicU64,
    instruction: AtomicU64,
    /// Address ranges of the plugins' code, for the signal handler.
    ranges: [[AtomicU64; 2]; RANGES],
}

/// The size of the file [`install`] maps.
pub const FILE_SIZE: u64 = 4096;

const _: () = assert!(std::mem::size_of::<Slot>() <= FILE_SIZE as usize);

static SLOT: AtomicPtr<Slot> = AtomicPtr::new(std::ptr::null_mut());
static HARNESS_THREAD: AtomicU64 = AtomicU64::new(0);

fn slot() -> Option<&'static Slot> {
    // SAFETY: set once by `install` to a mapping that is never unmapped.
    unsafe { SLOT.load(Ordering::Relaxed).as_ref() }
}

/// Maps `path` (created by the parent, at least [`FILE_SIZE`] bytes) as this
/// process's record, and installs the crash handlers. The calling thread is
/// the harness's.
pub fn install(path: &Path) -> std::io::Result<()> {
    let file = File::options().read(true).write(true).open(path)?;
    file.set_len(FILE_SIZE)?;
    #[cfg(unix)]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: a fresh shared mapping of a file we opened; never unmapped.
        let map = unsafe {
            libc::mmap(std::ptr::null_mut(), FILE_SIZE as usize, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED, file.as_raw_fd(), 0)
        };
        if map == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        SLOT.store(map as *mut Slot, Ordering::SeqCst);
        HARNESS_THREAD.store(thread_id(), Ordering::SeqCst);
        install_handlers();
    }
    Ok(())
}

/// Runs `call`, a call into a plugin named `what`, marked as such.
#[inline]
pub fn in_plugin<R>(what: &'static str, call: impl FnOnce() -> R) -> R {
    enter(what);
    let result = call();
    leave();
    result
}

/// Marks the start of a call into a plugin.
#[inline]
pub fn enter(what: &'static str) {
    let Some(slot) = slot() else { return };
    let bytes = what.as_bytes();
    let len = bytes.len().min(NAME_BYTES);
    for (i, word) in slot.name.iter().enumerate() {
        let mut chunk = [0u8; 8];
        let start = (i * 8).min(len);
        let end = (start + 8).min(len);
        chunk[..end - start].copy_from_slice(&bytes[start..end]);
        word.store(u64::from_ne_bytes(chunk), Ordering::Relaxed);
        if end == len {
            break;
        }
    }
    slot.name_len.store(len as u32, Ordering::Relaxed);
    slot.in_call.store(1, Ordering::SeqCst);
}

/// Marks the end of a call (its name stays, as the last call).
#[inline]
pub fn leave() {
    if let Some(slot) = slot() {
        slot.in_call.store(0, Ordering::SeqCst);
    }
}

/// Records the code of the plugin loaded from `path` (its mappings in
/// `/proc/self/maps`), so that a fault in it is known as the plugin's.
pub fn plugin_loaded(path: &Path) {
    let Some(slot) = slot() else { return };
    let Ok(canonical) = std::fs::canonicalize(path) else { return };
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else { return };
    let wanted = canonical.to_string_lossy();
    for line in maps.lines() {
        // start-end perms offset dev inode path
        let mut parts = line.split_whitespace();
        let (Some(range), Some(perms)) = (parts.next(), parts.next()) else { continue };
        if !perms.contains('x') || parts.nth(3) != Some(&*wanted) {
            continue;
        }
        let Some((start, end)) = range.split_once('-') else { continue };
        let (Ok(start), Ok(end)) = (u64::from_str_radix(start, 16), u64::from_str_radix(end, 16)) else { continue };
        if let Some(free) = slot.ranges.iter().find(|r| r[1].load(Ordering::Relaxed) == 0) {
            free[0].store(start, Ordering::Relaxed);
            free[1].store(end, Ordering::SeqCst);
        }
    }
}

#[cfg(target_os = "linux")]
fn thread_id() -> u64 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::syscall(libc::SYS_gettid) as u64 }
}

#[cfg(not(target_os = "linux"))]
fn thread_id() -> u64 {
    0
}

#[cfg(unix)]
fn install_handlers() {
    for signal in [libc::SIGSEGV, libc::SIGBUS, libc::SIGILL, libc::SIGFPE, libc::SIGABRT, libc::SIGTRAP, libc::SIGSYS] {
        // SAFETY: an SA_SIGINFO handler that only stores to the mapping,
        // then restores the default action (SA_RESETHAND) and returns: the
        // faulting instruction faults again, or abort() raises again, and
        // the process dies of the same signal.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal as *const () as usize;
            action.sa_flags = libc::SA_SIGINFO | libc::SA_RESETHAND | libc::SA_ONSTACK;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(signal, &action, std::ptr::null_mut());
        }
    }
}

#[cfg(unix)]
extern "C" fn on_signal(signal: libc::c_int, info: *mut libc::siginfo_t, context: *mut libc::c_void) {
    let Some(slot) = slot() else { return };
    if slot.signal.load(Ordering::Relaxed) != 0 {
        return; // the first signal is the one that counts
    }
    let instruction = instruction_pointer(context);
    // SAFETY: the kernel hands a valid siginfo to an SA_SIGINFO handler.
    let fault = if info.is_null() { 0 } else { unsafe { (*info).si_addr() as u64 } };
    let in_plugin = slot.ranges.iter().any(|r| {
        let (start, end) = (r[0].load(Ordering::Relaxed), r[1].load(Ordering::Relaxed));
        end != 0 && instruction >= start && instruction < end
    });
    slot.instruction.store(instruction, Ordering::Relaxed);
    slot.fault_address.store(fault, Ordering::Relaxed);
    slot.in_plugin_code.store(in_plugin as u32, Ordering::Relaxed);
    slot.on_harness_thread.store((thread_id() == HARNESS_THREAD.load(Ordering::Relaxed)) as u32, Ordering::Relaxed);
    slot.signal.store(signal as u32, Ordering::SeqCst);
}

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
fn instruction_pointer(context: *mut libc::c_void) -> u64 {
    if context.is_null() {
        return 0;
    }
    // SAFETY: an SA_SIGINFO handler's third argument is a ucontext_t.
    unsafe { (*(context as *const libc::ucontext_t)).uc_mcontext.gregs[libc::REG_RIP as usize] as u64 }
}

#[cfg(all(target_os = "linux", target_arch = "aarch64"))]
fn instruction_pointer(context: *mut libc::c_void) -> u64 {
    if context.is_null() {
        return 0;
    }
    // SAFETY: an SA_SIGINFO handler's third argument is a ucontext_t.
    unsafe { (*(context as *const libc::ucontext_t)).uc_mcontext.pc }
}

#[cfg(all(unix, not(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64")))))]
fn instruction_pointer(_context: *mut libc::c_void) -> u64 {
    0
}

/// What a dead child's record says (read by the parent).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    /// Whether it died inside a call into the plugin.
    pub in_call: bool,
    /// That call, or the last one made.
    pub call: Option<String>,
    /// The signal its handler caught (0: none caught: killed, or the plugin
    /// replaced the handler).
    pub signal: u32,
    pub on_harness_thread: bool,
    pub in_plugin_code: bool,
    pub instruction: u64,
    pub fault_address: u64,
}

impl Record {
    /// Reads the record a child left in `path`.
    pub fn read(path: &Path) -> std::io::Result<Record> {
        let bytes = std::fs::read(path)?;
        let word = |at: usize| -> u64 { bytes.get(at..at + 8).map_or(0, |b| u64::from_ne_bytes(b.try_into().expect("8 bytes"))) };
        let half = |at: usize| -> u32 { bytes.get(at..at + 4).map_or(0, |b| u32::from_ne_bytes(b.try_into().expect("4 bytes"))) };
        let name_at = std::mem::offset_of!(Slot, name);
        let len = (half(std::mem::offset_of!(Slot, name_len)) as usize).min(NAME_BYTES);
        let call = bytes.get(name_at..name_at + len).map(|b| String::from_utf8_lossy(b).into_owned()).filter(|s| !s.is_empty());
        Ok(Record {
            in_call: half(std::mem::offset_of!(Slot, in_call)) == 1,
            call,
            signal: half(std::mem::offset_of!(Slot, signal)),
            on_harness_thread: half(std::mem::offset_of!(Slot, on_harness_thread)) == 1,
            in_plugin_code: half(std::mem::offset_of!(Slot, in_plugin_code)) == 1,
            instruction: word(std::mem::offset_of!(Slot, instruction)),
            fault_address: word(std::mem::offset_of!(Slot, fault_address)),
        })
    }

    /// Whether the plugin is to blame: the process died inside a call into
    /// it, on a thread of its own, or in its code. Otherwise the harness
    /// died in its own code, before any call or between two.
    pub fn plugin_to_blame(&self) -> bool {
        self.in_call || (self.signal != 0 && (!self.on_harness_thread || self.in_plugin_code))
    }
}
