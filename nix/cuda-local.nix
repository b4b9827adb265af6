# The toolkit-shaped trees XLA's hermetic CUDA takes through LOCAL_CUDA_PATH,
# LOCAL_CUDNN_PATH and LOCAL_NCCL_PATH, joined from the outputs nixpkgs' CUDA
# redistributables split their files into (buildRedist's outputToPatterns:
# headers in `include`, libraries in `lib`, tools in `bin`, static libraries
# in `static`, driver stubs in `stubs`). Same selection as nixpkgs'
# pkgs/by-name/xl/xla/cuda-local.nix: `dev` is not taken, because it holds
# only pkg-config/CMake files and propagation, which symlinkJoin ignores.
{
  lib,
  symlinkJoin,
  cudaPackages,
}:
let
  outputs = names: package: map (name: lib.getOutput name package) names;

  # Everything XLA's CUDA rules read: compiler, runtime, math libraries,
  # NVML headers, nvdisasm/nvprune (used by XLA's cuda_configure), and from
  # CUDA 13 on the CRT headers nvcc includes, which moved to cuda_crt.
  components =
    with cudaPackages;
    [
      cuda_nvcc
      cuda_cudart
      cuda_cupti
      cuda_nvrtc
      cuda_nvtx
      cuda_nvml_dev
      cuda_nvdisasm
      cuda_nvprune
      cuda_profiler_api
      libcublas
      libcufft
      libcurand
      libcusolver
      libcusparse
      libnvjitlink
    ]
    ++ lib.optional (lib.versionAtLeast cudaPackages.cuda_nvcc.version "13") cudaPackages.cuda_crt;

  # Where CCCL's headers would land in the joined tree.
  cccl = [
    "include/cuda/std"
    "include/thrust"
    "include/cub"
    "include/nv/target"
  ];

  cudaRoots = lib.unique (
    lib.concatMap (outputs [
      "include"
      "lib"
      "bin"
    ]) components
    ++ [
      # libcudart_static.a and the driver stubs (libnvidia-ml.so) XLA links.
      (lib.getOutput "static" cudaPackages.cuda_cudart)
      (lib.getOutput "stubs" cudaPackages.cuda_nvml_dev)
    ]
  );
in
{
  inherit cudaRoots components cccl;
  cuda = symlinkJoin {
    name = "pjrt-local-cuda-${cudaPackages.cudaMajorMinorVersion}";
    paths = cudaRoots;
    # CCCL is XLA's own pinned download (third_party/cccl); headers of
    # nixpkgs' CCCL leaking into this view would shadow it. The same guard
    # as nixpkgs' xla cuda-local.nix (373daef1).
    postBuild = ''
      for entry in ${lib.escapeShellArgs cccl}; do
        if [ -e "$out/$entry" ]; then
          echo "pjrtpkgs: unexpected CCCL header in the local CUDA view: $entry (XLA brings its own CCCL; find which CUDA component ships it)" >&2
          exit 1
        fi
      done
    '';
  };
  cudnn = symlinkJoin {
    name = "pjrt-local-cudnn-${cudaPackages.cudnn.version}";
    paths = lib.unique (
      outputs [
        "include"
        "lib"
      ] cudaPackages.cudnn
    );
  };
  # NCCL is built from source in nixpkgs: headers in `dev`, library in `out`.
  nccl = symlinkJoin {
    name = "pjrt-local-nccl-${cudaPackages.nccl.version}";
    paths = lib.unique (
      outputs [
        "dev"
        "lib"
      ] cudaPackages.nccl
    );
  };
}
