//! A C++ exception escaping a plugin function must end in the plugin's own
//! `std::terminate` (SIGABRT, the exception named on stderr), never be
//! unwound into Rust frames. The "plugin" is built here with g++ and throws
//! from a C-ABI function; each call runs in a child process (this test
//! binary run again) because both outcomes abort.

use std::ffi::c_void;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;

const CHILD: &str = "PJRT_SYS_TEST_THROWER";

/// Builds the throwing library in a directory of the test's own (the two
/// tests run at once: one must not load the file the other is writing).
fn thrower(test: &str) -> Option<PathBuf> {
    let dir = std::env::temp_dir().join(format!("pjrt-sys-no-unwind-{}-{test}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let source = dir.join("thrower.cc");
    std::fs::write(&source, "#include <stdexcept>\nextern \"C\" void* thrower(void*) { throw std::runtime_error(\"from the plugin\"); }\n")
        .unwrap();
    let lib = dir.join("libthrower.so");
    match Command::new("g++").args(["-shared", "-fPIC", "-o"]).arg(&lib).arg(&source).status() {
        Ok(s) if s.success() => Some(lib),
        _ if std::env::var_os("CI").is_some() => panic!("g++ is needed to build the throwing library"),
        _ => {
            eprintln!("skipped: no g++");
            None
        }
    }
}

/// In the child: call the library's `thrower` inside `catch_unwind`, as
/// every harness frame around a plugin call is.
fn call_in_child(lib: &Path, guarded: bool) {
    let lib = unsafe { libloading::Library::new(lib) }.unwrap();
    let f: libloading::Symbol<unsafe extern "C" fn(*mut c_void) -> *mut c_void> = unsafe { lib.get(b"thrower\0") }.unwrap();
    let f = *f;
    let _ = std::panic::catch_unwind(|| {
        let mut x = 0u8;
        let args: *mut c_void = (&mut x as *mut u8).cast();
        if guarded {
            unsafe { pjrt_sys::no_unwind::call(f, args) }
        } else {
            unsafe { f(args) }
        }
    });
    println!("returned");
}

fn run(lib: &Path, guarded: bool) -> (Option<i32>, String) {
    if let (Ok(mode), Some(lib)) = (std::env::var(CHILD), std::env::var_os("PJRT_SYS_TEST_LIB")) {
        call_in_child(Path::new(&lib), mode == "guarded");
        unreachable!("the call returned");
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "--nocapture", if guarded { "guarded" } else { "unguarded" }])
        .env(CHILD, if guarded { "guarded" } else { "unguarded" })
        .env("PJRT_SYS_TEST_LIB", lib)
        .output()
        .unwrap();
    (out.status.signal(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn guarded() {
    let lib = if std::env::var_os(CHILD).is_some() {
        PathBuf::new()
    } else {
        let Some(lib) = thrower("guarded") else { return };
        lib
    };
    let (signal, stderr) = run(&lib, true);
    assert_eq!(signal, Some(6), "{stderr}");
    assert!(stderr.contains("terminate called after throwing an instance of 'std::runtime_error'"), "{stderr}");
    assert!(!stderr.contains("Rust cannot catch foreign exceptions"), "{stderr}");
}

/// What the guard prevents: the exception reaches Rust's personality
/// routine (here with the same unwinder, so it aborts cleanly; with a
/// plugin's own libunwind it may read garbage and crash anywhere).
#[test]
fn unguarded() {
    let lib = if std::env::var_os(CHILD).is_some() {
        PathBuf::new()
    } else {
        let Some(lib) = thrower("unguarded") else { return };
        lib
    };
    let (signal, stderr) = run(&lib, false);
    assert_eq!(signal, Some(6), "{stderr}");
    assert!(stderr.contains("Rust cannot catch foreign exceptions"), "{stderr}");
}
