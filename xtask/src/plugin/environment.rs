//! The environment a plugin's child process gets: what plugins legitimately
//! read, and nothing else. A plugin is third-party code that runs with our
//! privileges; the xtask's own environment may hold secrets (`release`
//! reads `PJRTPKGS_RELEASE_KEY_PASSWORD`, CI sets `GITHUB_TOKEN`), and a
//! wheel's constructor could read and send them anywhere.
//!
//! Kept (unless refused below):
//! - the process basics: `PATH`, `HOME`, `USER`, `LOGNAME`, `TMPDIR`,
//!   `TMP`, `TEMP`, `TZ`, `LANG`, `LANGUAGE`, `LC_*`, `TERM`, `NO_COLOR`;
//! - the dynamic loader's `LD_LIBRARY_PATH` (where a plugin's libraries
//!   are: the CUDA and ROCm wheels rely on it outside Nix);
//! - the XDG base directories (`XDG_CACHE_HOME`...: compilation caches);
//! - Rust's `RUST_BACKTRACE` / `RUST_LIB_BACKTRACE` (for the xtask itself);
//! - every variable of the runtimes plugins are built on: `XLA_*`, `TF_*`,
//!   `PJRT_*`, `CUDA_*`, `CUDNN_*`, `CUBLAS_*`, `NCCL_*`, `NVSHMEM_*`,
//!   `NVIDIA_*`, `__NV_*`, `ROCM_*`, `HIP_*`, `HSA_*`, `ROCR_*`, `AMD_*`,
//!   `MIOPEN_*`, `RCCL_*`, `TPU_*`, `LIBTPU_*`, `ALLOW_MULTIPLE_LIBTPU_LOAD`,
//!   `OMP_*`, `KMP_*`, `MKL_*`, `ONEDNN_*`, `DNNL_*`;
//! - what the child protocol adds itself (`TPU_SKIP_MDS_QUERY` for libtpu,
//!   see [`super::child`]).
//!
//! Refused even when a prefix above matches: any name containing `TOKEN`,
//! `PASSWORD`, `PASSWD`, `SECRET`, `CREDENTIAL` or `PRIVATE`, or ending in
//! `_KEY`, `_KEY_FILE` or `_KEY_ID`, and every `GITHUB_*`, `ACTIONS_*`,
//! `PJRTPKGS_*`, `AWS_*`, `GOOGLE_*`, `GCLOUD_*`, `AZURE_*`, `NIX_*`.

use std::ffi::OsString;

const EXACT: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "TMPDIR",
    "TMP",
    "TEMP",
    "TZ",
    "LANG",
    "LANGUAGE",
    "TERM",
    "NO_COLOR",
    "LD_LIBRARY_PATH",
    "RUST_BACKTRACE",
    "RUST_LIB_BACKTRACE",
    "ALLOW_MULTIPLE_LIBTPU_LOAD",
];

const PREFIXES: &[&str] = &[
    "LC_", "XDG_", "XLA_", "TF_", "PJRT_", "CUDA_", "CUDNN_", "CUBLAS_", "NCCL_", "NVSHMEM_", "NVIDIA_", "__NV_", "ROCM_", "HIP_", "HSA_",
    "ROCR_", "AMD_", "MIOPEN_", "RCCL_", "TPU_", "LIBTPU_", "OMP_", "KMP_", "MKL_", "ONEDNN_", "DNNL_",
];

const REFUSED_WORDS: &[&str] = &["TOKEN", "PASSWORD", "PASSWD", "SECRET", "CREDENTIAL", "PRIVATE"];
const REFUSED_SUFFIXES: &[&str] = &["_KEY", "_KEY_FILE", "_KEY_ID"];
const REFUSED_PREFIXES: &[&str] = &["GITHUB_", "ACTIONS_", "PJRTPKGS_", "AWS_", "GOOGLE_", "GCLOUD_", "AZURE_", "NIX_"];

/// Whether a plugin's child process may see the variable `name`.
pub fn passes(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    let refused = REFUSED_WORDS.iter().any(|w| upper.contains(w))
        || REFUSED_SUFFIXES.iter().any(|s| upper.ends_with(s))
        || REFUSED_PREFIXES.iter().any(|p| upper.starts_with(p));
    !refused && (EXACT.contains(&name) || PREFIXES.iter().any(|p| name.starts_with(p)))
}

/// The variables of this process a plugin's child may see.
pub fn scrubbed() -> Vec<(OsString, OsString)> {
    std::env::vars_os().filter(|(name, _)| name.to_str().is_some_and(passes)).collect()
}

/// Clears `command`'s environment down to [`scrubbed`].
pub fn apply(command: &mut std::process::Command) {
    command.env_clear();
    command.envs(scrubbed().iter().map(|(k, v)| (k.as_os_str(), v.as_os_str())));
}

#[cfg(test)]
mod tests {
    use super::passes;

    #[test]
    fn what_plugins_need_passes_and_secrets_do_not() {
        for name in
            ["PATH", "HOME", "LD_LIBRARY_PATH", "LC_ALL", "XLA_FLAGS", "TF_CPP_MIN_LOG_LEVEL", "CUDA_VISIBLE_DEVICES", "TPU_SKIP_MDS_QUERY"]
        {
            assert!(passes(name), "{name}");
        }
        for name in [
            "PJRTPKGS_RELEASE_KEY_PASSWORD",
            "PJRTPKGS_RELEASE_KEY_FILE",
            "GITHUB_TOKEN",
            "GITHUB_ACTIONS",
            "CUDA_API_TOKEN",
            "XLA_SECRET",
            "TPU_KEY",
            "AWS_ACCESS_KEY_ID",
            "SSH_AUTH_SOCK",
            "CARGO_REGISTRY_TOKEN",
            "LD_PRELOAD",
            "NIX_PATH",
            "PJRTPKGS_ROOT",
        ] {
            assert!(!passes(name), "{name}");
        }
    }
}
