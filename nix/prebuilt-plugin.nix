# A PJRT plugin repackaged from a pinned PyPI wheel: fetched by the sha256 of
# pins.toml, unpacked, its ELF dependencies resolved against nixpkgs' CUDA or
# ROCm libraries; libcuda is left to the host driver (driver runpath).
#
# Runpath: autoPatchelfHook rewrites the RUNPATH in postFixupHooks, after the
# postFixup attribute has run (stdenv's runHook: implicit hook first, then the
# *Hooks array), so nothing may be added in postFixup. Libraries the plugin
# dlopens and the driver directory go through appendRunpaths, which
# autoPatchelf adds to every file it patches (runtimeDependencies would reach
# dynamic executables only, and a plugin is a shared library).
{
  lib,
  stdenv,
  fetchurl,
  unzip,
  autoPatchelfHook,
  addDriverRunpath,
  entry, # one pins.prebuilt entry, with `platform` for this system
  xlaPin,
  xla-src,
  pjrtLib,
  cudaPackages ? null,
  rocmPackages ? null,
  # [cudaNN] of pins.toml (CUDA plugins): the NVSHMEM wheel to take.
  cudaPin ? null,
  # [rules_ml_toolchain] nvshmem_libraries: the NVSHMEM libraries XLA imports.
  nvshmemLibraries ? [ ],
}:
let
  inherit (entry) backend platform;
  isCuda = cudaPackages != null;
  isRocm = rocmPackages != null;

  # Libraries the plugins link or dlopen. The wheels expect them from
  # NVIDIA's / AMD's Python wheels; here they come from nixpkgs.
  gpuLibraries = import ./gpu-libraries.nix;
  cudaLibs = lib.optionals isCuda (
    map lib.getLib (
      gpuLibraries.cudaRuntime cudaPackages
      ++ [
        cudaPackages.cudnn
        cudaPackages.nccl
      ]
    )
  );
  rocmLibs = lib.optionals isRocm (map lib.getLib (gpuLibraries.rocmRuntime rocmPackages));
  runtimeLibs = cudaLibs ++ rocmLibs;

  # What XLA loads at run time besides libraries, for a CUDA plugin:
  # * ptxas, nvlink and libdevice for JIT compilation. XLA looks for them
  #   (xla/tsl/platform/default/cuda_root_path.cc, CandidateCudaRoots) under
  #   a root next to the plugin: `<plugin dir>/../nvidia/cu13` when built for
  #   CUDA 13, `<plugin dir>/../nvidia/cuda_nvcc` otherwise, the layout of
  #   NVIDIA's pip wheels. The package has that root, pointing at nixpkgs'
  #   cuda_nvcc (bin/ptxas, bin/nvlink, nvvm/libdevice in one output), so a
  #   binding that loads lib/<plugin>.so from the store (or through a
  #   symlink to it) needs nothing else: no PATH, CUDA_HOME or XLA_FLAGS.
  #   version_info.json names the directory (cuda_data_dir) for bindings
  #   that copy the plugin elsewhere: XLA_FLAGS=--xla_gpu_cuda_data_dir=DIR.
  # * NVSHMEM 3 (dlopen'ed by soname), from NVIDIA's wheel at the version
  #   XLA's pjrt_cudaNN config pins; only the libraries XLA's rules import.
  cudaToolRoot = if cudaPackages.cudaMajorVersion == "13" then "nvidia/cu13" else "nvidia/cuda_nvcc";
  cudaDataDir = lib.getBin cudaPackages.cuda_nvcc;
  system = stdenv.hostPlatform.system;
  nvshmemWheel =
    cudaPin.nvshmemWheel.${system} or (throw ''
      pjrtpkgs: pins.toml has no [${backend}.nvshmem_wheel.${system}] table, so ${entry.name} on ${system} has no NVSHMEM.
      Pin NVIDIA's nvidia-nvshmem-cu${cudaPackages.cudaMajorVersion} wheel ${cudaPin.nvshmemVersion} for ${system} (url and sha256 from https://pypi.org/pypi/nvidia-nvshmem-cu${cudaPackages.cudaMajorVersion}/json).'');
  nvshmemSrc = fetchurl { inherit (nvshmemWheel) url sha256; };
  installCudaRuntime = ''
    mkdir -p "$out/$(dirname "$cudaToolRoot")"
    ln -s "$cudaDataDir" "$out/$cudaToolRoot"
    mkdir nvshmem
    unzip -q "$nvshmemSrc" 'nvidia/nvshmem/lib/*' -d nvshmem
    for name in ${lib.escapeShellArgs nvshmemLibraries}; do
      found=
      for f in nvshmem/nvidia/nvshmem/lib/"$name".so*; do
        [ -e "$f" ] || continue
        cp -P "$f" "$out/lib/"
        found=1
      done
      if [ -z "$found" ]; then
        echo "pjrtpkgs: the NVSHMEM wheel has no $name.so*, which XLA's rules import" >&2
        exit 1
      fi
    done
  '';

  # Headers: XLA's when the pin says which commit the wheel was built from
  # and it is ours; else the wheel's own, when it ships them.
  headersFromXla = entry.xlaCommit != null && entry.xlaCommit == xlaPin.commit;

  pjrtApiVersion = if pjrtLib.knownApiVersion entry.pjrtApiVersion then entry.pjrtApiVersion else null;

  versionInfo = pjrtLib.versionInfo {
    inherit backend pjrtApiVersion;
    origin = "prebuilt";
    xlaCommit = entry.xlaCommit;
    toolchains =
      lib.optionalAttrs isCuda {
        # Release labels of the nixpkgs manifests the libraries come from.
        cuda = cudaPackages.manifests.cuda.release_label;
        cudnn = cudaPackages.manifests.cudnn.release_label;
        nvshmem = cudaPin.nvshmemVersion;
      }
      // lib.optionalAttrs isRocm { rocm = rocmPackages.clr.version; };
    extra = {
      package = entry.name;
      inherit (entry) version;
      inherit (platform) url sha256 library;
    }
    // lib.optionalAttrs isCuda {
      # ptxas, nvlink, libdevice: found by XLA next to the plugin; for a
      # copy elsewhere, XLA_FLAGS=--xla_gpu_cuda_data_dir=<this>.
      cuda_data_dir = "${cudaDataDir}";
    };
  };

  layout = pjrtLib.pluginLayout {
    inherit backend versionInfo;
    prepare = ''
      mkdir wheel
      unzip -q "$src" -d wheel
      if [ ! -f "wheel/$pluginPath" ]; then
        echo "pjrtpkgs: $pluginPath is not in the wheel; the pin's 'library' is wrong" >&2
        exit 1
      fi
    '';
    library = ''"wheel/$pluginPath"'';
    xlaHeaders = lib.optionalString headersFromXla "${xla-src}/xla/pjrt/c";
    # Some wheels ship the header they were built with.
    fallbackHeaders = ''find wheel -name 'pjrt_c_api*.h' -exec cp {} "$out/include/" \;'';
  };
