# The nixpkgs CUDA and ROCm packages a PJRT GPU plugin needs, named once for
# both builders: the prebuilt wheels link/dlopen the runtime ones; the source
# builds put runtime and build-only ones into Bazel's local toolchain trees.
{
  # Loaded by a CUDA plugin at run time (DT_NEEDED or dlopen); cuDNN and NCCL
  # are separate because XLA's hermetic CUDA takes each as its own tree.
  cudaRuntime =
    cudaPackages: with cudaPackages; [
      cuda_cudart
      cuda_cupti
      cuda_nvrtc
      libcublas
      libcufft
      libcurand
      libcusolver
      libcusparse
      libnvjitlink
    ];
  # Only needed to compile: nvcc, header-only and stub packages.
  cudaBuildOnly =
    cudaPackages: with cudaPackages; [
      cuda_nvcc
      cuda_cccl
      cuda_nvml_dev
      cuda_nvtx
      cuda_profiler_api
    ];

  # Loaded by a ROCm plugin at run time. Every library XLA's
  # rocm_configure.bzl (_find_libs: "Cannot find rocm library ...") and
  # find_rocm_config.py require at [xla] commit is here, rocrand and hiprand
  # included; clr also brings rocm-core's headers and the ROCm clang as
  # llvm/ (nixpkgs' clr postInstall).
  rocmRuntime =
    rocmPackages: with rocmPackages; [
      clr
      rocrand
      hiprand
      rocblas
      hipblas
      hipblaslt
      miopen
      rccl
      rocsolver
      hipsolver
      rocsparse
      hipsparse
      rocfft
      hipfft
      roctracer
      # librocprofiler-sdk.so.1 is a DT_NEEDED of jax-rocm7-pjrt's plugin.
      rocprofiler-sdk
    ];
  # Only needed to compile: device bitcode and header-only libraries.
  rocmBuildOnly =
    rocmPackages: with rocmPackages; [
      rocm-device-libs
      rocprim
      hipcub
      rocthrust
    ];
}
