# ONE builder for every source-built plugin: backend x system.
#
# Two derivations:
#   deps  - fixed-output: Bazel fetches XLA's external repositories (network
#           allowed), normalised into a tarball; hash from pins.toml
#           [bazel_deps.<backend>.<system>], which must exist.
#   build - an ordinary derivation (no network, no impure variables) that
#           unpacks deps and runs Bazel offline with the flags of
#           pjrtLib.bazelConfig.
{
  lib,
  stdenv,
  bazel,
  python3,
  gitMinimal,
  which,
  unzip,
  zip,
  cacert,
  symlinkJoin,
  glibc,
  zlib,
  autoPatchelfHook,
  addDriverRunpath,
  backend,
  pins,
  pjrtLib,
  xla-src,
  cudaPackages ? null,
  rocmPackages ? null,
}:
let
  system = stdenv.hostPlatform.system;
  isCuda = backend == "cuda12" || backend == "cuda13";
  isRocm = backend == "rocm7";
  # Never a silent default: a missing table would hide which deps hash the
  # build uses. The placeholder must be written out (explicitly unknown).
  depsPin =
    (pins.bazelDeps.${backend} or { }).${system} or (throw ''
      pjrtpkgs: pins.toml has no [bazel_deps.${backend}.${system}] table, so pjrt-${backend} on ${system} has no deps hash.
      Add it with the placeholder (hash = "${pins.placeholderHash}") or compute it:
        cargo xtask deps-hash refresh ${backend} --system ${system}'');

  gpuLibraries = import ./gpu-libraries.nix;

  # Hermetic CUDA pointed at nixpkgs: one tree per LOCAL_*_PATH, laid out as
  # NVIDIA's redistributables are (bin/, include/, lib/, nvvm/).
  cudaTree = lib.optionalAttrs isCuda {
    cuda = symlinkJoin {
      name = "pjrt-${backend}-local-cuda";
      paths = lib.concatMap (p: [
        (lib.getBin p)
        (lib.getDev p)
        (lib.getLib p)
      ]) (gpuLibraries.cudaBuildOnly cudaPackages ++ gpuLibraries.cudaRuntime cudaPackages);
    };
    cudnn = symlinkJoin {
      name = "pjrt-${backend}-local-cudnn";
      paths = [
        (lib.getDev cudaPackages.cudnn)
        (lib.getLib cudaPackages.cudnn)
      ];
    };
    nccl = symlinkJoin {
      name = "pjrt-${backend}-local-nccl";
      paths = [
        (lib.getDev cudaPackages.nccl)
        (lib.getLib cudaPackages.nccl)
      ];
    };
  };

  rocmParts = lib.optionals isRocm (
    gpuLibraries.rocmRuntime rocmPackages ++ gpuLibraries.rocmBuildOnly rocmPackages
  );
  rocmTree = symlinkJoin {
    name = "pjrt-rocm7-local-rocm";
    paths = rocmParts;
  };

  hostRpath = lib.makeLibraryPath [
    glibc
    stdenv.cc.cc.lib
    zlib
  ];

  bazelConfig = pjrtLib.bazelConfig {
    inherit backend system pins;
    paths = {
      dynamicLinker = stdenv.cc.bintools.dynamicLinker;
      inherit hostRpath;
    }
    // lib.optionalAttrs isCuda {
      cuda = "${cudaTree.cuda}";
      cudnn = "${cudaTree.cudnn}";
      nccl = "${cudaTree.nccl}";
      cudaVersion = cudaPackages.cuda_cudart.version;
      cudnnVersion = cudaPackages.cudnn.version;
    }
    // lib.optionalAttrs isRocm {
      rocm = "${rocmTree}";
      rocmMultiplePaths = lib.concatMapStringsSep ":" toString rocmParts;
      clang = "${rocmPackages.llvm.clang}";
    };
  };

  # XLA's .bazelversion asks for [xla] bazel_version; nixpkgs' bazel_7 may be
  # another 7.x. Bazel would then refuse to start (through bazelisk) or warn;
  # the pinned nixpkgs Bazel is used and the mismatch is recorded.
  bazelMismatch = bazel.version != pins.xla.bazelVersion;

  # Shared by both derivations: the same source, patches and Bazel setup.
  commonAttrs = {
    src = xla-src;
    nativeBuildInputs = [
      bazel
      python3
      gitMinimal
      which
      unzip
      zip
    ];
    bazelFlags = bazelConfig.flags;
    bazelTargets = bazelConfig.targets;
    postPatch = ''
      ${lib.optionalString bazelMismatch "echo ${bazel.version} > .bazelversion"}
      patchShebangs .
    '';
    preConfigure = ''
      export HOME="$NIX_BUILD_TOP/home"
      export bazelOut="$NIX_BUILD_TOP/output"
      export bazelUserRoot="$NIX_BUILD_TOP/tmp"
      mkdir -p "$HOME" "$bazelOut" "$bazelUserRoot"
    '';
    inherit (bazelConfig) env;
  };

  bazelCmd = cmd: ''
    bazel --batch --output_base="$bazelOut" --output_user_root="$bazelUserRoot" \
      ${cmd} --curses=no $bazelFlags $bazelTargets
  '';

  deps = stdenv.mkDerivation (
    commonAttrs
    // {
      name = "pjrt-${backend}-bazel-deps-${system}.tar";
      # Bazel's own fetchers use these; the proxies are the only impurity a
      # fixed-output derivation may have.
      impureEnvVars = [
        "http_proxy"
        "https_proxy"
        "ftp_proxy"
        "all_proxy"
        "no_proxy"
      ];
      SSL_CERT_FILE = "${cacert}/etc/ssl/certs/ca-bundle.crt";
      GIT_SSL_CAINFO = "${cacert}/etc/ssl/certs/ca-bundle.crt";
      buildPhase = ''
        runHook preBuild
        ${bazelCmd "build --nobuild --loading_phase_threads=1"}
        runHook postBuild
      '';
      installPhase = ''
        runHook preInstall
        ext="$bazelOut/external"
        chmod -R +w "$ext"
        # Bazel recreates these itself; they name the build host.
        for r in bazel_tools embedded_jdk local_config_cc local_config_python \
                 local_config_sh local_config_xcode local_execution_config_python \
                 local_jdk local_config_cuda local_config_rocm; do
          rm -rf "$ext/$r" "$ext/@$r.marker"
        done
        # Markers hold hashes of the fetch environment.
        find "$ext" -name '@*.marker' -exec sh -c 'echo > "$1"' _ {} \;
        # Version-control metadata, byte code and live version lists differ per fetch.
        find "$ext" -type d \( -name .git -o -name .svn -o -name .hg \) -prune -exec rm -rf {} +
        find "$ext" -name '*.pyc' -delete
        find "$ext" -path '*go_sdk*/versions.json' -delete
        # Top-level repository symlinks point into the temporary build tree:
        # materialise directories, drop the rest.
        find "$ext" -maxdepth 1 -type l | while read -r l; do
          t="$(readlink -f "$l")"
          rm "$l"
          if [ -d "$t" ]; then cp -rL "$t" "$l"; else rm -f "$ext/@$(basename "$l").marker"; fi
        done
        # Remaining symlinks: relative to the build tree, restored in build.
        find "$ext" -type l | while read -r l; do
          t="$(readlink "$l" | sed "s,$NIX_BUILD_TOP,NIX_BUILD_TOP,")"
          ln -sfn "$t" "$l"
        done
        # No store path may survive: a fixed output cannot reference any.
        find "$ext" -type f -exec sed -i 's|/nix/store/[a-z0-9]\{32\}-|/nix/store/eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee-|g' {} +
        echo '${bazel.name}' > "$ext/.nix-bazel-version"
        tar -C "$bazelOut" -cf "$out" --sort=name --mtime=@1 --owner=0 --group=0 --numeric-owner external
        runHook postInstall
      '';
      dontFixup = true;
      # A fixed output must not depend on any store path.
      allowedRequisites = [ ];
      outputHashMode = "flat";
      outputHash = depsPin.hash;
      passthru = {
        inherit (depsPin) stale;
        pinnedXlaCommit = depsPin.xlaCommit;
      };
    }
  );

  toolchains = {
    bazel = bazel.version;
  }
  // lib.optionalAttrs isCuda {
    cuda = cudaPackages.cuda_cudart.version;
    cudnn = cudaPackages.cudnn.version;
    nccl = cudaPackages.nccl.version;
    compute_capabilities = pins.${backend}.computeCapabilities;
  }
  // lib.optionalAttrs isRocm {
    rocm = rocmPackages.clr.version;
    gpu_targets = pins.rocm7.gpuTargets;
  };

  layout = pjrtLib.pluginLayout {
    inherit backend;
    versionInfo = pjrtLib.versionInfo {
      inherit backend toolchains;
      origin = "source";
      xlaCommit = pins.xla.commit;
      pjrtApiVersion = pins.xla.pjrtApiVersion;
      extra = {
        bazel_version_mismatch = bazelMismatch;
        bazel_flags = bazelConfig.flags;
      };
    };
    library = ''"bazel-bin/$bazelOutput"'';
    # The headers of the very commit the plugin was built from.
    xlaHeaders = "xla/pjrt/c";
  };
