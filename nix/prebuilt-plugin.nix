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
      }
      // lib.optionalAttrs isRocm { rocm = rocmPackages.clr.version; };
    extra = {
      package = entry.name;
      inherit (entry) version;
      inherit (platform) url sha256 library;
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
stdenv.mkDerivation {
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

  # dlopen'ed CUDA/ROCm libraries are not DT_NEEDED: their directories, then
  # the host driver's, join the RUNPATH autoPatchelf writes.
  appendRunpaths = lib.optionals stdenv.hostPlatform.isLinux (
    map (p: "${p}/lib") runtimeLibs ++ lib.optional isCuda "${addDriverRunpath.driverLink}/lib"
  );

  passthru = {
    inherit pjrtApiVersion;
    pluginLib = "lib/${layout.libName}";
    inherit backend versionInfo;
  };

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
