//! Who provides a library a plugin needs: the PyPI wheel, the nixpkgs
//! attribute, the ROCm package, or the NVIDIA driver; and the command that
//! gets it here.
//!
//! The facts (read 2026): NVIDIA's wheels and the sonames they carry are
//! the ones jax's `jax-cuda12-plugin[with-cuda]` / `jax-cuda13-plugin[with-cuda]`
//! 0.12 depend on (CUDA 13's drop the `-cu13` suffix except for cuDNN,
//! NCCL and NVSHMEM); nixpkgs attributes are those of its `cudaPackages_*`
//! and `rocmPackages` sets (as `nix/gpu-libraries.nix` uses them); ROCm
//! package names are AMD's (repo.radeon.com). `librocm_sysdeps_*` are
//! TheRock's renamed private copies of libdrm and libnuma, shipped only in
//! its `rocm-sdk-core` Python wheel: no distribution package stands in.

use serde::Serialize;

/// Whether a plugin can do without a library.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Role {
    Required,
    /// Used for one feature only (`when`): missing, that feature fails.
    /// `common`: a feature users of this plugin commonly need (multi-GPU
    /// collectives, profiling), worth a warning when missing.
    Optional {
        when: &'static str,
        common: bool,
    },
}

/// Where a library comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Provider {
    pub library: String,
    /// What it is, in a few words.
    pub what: &'static str,
    pub role: Role,
    /// Part of the NVIDIA driver: no wheel or toolkit package replaces it.
    pub nvidia_driver: bool,
    /// The PyPI wheel that ships it.
    pub wheel: Option<String>,
    /// The nixpkgs attribute (`cudaPackages_12_9.cuda_cupti`).
    pub nixpkgs: Option<String>,
    /// AMD's ROCm package, or TheRock's wheel.
    pub rocm_package: Option<String>,
    /// A distribution package (Debian's name), for system libraries.
    pub debian_package: Option<&'static str>,
    /// Commands that get it, best first.
    pub commands: Vec<String>,
}

/// What the provider lookup needs to know about the plugin.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// The CUDA major the plugin was built for.
    pub cuda_major: Option<u32>,
    /// The plugin's name in pins.toml ([prebuilt.NAME]), when it is pinned.
    pub pinned_name: Option<String>,
    /// nixpkgs' CUDA package set for that major (pins.toml's
    /// `[cuda12] nixpkgs_attribute`, e.g. `cudaPackages_12_9`).
    pub cuda_nixpkgs_set: Option<String>,
    /// nixpkgs' ROCm package set (`rocmPackages`).
    pub rocm_nixpkgs_set: Option<String>,
}

struct Cuda {
    stem: &'static str,
    stub: &'static str,
    what: &'static str,
    wheel12: &'static str,
    wheel13: &'static str,
    nix: &'static str,
    major12: &'static str,
    major13: &'static str,
    optional: Option<&'static str>,
}