in
stdenv.mkDerivation (
{
  pname = "pjrt-${entry.name}-bin";
  inherit (entry) version;

  src = fetchurl {
    inherit (platform) url sha256;
  };

  dontUnpack = true;
  dontConfigure = true;
  dontBuild = true;
  # Stripping a vendor's plugin gains little and risks breaking it.
  dontStrip = true;

  nativeBuildInputs = [
    unzip
  ]
  ++ lib.optionals stdenv.hostPlatform.isLinux [ autoPatchelfHook ];
  buildInputs = lib.optionals stdenv.hostPlatform.isLinux ([ stdenv.cc.cc.lib ] ++ runtimeLibs);

  # libcuda.so.1 belongs to the host's driver, found through the driver runpath.
  autoPatchelfIgnoreMissingDeps = lib.optionals isCuda [ "libcuda.so.1" ];

  pluginPath = platform.library;
  inherit (layout)
    libName
    versionInfoJson
    xlaHeaders
    installPhase
    ;
  postInstall = lib.optionalString isCuda installCudaRuntime;

  # dlopen'ed CUDA/ROCm libraries are not DT_NEEDED: their directories, then
  # the host driver's, join the RUNPATH autoPatchelf writes.
  appendRunpaths = lib.optionals stdenv.hostPlatform.isLinux (
    lib.optional isCuda "$ORIGIN"
    ++ map (p: "${p}/lib") runtimeLibs
    ++ lib.optional isCuda "${addDriverRunpath.driverLink}/lib"
  );

  passthru = {
    inherit pjrtApiVersion;
    pluginLib = "lib/${layout.libName}";
    inherit backend versionInfo;
  }
  // lib.optionalAttrs isCuda { inherit cudaToolRoot installCudaRuntime; };

  meta = {
    description = "PJRT ${backend} plugin, repackaged from the ${entry.name} wheel ${entry.version}";
    # The wheels' own licenses: XLA is Apache-2.0, but the CUDA/ROCm/TPU
    # wheels bundle or link proprietary code, and libtpu is proprietary.
    license =
      if backend == "cpu" then
        lib.licenses.asl20
      else if backend == "rocm7" then
        [
          lib.licenses.asl20
          lib.licenses.mit
        ]
      else
        [
          lib.licenses.asl20
          lib.licenses.unfree
        ];
    sourceProvenance = [ lib.sourceTypes.binaryNativeCode ];
    platforms = [ stdenv.hostPlatform.system ];
  };
}
// lib.optionalAttrs isCuda {
  # Read by installCudaRuntime (postInstall).
  inherit cudaToolRoot cudaDataDir nvshmemSrc;
})
