//! The NVIDIA driver as libcuda reports it: its version
//! (`cuDriverGetVersion`) and the devices with their compute capability.
//!
//! Loading libcuda runs the driver's own code, so [`query`] is meant to run
//! in a child process (the caller's business): a broken driver must not take
//! the diagnosis down with it. Everything it learns is returned, failures
//! included (a driver without devices is an answer, not an error).

use std::ffi::{c_char, c_int, CStr};
use std::path::Path;

use serde::{Deserialize, Serialize};

/// What libcuda said.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct DriverReport {
    /// `cuDriverGetVersion`: 12040 is CUDA 12.4.
    pub version: Option<i32>,
    /// The error `cuInit(0)` returned, by name (`CUDA_ERROR_NO_DEVICE`).
    pub init_error: Option<String>,
    pub devices: Vec<Device>,
    /// Why the library could not be used at all.
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Device {
    pub name: String,
    pub major: u32,
    pub minor: u32,
}

impl DriverReport {
    /// 12040 -> (12, 4).
    pub fn cuda_version(&self) -> Option<(u32, u32)> {
        let v = u32::try_from(self.version?).ok()?;
        Some((v / 1000, (v % 1000) / 10))
    }
}

const ATTRIBUTE_CC_MAJOR: c_int = 75;
const ATTRIBUTE_CC_MINOR: c_int = 76;

type GetVersion = unsafe extern "C" fn(*mut c_int) -> c_int;
type Init = unsafe extern "C" fn(u32) -> c_int;
type GetCount = unsafe extern "C" fn(*mut c_int) -> c_int;
type GetDevice = unsafe extern "C" fn(*mut c_int, c_int) -> c_int;
type GetName = unsafe extern "C" fn(*mut c_char, c_int, c_int) -> c_int;
type GetAttribute = unsafe extern "C" fn(*mut c_int, c_int, c_int) -> c_int;
type ErrorName = unsafe extern "C" fn(c_int, *mut *const c_char) -> c_int;

/// Loads libcuda (`library`: a path, or a name for the loader to find)
/// in this process and asks it. Run it in a child.
pub fn query(library: &Path) -> DriverReport {
    let mut report = DriverReport::default();
    // SAFETY: loading the driver library runs its constructors; this is
    // why the caller runs it in a child process. The symbols are the CUDA
    // driver API's, with the C signatures of cuda.h.
    unsafe {
        let lib = match libloading::Library::new(library) {
            Ok(lib) => lib,
            Err(e) => {
                report.error = Some(format!("cannot load {}: {e}", library.display()));
                return report;
            }
        };
        let name_of = |code: c_int| -> String {
            if let Ok(f) = lib.get::<ErrorName>(b"cuGetErrorName\0") {
                let mut text: *const c_char = std::ptr::null();
                if f(code, &mut text) == 0 && !text.is_null() {
                    return CStr::from_ptr(text).to_string_lossy().into_owned();
                }
            }
            format!("CUresult {code}")
        };
        match lib.get::<GetVersion>(b"cuDriverGetVersion\0") {
            Ok(f) => {
                let mut v = 0;
                let rc = f(&mut v);
                if rc == 0 {
                    report.version = Some(v);
                } else {
                    report.error = Some(format!("cuDriverGetVersion failed: {}", name_of(rc)));
                }
            }
            Err(e) => {
                report.error = Some(format!("{} has no cuDriverGetVersion: {e}", library.display()));
                return report;
            }
        }
        let (Ok(init), Ok(count), Ok(get), Ok(name), Ok(attribute)) = (
            lib.get::<Init>(b"cuInit\0"),
            lib.get::<GetCount>(b"cuDeviceGetCount\0"),
            lib.get::<GetDevice>(b"cuDeviceGet\0"),
            lib.get::<GetName>(b"cuDeviceGetName\0"),
            lib.get::<GetAttribute>(b"cuDeviceGetAttribute\0"),
        ) else {
            report.error = Some(format!("{} lacks the device functions of the CUDA driver API", library.display()));
            return report;
        };
        let rc = init(0);
        if rc != 0 {
            report.init_error = Some(name_of(rc));
            return report;
        }
        let mut n = 0;
        if count(&mut n) != 0 {
            return report;
        }
        for ordinal in 0..n.min(64) {
            let mut device = 0;
            if get(&mut device, ordinal) != 0 {
                continue;
            }
            let mut buf = [0 as c_char; 256];
            let text = if name(buf.as_mut_ptr(), buf.len() as c_int, device) == 0 {
                CStr::from_ptr(buf.as_ptr()).to_string_lossy().into_owned()
            } else {
                format!("device {ordinal}")
            };
            let (mut major, mut minor) = (0, 0);
            attribute(&mut major, ATTRIBUTE_CC_MAJOR, device);
            attribute(&mut minor, ATTRIBUTE_CC_MINOR, device);
            report.devices.push(Device { name: text, major: major.max(0) as u32, minor: minor.max(0) as u32 });
        }
        // The library stays loaded until the process ends: unloading a
        // driver mid-process is not something it is built for.
        std::mem::forget(lib);
    }
    report
}