const CUDA: &[Cuda] = &[
    Cuda {
        stem: "libcudart",
        stub: "cudart",
        what: "the CUDA runtime",
        wheel12: "nvidia-cuda-runtime-cu12",
        wheel13: "nvidia-cuda-runtime",
        nix: "cuda_cudart",
        major12: "12",
        major13: "13",
        optional: None,
    },
    Cuda {
        stem: "libcublas",
        stub: "cublas",
        what: "cuBLAS",
        wheel12: "nvidia-cublas-cu12",
        wheel13: "nvidia-cublas",
        nix: "libcublas",
        major12: "12",
        major13: "13",
        optional: None,
    },
    Cuda {
        stem: "libcublasLt",
        stub: "cublasLt",
        what: "cuBLASLt",
        wheel12: "nvidia-cublas-cu12",
        wheel13: "nvidia-cublas",
        nix: "libcublas",
        major12: "12",
        major13: "13",
        optional: None,
    },
    Cuda {
        stem: "libcufft",
        stub: "cufft",
        what: "cuFFT",
        wheel12: "nvidia-cufft-cu12",
        wheel13: "nvidia-cufft",
        nix: "libcufft",
        major12: "11",
        major13: "12",
        optional: None,
    },
    Cuda {
        stem: "libcusolver",
        stub: "cusolver",
        what: "cuSOLVER",
        wheel12: "nvidia-cusolver-cu12",
        wheel13: "nvidia-cusolver",
        nix: "libcusolver",
        major12: "11",
        major13: "12",
        optional: None,
    },
    Cuda {
        stem: "libcusparse",
        stub: "cusparse",
        what: "cuSPARSE",
        wheel12: "nvidia-cusparse-cu12",
        wheel13: "nvidia-cusparse",
        nix: "libcusparse",
        major12: "12",
        major13: "12",
        optional: None,
    },
    Cuda {
        stem: "libcupti",
        stub: "cupti",
        what: "CUPTI, the CUDA profiling interface",
        wheel12: "nvidia-cuda-cupti-cu12",
        wheel13: "nvidia-cuda-cupti",
        nix: "cuda_cupti",
        major12: "12",
        major13: "13",
        optional: Some("profiling"),
    },
    Cuda {
        stem: "libcudnn",
        stub: "cudnn",
        what: "cuDNN",
        wheel12: "nvidia-cudnn-cu12",
        wheel13: "nvidia-cudnn-cu13",
        nix: "cudnn",
        major12: "9",
        major13: "9",
        optional: None,
    },
    Cuda {
        stem: "libnvJitLink",
        stub: "nvjitlink",
        what: "nvJitLink, the CUDA JIT linker",
        wheel12: "nvidia-nvjitlink-cu12",
        wheel13: "nvidia-nvjitlink",
        nix: "libnvjitlink",
        major12: "12",
        major13: "13",
        optional: None,
    },
    Cuda {
        stem: "libnvrtc",
        stub: "nvrtc",
        what: "NVRTC, the CUDA run-time compiler",
        wheel12: "nvidia-cuda-nvrtc-cu12",
        wheel13: "nvidia-cuda-nvrtc",
        nix: "cuda_nvrtc",
        major12: "12",
        major13: "13",
        optional: None,
    },
    Cuda {
        stem: "libnvrtc-builtins",
        stub: "",
        what: "NVRTC's built-in headers",
        wheel12: "nvidia-cuda-nvrtc-cu12",
        wheel13: "nvidia-cuda-nvrtc",
        nix: "cuda_nvrtc",
        major12: "12",
        major13: "13",
        optional: None,
    },
    Cuda {
        stem: "libnccl",
        stub: "nccl",
        what: "NCCL, NVIDIA's collectives library",
        wheel12: "nvidia-nccl-cu12",
        wheel13: "nvidia-nccl-cu13",
        nix: "nccl",
        major12: "2",
        major13: "2",
        optional: Some("collectives across several GPUs"),
    },
    Cuda {
        stem: "libnvshmem_host",
        stub: "nvshmem",
        what: "NVSHMEM",
        wheel12: "nvidia-nvshmem-cu12",
        wheel13: "nvidia-nvshmem-cu13",
        nix: "libnvshmem",
        major12: "3",
        major13: "3",
        optional: Some("NVSHMEM collectives across GPUs"),
    },
    Cuda {
        stem: "libcurand",
        stub: "curand",
        what: "cuRAND",
        wheel12: "nvidia-curand-cu12",
        wheel13: "nvidia-curand",
        nix: "libcurand",
        major12: "10",
        major13: "10",
        optional: None,
    },
];

/// Parts of the NVIDIA driver, with XLA's stub name where there is one.
const NVIDIA_DRIVER: &[(&str, &str, &str)] = &[
    ("libcuda", "cuda", "the CUDA driver library"),
    ("libnvidia-ml", "nvml", "NVML, the driver's management library"),
    ("libnvidia-ptxjitcompiler", "", "the driver's PTX JIT compiler"),
    ("libnvidia-nvvm", "", "the driver's NVVM compiler"),
];

