//! The GPU side of a plugin: the device code it carries (CUDA fat binaries,
//! AMD offload bundles), and what this machine has to run it on (the
//! NVIDIA driver and its devices, the GPUs amdgpu's KFD lists).

pub mod cuda_driver;
pub mod fatbin;
pub mod kfd;
pub mod offload_bundle;

use serde::Serialize;

use super::ldso::ObjectFile;

/// The device code one object carries.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DeviceCode {
    /// From `.nv_fatbin` / `__nv_relfatbin`; `None` when it has neither.
    pub cuda: Option<fatbin::CudaTargets>,
    /// From `.hip_fatbin`; `None` when it has none.
    pub amd: Option<offload_bundle::AmdTargets>,
}

/// Reads the device code of `object` (headers only: cheap on a 500 MB
/// plugin).
pub fn device_code(object: &ObjectFile) -> DeviceCode {
    let mut code = DeviceCode::default();
    for name in [".nv_fatbin", "__nv_relfatbin"] {
        if let Some((_, data)) = object.section_data(name) {
            fatbin::scan(data, code.cuda.get_or_insert_with(Default::default));
        }
    }
    if let Some((_, data)) = object.section_data(".hip_fatbin") {
        code.amd = Some(offload_bundle::scan(data));
    }
    code
}
