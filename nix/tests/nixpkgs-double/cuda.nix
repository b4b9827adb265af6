# TEST DOUBLE of nixpkgs' CUDA package sets (pkgs/development/cuda-modules,
# pkgs/top-level/cuda-packages.nix), with the facts pjrtpkgs depends on:
#
# * buildRedist (cuda-modules/buildRedist/default.nix): every redistributable
#   has brokenAssertions [{ message = "CUDA support is enabled by
#   config.cudaSupport"; assertion = config.cudaSupport; }] -> meta.broken
#   unless config.cudaSupport; its license is unfree (nvidiaCudaRedist; cuDNN:
#   NVIDIA's cuDNN license); files are split into outputs by outputToPatterns
#   (include/ -> `include`, lib/ -> `lib`, bin/ -> `bin`, *.a -> `static`,
#   stubs -> `stubs`, *.pc/*.cmake -> `dev`), so headers are only in
#   `include`; package versions are the manifest's component versions
#   (cuda_cudart 12.9.79), the set's manifests keep NVIDIA's release_label
#   (12.9.1). Which outputs a component has depends on its archive; the lists
#   below follow that rule for what each archive holds, except cuda_nvcc,
#   which nixpkgs keeps in a single `out` (packages/cuda_nvcc.nix c9cd016b,
#   packages/cuda_nvcc/package.nix 7787668e: NVCC and NVVM together, so
#   `lib.getBin cuda_nvcc` has bin/ptxas, bin/nvlink and nvvm/libdevice).
# * nccl (cuda-modules/packages/nccl.nix): built from source with cuda_nvcc
#   and cuda_cudart, outputs out/dev/static, BSD-3; it cannot evaluate when
#   those cannot.
# * versions: manifests cuda/redistrib_12.9.1.json, cuda/redistrib_13.0.2.json,
#   cudnn/redistrib_9.13.0.json (cuda-modules/_cuda/manifests), selected for
#   cudaPackages_12_9 / cudaPackages_13_0 in the stored cuda-packages.nix read.
{
  lib,
  mkDerivation,
  config,
}:
let
  cudaSupport = config.cudaSupport or false;
  platforms = [
    "x86_64-linux"
    "aarch64-linux"
  ];
  # Outputs per component (buildRedist's outputToPatterns on each archive).
  libraryOutputs = [
    "out"
    "dev"
    "include"
    "lib"
    "static"
    "stubs"
  ];
  componentOutputs = {
    cuda_cccl = [
      "out"
      "dev"
      "include"
    ];
    cuda_crt = [
      "out"
      "dev"
      "include"
    ];
    cuda_cudart = libraryOutputs;
    cuda_cupti = [
      "out"
      "dev"
      "include"
      "lib"
      "static"
    ];
    # One output, overriding the split: "Keep NVCC and NVVM together"
    # (cuda_nvcc.nix c9cd016b, cuda_nvcc/package.nix 7787668e): bin/ptxas,
    # bin/nvlink, nvvm/libdevice and the headers share one prefix.
    cuda_nvcc = [ "out" ];
    cuda_nvdisasm = [
      "out"
      "bin"
    ];
    cuda_nvml_dev = [
      "out"
      "dev"
      "include"
      "lib"
      "stubs"
    ];
    cuda_nvprune = [
      "out"
      "bin"
    ];
    cuda_nvrtc = libraryOutputs;
    cuda_nvtx = [
      "out"
      "dev"
      "include"
      "lib"
    ];
    cuda_profiler_api = [
      "out"
      "dev"
      "include"
    ];
    libcublas = libraryOutputs;
    libcufft = libraryOutputs;
    libcurand = libraryOutputs;
    libcusolver = libraryOutputs;
    libcusparse = libraryOutputs;
    libnvjitlink = libraryOutputs;
    cudnn = [
      "out"
      "dev"
      "include"
      "lib"
      "static"
    ];
  };

  cudaSet =
    {
      majorMinor,
      manifests,
    }:
    let
      redist =
        pname: manifest:
        let
          version = manifest.${pname}.version;
        in
        mkDerivation {
          name = "cuda${majorMinor}-${pname}-${version}";
          inherit pname version;
          outputs = componentOutputs.${pname};
          passthru.brokenAssertions = [
            {
              message = "CUDA support is enabled by config.cudaSupport";
              assertion = cudaSupport;
            }
          ];
          meta = {
            broken = !cudaSupport;
            license = if pname == "cudnn" then lib.licenses.unfree else lib.licenses.nvidiaCudaRedist;
            inherit platforms;
          };
        };
      components = lib.filterAttrs (n: _: componentOutputs ? ${n}) manifests.cuda;
      set = builtins.mapAttrs (pname: _: redist pname manifests.cuda) components // {
        cudnn = redist "cudnn" manifests.cudnn;
        nccl = mkDerivation {
          name = "cuda${majorMinor}-nccl-2.30.7-1";
          pname = "nccl";
          version = "2.30.7-1";
          outputs = [
            "out"
            "dev"
            "static"
          ];
          nativeBuildInputs = [ set.cuda_nvcc ];
          buildInputs = [
            (lib.getInclude set.cuda_nvcc)
            set.cuda_cudart
          ];
          meta = {
            license = lib.licenses.bsd3;
            inherit platforms;
          };
        };
      };
    in
    set
    // {
      cudaMajorMinorVersion = majorMinor;
      cudaMajorVersion = builtins.head (builtins.splitVersion majorMinor);
      inherit manifests;
    };

  manifests = import ./cuda-manifests.nix;
in
{
  cudaPackages_12_9 = cudaSet {
    majorMinor = "12.9";
    manifests = {
      cuda = manifests.cuda."12.9.1";
      cudnn = manifests.cudnn."9.13.0";
    };
  };
  cudaPackages_13_0 = cudaSet {
    majorMinor = "13.0";
    manifests = {
      cuda = manifests.cuda."13.0.2";
      cudnn = manifests.cudnn."9.13.0";
    };
  };
}