/// (stem, what, AMD's package, nixpkgs rocmPackages attribute)
const ROCM: &[(&str, &str, &str, &str)] = &[
    ("libamdhip64", "the HIP runtime", "hip-runtime-amd", "clr"),
    ("libhsa-runtime64", "ROCr, the HSA runtime", "hsa-rocr", "rocm-runtime"),
    ("librocblas", "rocBLAS", "rocblas", "rocblas"),
    ("libhipblas", "hipBLAS", "hipblas", "hipblas"),
    ("libhipblaslt", "hipBLASLt", "hipblaslt", "hipblaslt"),
    ("libhipfft", "hipFFT", "hipfft", "hipfft"),
    ("librocfft", "rocFFT", "rocfft", "rocfft"),
    ("libMIOpen", "MIOpen", "miopen-hip", "miopen"),
    ("librccl", "RCCL, AMD's collectives library", "rccl", "rccl"),
    ("libamd_smi", "AMD SMI", "amd-smi-lib", "amdsmi"),
    ("librocm_smi64", "ROCm SMI", "rocm-smi-lib", "rocm-smi"),
    ("librocprofiler-sdk", "ROCprofiler-SDK", "rocprofiler-sdk", "rocprofiler-sdk"),
    ("libroctracer64", "roctracer", "roctracer", "roctracer"),
    ("librocsolver", "rocSOLVER", "rocsolver", "rocsolver"),
    ("libhipsolver", "hipSOLVER", "hipsolver", "hipsolver"),
    ("librocsparse", "rocSPARSE", "rocsparse", "rocsparse"),
    ("libhipsparse", "hipSPARSE", "hipsparse", "hipsparse"),
    ("librocrand", "rocRAND", "rocrand", "rocrand"),
];

/// (stem, what, when it is used, Debian package, nixpkgs attribute) for
/// libraries only some features use.
type OptionalLibrary = (&'static str, &'static str, &'static str, Option<&'static str>, Option<&'static str>);
const OPTIONAL: &[OptionalLibrary] = &[
    ("libittnotify", "Intel's ITT instrumentation", "running under Intel VTune", None, None),
    ("libibverbs", "RDMA verbs", "collectives over InfiniBand/RoCE between machines", Some("libibverbs1"), Some("rdma-core")),
    (
        "libmlx5",
        "the Mellanox RDMA provider",
        "collectives over InfiniBand/RoCE between machines",
        Some("ibverbs-providers"),
        Some("rdma-core"),
    ),
    ("libbnxt_re", "the Broadcom RDMA provider", "collectives over RoCE between machines", Some("ibverbs-providers"), Some("rdma-core")),
    (
        "libbnxt_re-rdmav34",
        "the Broadcom RDMA provider",
        "collectives over RoCE between machines",
        Some("ibverbs-providers"),
        Some("rdma-core"),
    ),
    (
        "libbnxt_re-rdmav59",
        "the Broadcom RDMA provider",
        "collectives over RoCE between machines",
        Some("ibverbs-providers"),
        Some("rdma-core"),
    ),
    ("libionic", "the AMD Pensando RDMA provider", "collectives over RoCE between machines", Some("ibverbs-providers"), Some("rdma-core")),
];

/// (stem, what, Debian package, nixpkgs attribute) for base system libraries.
const SYSTEM: &[(&str, &str, &str, &str)] = &[
    ("libstdc++", "the GNU C++ runtime", "libstdc++6", "stdenv.cc.cc.lib"),
    ("libgcc_s", "GCC's runtime support library", "libgcc-s1", "stdenv.cc.cc.lib"),
    ("libc", "the GNU C library", "libc6", "glibc"),
    ("libm", "the GNU C library (math)", "libc6", "glibc"),
    ("libdl", "the GNU C library (dl)", "libc6", "glibc"),
    ("librt", "the GNU C library (rt)", "libc6", "glibc"),
    ("libpthread", "the GNU C library (threads)", "libc6", "glibc"),
    ("libz", "zlib", "zlib1g", "zlib"),
    ("libnuma", "libnuma", "libnuma1", "numactl"),
    ("libdrm", "libdrm", "libdrm2", "libdrm"),
    ("libdrm_amdgpu", "libdrm's AMDGPU part", "libdrm-amdgpu1", "libdrm"),
];

/// `libfoo.so.1.2` -> `libfoo`.
pub fn stem(soname: &str) -> &str {
    soname.find(".so").map_or(soname, |at| &soname[..at])
}

/// The library an XLA CUDA stub (`cudart`, `cudnn`, ...) opens for a plugin
/// built with CUDA `major`; `None` for a stub or major this table lacks.
pub fn cuda_soname(stub: &str, major: u32) -> Option<String> {
    if let Some((stem, _, _)) = NVIDIA_DRIVER.iter().find(|(_, s, _)| *s == stub && !s.is_empty()) {
        return Some(format!("{stem}.so.1"));
    }
    let lib = CUDA.iter().find(|c| c.stub == stub && !c.stub.is_empty())?;
    let version = match major {
        12 => lib.major12,
        13 => lib.major13,
        _ => return None,
    };
    Some(format!("{}.so.{version}", lib.stem))
}

/// The minimum NVIDIA driver branch of a CUDA major (NVIDIA's CUDA
/// compatibility tables: 12.x from R525, 13.x from R580).
pub fn minimum_driver(major: u32) -> Option<&'static str> {
    match major {
        11 => Some("R450"),
        12 => Some("R525"),
        13 => Some("R580"),
        _ => None,
    }
}