in
assert lib.assertMsg (bazel.version == pins.toolchains.bazel.version)
  "pjrtpkgs: nixpkgs' ${pins.toolchains.bazel.attribute} is ${bazel.version} but pins.toml [toolchains.bazel] says ${pins.toolchains.bazel.version}; update the pin";
stdenv.mkDerivation (
  commonAttrs
  // {
    pname = "pjrt-${backend}";
    version = "0-unstable-${builtins.substring 0 10 (if pins.xla.date != null then pins.xla.date else "0000-00-00")}";
    bazelDeps = deps;

    nativeBuildInputs =
      commonAttrs.nativeBuildInputs
      ++ [ autoPatchelfHook ]
      ++ lib.optional (isCuda || isRocm) addDriverRunpath;
    buildInputs = [
      stdenv.cc.cc.lib
      zlib
    ];

    configurePhase = ''
      runHook preConfigure
      tar -C "$bazelOut" -xf "$bazelDeps"
      test "${bazel.name}" = "$(cat "$bazelOut/external/.nix-bazel-version")" || {
        echo "pjrtpkgs: the Bazel dependencies were fetched with another Bazel; run cargo xtask deps-hash refresh ${backend} --system ${system}" >&2
        exit 1
      }
      chmod -R +w "$bazelOut"
      find "$bazelOut" -type l | while read -r l; do
        t="$(readlink "$l")"
        case "$t" in *NIX_BUILD_TOP*) ln -sfn "''${t//NIX_BUILD_TOP/$NIX_BUILD_TOP}" "$l" ;; esac
      done
      runHook postConfigure
    '';

    buildPhase = ''
      runHook preBuild
      ${bazelCmd "build --jobs=$NIX_BUILD_CORES"}
      runHook postBuild
    '';

    bazelOutput = bazelConfig.output;
    inherit (layout)
      libName
      versionInfoJson
      xlaHeaders
      installPhase
      ;

    postFixup = lib.optionalString (isCuda || isRocm) ''
      addDriverRunpath "$out/lib/$libName"
    '';

    # The plugin must not keep Bazel, its dependency archive or the source alive.
    disallowedReferences = [
      deps
      xla-src
      bazel
    ];

    passthru = {
      inherit deps bazelConfig backend;
      pjrtApiVersion = pins.xla.pjrtApiVersion;
      pluginLib = "lib/${layout.libName}";
    };

    meta = {
      description = "PJRT ${backend} plugin built from XLA ${pins.xla.commit}";
      license = if isCuda then [ lib.licenses.asl20 lib.licenses.unfree ] else lib.licenses.asl20;
      platforms = pjrtLib.linuxSystems;
    };
  }
)