/// Who provides `soname`, if this table knows.
pub fn lookup(soname: &str, ctx: &Context) -> Option<Provider> {
    let stem = stem(soname);
    let blank = |what: &'static str, role: Role| Provider {
        library: soname.to_owned(),
        what,
        role,
        nvidia_driver: false,
        wheel: None,
        nixpkgs: None,
        rocm_package: None,
        debian_package: None,
        commands: Vec::new(),
    };
    if let Some((_, _, what)) = NVIDIA_DRIVER.iter().find(|(s, _, _)| *s == stem) {
        let mut p = blank(what, Role::Required);
        p.nvidia_driver = true;
        let branch = ctx
            .cuda_major
            .and_then(minimum_driver)
            .map(|b| format!(" ({b} or newer for CUDA {})", ctx.cuda_major.unwrap_or(0)))
            .unwrap_or_default();
        p.commands.push(format!(
            "install the NVIDIA driver{branch} on a machine with an NVIDIA GPU; no wheel or toolkit package provides {soname}"
        ));
        return Some(p);
    }
    let cudnn_part = stem.starts_with("libcudnn_");
    if let Some(lib) = CUDA.iter().find(|c| c.stem == stem || (cudnn_part && c.stem == "libcudnn")) {
        let major = ctx.cuda_major.or_else(|| {
            // Without the plugin's major, the soname tells it where it is
            // unambiguous.
            let version = soname.rsplit(".so.").next()?.split('.').next()?;
            [(12, lib.major12), (13, lib.major13)].into_iter().find(|(_, m)| *m == version).map(|(c, _)| c)
        });
        let role = lib.optional.map_or(Role::Required, |when| Role::Optional { when, common: true });
        let mut p = blank(lib.what, role);
        p.wheel = match major {
            Some(12) => Some(lib.wheel12.to_owned()),
            Some(13) => Some(lib.wheel13.to_owned()),
            _ => None,
        };
        let set = ctx.cuda_nixpkgs_set.clone().unwrap_or_else(|| "cudaPackages".to_owned());
        p.nixpkgs = Some(format!("{set}.{}", lib.nix));
        if let Some(name) = &ctx.pinned_name {
            p.commands.push(format!("cargo xtask prebuilt fetch {name} --with-runtime"));
        } else if let Some(wheel) = &p.wheel {
            p.commands.push(format!(
                "pip install {wheel} into the environment the plugin sits in (its RPATH looks for NVIDIA's wheels beside it)"
            ));
        }
        if let Some(major) = major {
            p.commands.push(format!("nix develop .#cuda{major} (the Nix-packaged plugin, with every CUDA library on its RUNPATH)"));
        }
        return Some(p);
    }
    if let Some((_, what, amd, nix)) = ROCM.iter().find(|(s, _, _, _)| *s == stem) {
        let mut p = blank(what, Role::Required);
        p.rocm_package = Some((*amd).to_owned());
        let set = ctx.rocm_nixpkgs_set.clone().unwrap_or_else(|| "rocmPackages".to_owned());
        p.nixpkgs = Some(format!("{set}.{nix}"));
        p.commands.push(format!("install ROCm 7's `{amd}` (AMD's repo.radeon.com; the plugin's RUNPATH ends with /opt/rocm/lib)"));
        p.commands.push("nix develop .#rocm7 (the Nix-packaged plugin, with the ROCm libraries on its RUNPATH)".to_owned());
        return Some(p);
    }
    if let Some(part) = stem.strip_prefix("librocm_sysdeps_") {
        let mut p = blank("a private copy of a system library renamed by TheRock (ROCm's build system)", Role::Required);
        p.rocm_package = Some("rocm-sdk-core (TheRock's Python wheel)".to_owned());
        p.commands.push(format!(
            "install TheRock's ROCm wheels (rocm-sdk-core) beside the plugin (its RUNPATH looks in ../_rocm_sdk_core/lib); no distribution's lib{part} has this soname"
        ));
        return Some(p);
    }
    if let Some((_, what, when, debian, nix)) = OPTIONAL.iter().find(|(s, ..)| *s == stem) {
        let mut p = blank(what, Role::Optional { when, common: false });
        p.debian_package = *debian;
        p.nixpkgs = nix.map(str::to_owned);
        if let Some(d) = debian {
            p.commands.push(format!("apt install {d}, if you need {when}"));
        } else {
            p.commands.push(format!("nothing to do unless you need {when}"));
        }
        return Some(p);
    }
    if let Some((_, what, debian, nix)) = SYSTEM.iter().find(|(s, ..)| *s == stem) {
        let mut p = blank(what, Role::Required);
        p.debian_package = Some(debian);
        p.nixpkgs = Some((*nix).to_owned());
        p.commands.push(format!("apt install {debian} (or your distribution's package of {what})"));
        return Some(p);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuda_libraries_name_wheel_attribute_and_command() {
        let ctx = Context {
            cuda_major: Some(12),
            pinned_name: Some("jax-cuda12-pjrt".into()),
            cuda_nixpkgs_set: Some("cudaPackages_12_9".into()),
            rocm_nixpkgs_set: None,
        };
        let p = lookup("libcupti.so.12", &ctx).unwrap();
        assert_eq!(p.wheel.as_deref(), Some("nvidia-cuda-cupti-cu12"));
        assert_eq!(p.nixpkgs.as_deref(), Some("cudaPackages_12_9.cuda_cupti"));
        assert_eq!(p.commands[0], "cargo xtask prebuilt fetch jax-cuda12-pjrt --with-runtime");
        assert!(matches!(p.role, Role::Optional { common: true, .. }));
        let p = lookup("libcudnn_graph.so.9", &ctx).unwrap();
        assert_eq!(p.wheel.as_deref(), Some("nvidia-cudnn-cu12"));
        let driver = lookup("libcuda.so.1", &ctx).unwrap();
        assert!(driver.nvidia_driver && driver.wheel.is_none());
        assert!(driver.commands[0].contains("R525"));
    }

    #[test]
    fn cuda_13_wheels_drop_the_suffix_except_cudnn_nccl_nvshmem() {
        let ctx = Context { cuda_major: Some(13), ..Default::default() };
        assert_eq!(lookup("libcublas.so.13", &ctx).unwrap().wheel.as_deref(), Some("nvidia-cublas"));
        assert_eq!(lookup("libcudnn.so.9", &ctx).unwrap().wheel.as_deref(), Some("nvidia-cudnn-cu13"));
        assert_eq!(lookup("libnccl.so.2", &ctx).unwrap().wheel.as_deref(), Some("nvidia-nccl-cu13"));
        assert_eq!(cuda_soname("cufft", 13).as_deref(), Some("libcufft.so.12"));
        assert_eq!(cuda_soname("cufft", 12).as_deref(), Some("libcufft.so.11"));
        assert_eq!(cuda_soname("cuda", 12).as_deref(), Some("libcuda.so.1"));
        assert_eq!(cuda_soname("nvml", 13).as_deref(), Some("libnvidia-ml.so.1"));
        assert_eq!(cuda_soname("nosuch", 12), None);
    }

    #[test]
    fn rocm_and_therock_libraries() {
        let ctx = Context::default();
        let p = lookup("librocprofiler-sdk.so.1", &ctx).unwrap();
        assert_eq!(p.rocm_package.as_deref(), Some("rocprofiler-sdk"));
        assert_eq!(p.nixpkgs.as_deref(), Some("rocmPackages.rocprofiler-sdk"));
        let p = lookup("librocm_sysdeps_drm.so.2", &ctx).unwrap();
        assert!(p.nixpkgs.is_none() && p.rocm_package.unwrap().contains("rocm-sdk-core"));
        assert!(lookup("libsomethingelse.so.3", &ctx).is_none());
    }
}
