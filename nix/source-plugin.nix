# ONE builder for every source-built plugin (backend x system), on nixpkgs'
# own buildBazelPackage (pkgs/build-support/build-bazel-package): its fixed-
# output `deps` derivation fetches XLA's external repositories, its build runs
# Bazel offline with `bazel.override { enableNixHacks = true; }` so restored
# repositories count as fetched. Every workaround of nixpkgs' XLA recipe
# (pkgs/by-name/xl/xla/package.nix) that our targets need is ported here;
# nix/README.md has the table (workaround -> where it lives -> why).
{
  lib,
  stdenv,
  buildBazelPackage,
  bazel,
  python3,
  gitMinimal,
  which,
  file,
  patchelf,
  symlinkJoin,
  writeText,
  glibc,
  zlib,
  elfutils,
  libxml2,
  ncurses,
  ncurses5,
  rdma-core,
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
  pythonEnv = python3.withPackages (ps: [ ps.numpy ]);

  cudaLocal = import ./cuda-local.nix { inherit lib symlinkJoin cudaPackages; };
  # XLA's CUDA repositories take the versions of the nixpkgs manifests
  # (release labels: "12.9.1"), not one component's version ("12.9.79").
  cudaManifests = {
    inherit (cudaPackages.manifests) cuda cudnn;
  };

  # ROCM_PATH: one tree, as XLA's rocm_configure.bzl and find_rocm_config.py
  # read it (headers with version defines, lib/lib<name>.so, llvm/bin/clang;
  # xtask/tests/nix_xla_rules.rs runs XLA's own find_rocm_config.py on it).
  rocmTree = symlinkJoin {
    name = "pjrt-rocm7-local-rocm";
    paths = gpuLibraries.rocmRuntime rocmPackages ++ gpuLibraries.rocmBuildOnly rocmPackages;
  };

  hostRpath = lib.makeLibraryPath [
    glibc
    stdenv.cc.cc.lib
    zlib
  ];

  bazelConfig = pjrtLib.bazelConfig {
    inherit backend system pins;
    paths = {
      inherit (stdenv.cc.bintools) dynamicLinker;
      inherit hostRpath;
    }
    // lib.optionalAttrs isCuda {
      cuda = "${cudaLocal.cuda}";
      cudnn = "${cudaLocal.cudnn}";
      nccl = "${cudaLocal.nccl}";
      cudaRelease = cudaManifests.cuda.release_label;
      cudnnRelease = cudaManifests.cudnn.release_label;
    }
    // lib.optionalAttrs isRocm {
      rocm = "${rocmTree}";
      clang = "${rocmPackages.llvm.clang}";
    };
  };

  configure =
    args:
    lib.optionalString (args != null) ''
      ${pythonEnv.interpreter} ./configure.py ${lib.escapeShellArgs args}
    '';

  # Repositories generated from the local CUDA trees (store paths): left out
  # of the archive and regenerated offline; local_config_nccl stays (its
  # aliases cannot be recreated by Bazel 7 from a restored archive).
  localCudaRepositories = [
    "cuda_cublas"
    "cuda_cudart"
    "cuda_cufft"
    "cuda_cupti"
    "cuda_curand"
    "cuda_cusolver"
    "cuda_cusparse"
    "cuda_nvjitlink"
    "cuda_nvrtc"
    "cuda_crt"
    "cuda_nvcc"
    "cuda_nvvm"
    "cuda_nvdisasm"
    "cuda_nvml"
    "cuda_nvprune"
    "cuda_profiler_api"
    "cuda_nvtx"
    "cuda_cudnn"
    "cuda_nccl"
    "local_config_cuda"
  ];
  # ROCm's configuration names the ROCm tree (a store path): regenerated offline.
  localRepositories = lib.optionals isCuda localCudaRepositories ++ lib.optional isRocm "local_config_rocm";
  removeLocalRepositories = ''
    for repository in ${lib.escapeShellArgs localRepositories}; do
      rm -rf "$bazelOut/external/$repository" "$bazelOut/external/@$repository.marker"
    done
  '';

  # XLA's WORKSPACE downloads NVIDIA's redistrib JSON for the requested CUDA
  # version; nixpkgs already holds those manifests. The build-only user-mode
  # driver stays XLA's own download (XLA_LOCAL_DRIVER_PATH is never set).
  cudaRedistributions = writeText "pjrt-cuda-redistributions.bzl" ''
    load("@rules_ml_toolchain//gpu/cuda:cuda_redist_versions.bzl", "REDIST_VERSIONS_TO_BUILD_TEMPLATES")
    CUDA_REDISTRIBUTIONS = json.decode(${builtins.toJSON (builtins.toJSON cudaManifests.cuda)})
    CUDNN_REDISTRIBUTIONS = json.decode(${builtins.toJSON (builtins.toJSON cudaManifests.cudnn)})
    NIX_CUDA_TEMPLATES = dict(REDIST_VERSIONS_TO_BUILD_TEMPLATES)
    NIX_CUDA_TEMPLATES["nvidia_driver"] = dict(NIX_CUDA_TEMPLATES["nvidia_driver"])
    NIX_CUDA_TEMPLATES["nvidia_driver"]["local"] = dict(NIX_CUDA_TEMPLATES["nvidia_driver"]["local"], local_path_env_var = "XLA_LOCAL_DRIVER_PATH")
  '';

  # Libraries the downloaded hermetic tools (LLVM 18, Python, xxd: Ubuntu
  # builds) need once their interpreter is the Nix one.
  hermeticToolLibraries = [
    elfutils
    glibc
    libxml2
    ncurses5
    ncurses
    stdenv.cc.cc.lib
    zlib
  ];

  # Loaded by the plugin at run time, by DT_NEEDED or by dlopen of a bare
  # soname; the driver itself (libcuda.so.1) belongs to the host.
  runtimeLibs =
    lib.optionals isCuda (
      map lib.getLib (
        gpuLibraries.cudaRuntime cudaPackages
        ++ [
          cudaPackages.cudnn
          cudaPackages.nccl
        ]
      )
      ++ [ (lib.getLib rdma-core) ]
    )
    ++ lib.optionals isRocm (map lib.getLib (gpuLibraries.rocmRuntime rocmPackages));

  version = "0-unstable-${builtins.substring 0 10 (if pins.xla.date != null then pins.xla.date else "0000-00-00")}";

  toolchains = {
    inherit (bazel) version;
  }
  // lib.optionalAttrs isCuda {
    cuda = cudaManifests.cuda.release_label;
    cudnn = cudaManifests.cudnn.release_label;
    nccl = cudaPackages.nccl.version;
    nvshmem = pins.${backend}.nvshmemVersion;
    compute_capabilities = pins.${backend}.computeCapabilities;
  }
  // lib.optionalAttrs isRocm {
    rocm = rocmPackages.clr.version;
    gpu_targets = pins.rocm7.gpuTargets;
  };

  bazelMismatch = bazel.version != pins.xla.bazelVersion;

  # NVSHMEM as XLA's build imports it: the shared libraries of the
  # nvidia_nvshmem BUILD file that rules_ml_toolchain generated from its
  # template during the dependency fetch (`shared_library = "lib/..."`), which
  # must be the ones pins.toml [rules_ml_toolchain] nvshmem_libraries names.
  # Each is installed with the links the archive has to it (its soname);
  # nothing else of NVSHMEM: its other bootstrap/transport plugins need MPI,
  # PMIx, OpenSHMEM, UCX, libfabric or mlx5, which autoPatchelf cannot find.
  nvshmemInstall = ''
    nvshmem="$bazelOut/external/nvidia_nvshmem"
    if [ ! -f "$nvshmem/BUILD" ]; then
      echo "pjrtpkgs: $nvshmem/BUILD is missing: the Bazel fetch produced no NVSHMEM repository (HERMETIC_NVSHMEM_VERSION unset?)" >&2
      exit 1
    fi
    # rules_ml_toolchain comments the imports out (between three quotes)
    # when it finds no NVSHMEM version.
    if grep -q "'\{3\}" "$nvshmem/BUILD"; then
      echo "pjrtpkgs: $nvshmem/BUILD has its imports commented out: rules_ml_toolchain found no NVSHMEM libraries" >&2
      exit 1
    fi
    imported="$(sed -n 's|^[[:space:]]*shared_library = "\(lib/[^"]*\)",\{0,1\}[[:space:]]*$|\1|p' "$nvshmem/BUILD")"
    names="$(for f in $imported; do b="''${f##*/}"; echo "''${b%%.so*}"; done | sort -u | tr '\n' ' ')"
    pinned="$(printf '%s\n' ${lib.escapeShellArgs pins.rulesMlToolchain.nvshmemLibraries} | sort -u | tr '\n' ' ')"
    if [ "$names" != "$pinned" ]; then
      echo "pjrtpkgs: XLA's NVSHMEM rules import [ $names] but pins.toml [rules_ml_toolchain] nvshmem_libraries is [ $pinned]; update the pin from rules_ml_toolchain's gpu/nvshmem/nvidia_nvshmem.BUILD.tpl" >&2
      exit 1
    fi
    for f in $imported; do
      real="$(readlink -f "$nvshmem/$f")"
      if [ ! -f "$real" ]; then
        echo "pjrtpkgs: $nvshmem/$f, imported by XLA's NVSHMEM rules, is not in the NVSHMEM archive" >&2
        exit 1
      fi
      name="''${f##*/}"
      name="''${name%%.so*}"
      install -m755 "$real" "$out/lib/''${real##*/}"
      for link in "$nvshmem/lib/$name".so*; do
        if [ -L "$link" ] && [ "$(readlink -f "$link")" = "$real" ]; then
          ln -sfn "''${real##*/}" "$out/lib/''${link##*/}"
        fi
      done
    done
  '';

  layout = pjrtLib.pluginLayout {
    inherit backend;
    versionInfo = pjrtLib.versionInfo {
      inherit backend toolchains;
      origin = "source";
      xlaCommit = pins.xla.commit;
      pjrtApiVersion = pins.xla.pjrtApiVersion;
      extra = {
        bazel_version_mismatch = bazelMismatch;
        bazel_flags = bazelConfig.flags ++ bazelConfig.buildFlags;
      };
    };
    library = ''"bazel-bin/$bazelOutput"'';
    # The headers of the very commit the plugin was built from.
    xlaHeaders = "xla/pjrt/c";
  };

  plugin = buildBazelPackage {
    pname = "pjrt-${backend}";
    inherit version bazel;
    src = xla-src;

    nativeBuildInputs = [
      gitMinimal
      patchelf
      pythonEnv
      which
    ];

    postPatch =
      # XLA's .bazelversion names [xla] bazel_version; the pinned nixpkgs Bazel
      # is used instead (asserted below, recorded in version_info.json).
      ''
        rm -f .bazelversion
        patchShebangs .
      ''
      # Hermetic Python: rules_python runs the downloaded interpreter while
      # fetching; our patch gives it the Nix dynamic linker first.
      + ''
        cp ${./patches/rules-python-nix-patchelf.patch} third_party/py/pjrtpkgs-rules-python-nix-patchelf.patch
        substituteInPlace third_party/py/python_init_rules.bzl \
          --replace-fail '] + extra_patches,' '"@xla//third_party/py:pjrtpkgs-rules-python-nix-patchelf.patch",
              ] + extra_patches,'
      ''
      + lib.optionalString isCuda ''
        cp ${cudaRedistributions} nix_cuda_redist.bzl
        substituteInPlace WORKSPACE \
          --replace-fail 'cuda_json_init_repository()' "" \
          --replace-fail '"@cuda_redist_json//:distributions.bzl"' '"//:nix_cuda_redist.bzl", "NIX_CUDA_TEMPLATES"' \
          --replace-fail 'REDIST_VERSIONS_TO_BUILD_TEMPLATES | CCCL_GITHUB_VERSIONS_TO_BUILD_TEMPLATES' \
            'NIX_CUDA_TEMPLATES | CCCL_GITHUB_VERSIONS_TO_BUILD_TEMPLATES'
      '';

    # configure.py with the pinned capabilities (the fetch uses its own below).
    preConfigure = configure (if bazelConfig.configureArgs == null then null else bazelConfig.configureArgs.build);

    bazelTargets = bazelConfig.targets;
    # bazelFlags and bazelFetchFlags reach Bazel through the environment
    # (word splitting, no shell evaluation); bazelBuildFlags are spliced into
    # buildBazelPackage's build phase as text, so each is shell-quoted here
    # (pins.nix has already refused values that are not flags).
    bazelFlags = bazelConfig.flags;
    bazelBuildFlags = map lib.escapeShellArg bazelConfig.buildFlags;
    bazelFetchFlags = bazelConfig.fetchFlags;
    # XLA registers rules_ml_toolchain's compiler and sysroot; Nix's cc flags
    # would only confuse it.
    dontAddBazelOpts = true;
    removeRulesCC = false;
    removeLocal = false;
    inherit (bazelConfig) env;
    # Hours of compilation and tens of GB: only on builders meant for it.
    requiredSystemFeatures = [ "big-parallel" ];

    fetchAttrs = {
      inherit (depsPin) hash;
      bazelTargets = bazelConfig.fetchTargets;
      preConfigure = configure (if bazelConfig.configureArgs == null then null else bazelConfig.configureArgs.fetch);
      # buildBazelPackage's normalisation, extended: repository aliases kept
      # (materialised), CUDA/ROCm repositories generated from store paths
      # dropped, store paths scrubbed from files and refused in symlinks.
      installPhase = ''
        runHook preInstall
        ext="$bazelOut/external"
        chmod -R +w "$ext"
        ${removeLocalRepositories}
        # Bazel recreates these itself; they name the build host.
        for r in bazel_tools embedded_jdk local_config_cc local_config_python local_config_sh \
                 local_config_xcode local_execution_config_python local_jdk; do
          rm -rf "$ext/$r" "$ext/@$r.marker"
        done
        # Markers hold hashes of the fetch environment; enableNixHacks trusts empty ones.
        find "$ext" -name '@*.marker' -exec sh -c 'echo > "$1"' _ {} \;
        find "$ext" -type d \( -name .git -o -name .svn -o -name .hg \) -prune -exec rm -rf {} +
        # Top-level repository symlinks (hermetic LLVM, sysroot, CUDA aliases)
        # point into the temporary build tree: materialise directories, drop the rest.
        find "$ext" -maxdepth 1 -type l | while read -r link; do
          target="$(readlink -f "$link")"
          rm "$link"
          if [ -d "$target" ]; then
            cp -rL "$target" "$link"
          else
            rm -f "$ext/@$(basename "$link").marker"
          fi
        done
        chmod -R +w "$ext"
        # Remaining symlinks: relative to the build tree, restored by buildBazelPackage.
        find "$ext" -type l | while read -r link; do
          target="$(readlink "$link" | sed "s,$NIX_BUILD_TOP,NIX_BUILD_TOP,")"
          ln -sfn "$target" "$link"
        done
        # Byte code and rules_go's live list of Go releases differ per fetch
        # (nixpkgs' bazel_7 vendor archive deletes the same file).
        find "$ext" -name '*.pyc' -delete
        find "$ext" -path '*go_sdk*/versions.json' -delete
        # A fixed output may reference no store path: scrub files, refuse links.
        find "$ext" -type f -exec sed -i 's|/nix/store/[a-z0-9]\{32\}-|/nix/store/eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee-|g' {} +
        remaining="$(
          { find "$ext" -type f -exec grep -aohE '/nix/store/[a-z0-9]{32}-' {} + || true
            find "$ext" -type l -exec sh -c 'printf "%s -> %s\n" "$1" "$(readlink "$1")"' _ {} \; \
              | grep -E '/nix/store/[a-z0-9]{32}-' || true
          } | grep -vF '/nix/store/eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee-' | sort -u || true
        )"
        if [ -n "$remaining" ]; then
          printf '%s\n' "$remaining" >&2
          echo "pjrtpkgs: store paths left in the Bazel dependency archive (above); add the repository that holds them to the removed ones in nix/source-plugin.nix" >&2
          exit 1
        fi
        echo '${bazel.name}' > "$ext/.nix-bazel-version"
        # A plain tar, as buildBazelPackage writes and unpacks it since
        # NixOS/nixpkgs#497817: Nix's reference scan of the fixed output
        # (allowedRequisites = []) must see every byte.
        (cd "$bazelOut" && tar cf "$out" --sort=name --mtime=@1 --owner=0 --group=0 --numeric-owner external/)
        runHook postInstall
      '';
    };

    buildAttrs = {
      outputs = [ "out" ];

      nativeBuildInputs = [
        autoPatchelfHook
        file
        gitMinimal
        patchelf
        pythonEnv
        which
      ];
      buildInputs = hermeticToolLibraries ++ runtimeLibs;

      postConfigure =
        lib.optionalString (isCuda || isRocm) removeLocalRepositories
        + lib.optionalString isCuda ''
          # ptxas, nvlink and libdevice at run time from the toolkit it was built with.
          substituteInPlace xla/debug_options_flags.cc \
            --replace-fail 'opts.set_xla_gpu_cuda_data_dir("./cuda_sdk_lib");' \
              'opts.set_xla_gpu_cuda_data_dir("${lib.getBin cudaPackages.cuda_nvcc}");'
          # --define reaches exec configurations where Starlark flags do not.
          substituteInPlace "$bazelOut/external/rules_ml_toolchain/common/BUILD" \
            --replace-fail 'flag_values = {":enable_cuda": "True"},' 'define_values = {"using_cuda_nvcc": "true"},' \
            --replace-fail 'flag_values = {":enable_cuda": "False"},' 'define_values = {"using_cuda_nvcc": "false"},'
          # The include scanner sees the store paths behind the local CUDA view.
          substituteInPlace "$bazelOut/external/rules_ml_toolchain/third_party/rules_cc_toolchain/toolchain_config.bzl" \
            --replace-fail 'abi_libc_version = "unknown",' 'abi_libc_version = "unknown",
              cxx_builtin_include_directories = ${builtins.toJSON (map (root: "${root}/include") cudaLocal.cudaRoots)},'
          # Exec tools linked against CUDA run with XLA's hermetic build-only driver.
          echo "build --action_env=LD_LIBRARY_PATH=${hostRpath}:$bazelOut/external/cuda_driver/lib" >> xla_configure.bazelrc
        ''
        # Avoid a repository-cache validation refetch after marker normalisation.
        + ''
          if [ -d "$bazelOut/external/riegeli" ]; then
            touch "$bazelOut/external/riegeli/WORKSPACE"
          fi
          for f in python/private/py_runtime_info.bzl python/private/runtime_env_toolchain.bzl; do
            substituteInPlace "$bazelOut/external/rules_python/$f" \
              --replace-fail '"#!/usr/bin/env python3"' '"#!${pythonEnv.interpreter}"'
          done
          substituteInPlace "$bazelOut/external/rules_python/python/private/stage1_bootstrap_template.sh" \
            --replace-fail '#!/usr/bin/env bash' '#!${stdenv.shell}'
          patchShebangs "$bazelOut/external/rules_ml_toolchain"
        ''
        # The downloaded hermetic tools (LLVM, Python, xxd) are Ubuntu builds;
        # the archive's scrub broke the fetch-time patchelf of Python.
        + ''
          nix_rpath="${lib.makeLibraryPath hermeticToolLibraries}"
          for tool_dir in "$bazelOut"/external/llvm*_linux_* "$bazelOut"/external/xxd "$bazelOut"/external/python_3_*; do
            [ -d "$tool_dir" ] || continue
            rpath="$nix_rpath"
            case "$tool_dir" in */llvm*) rpath="$tool_dir/lib:$rpath" ;; esac
            patchShebangs "$tool_dir"
            find "$tool_dir" -type f -executable -print0 | while IFS= read -r -d "" tool; do
              file "$tool" | grep -q 'ELF.*dynamically linked' || continue
              if patchelf --print-interpreter "$tool" >/dev/null 2>&1; then
                patchelf --set-interpreter '${stdenv.cc.bintools.dynamicLinker}' "$tool"
              fi
              old="$(patchelf --print-rpath "$tool")"
              patchelf --set-rpath "''${old:+$old:}$rpath" "$tool"
            done
          done
        '';

      bazelOutput = bazelConfig.output;
      inherit (layout)
        libName
        versionInfoJson
        xlaHeaders
        ;
      inherit (layout) installPhase;
      # XLA's CUDA build dlopens the NVSHMEM it was built with; nixpkgs'
      # NVSHMEM has another transport SONAME (nixpkgs' xla does the same).
      postInstall = lib.optionalString isCuda nvshmemInstall;

      # The plugin is a shared library: autoPatchelf adds runtimeDependencies
      # to dynamic executables only (auto-patchelf.py), so dlopen'ed libraries
      # and the host driver directory go through appendRunpaths, which every
      # patched file gets, after autoPatchelf has rewritten the RUNPATH.
      appendRunpaths =
        [ "$ORIGIN" ]
        ++ map (p: "${p}/lib") runtimeLibs
        ++ lib.optional isCuda "${addDriverRunpath.driverLink}/lib";
      autoPatchelfIgnoreMissingDeps = lib.optional isCuda "libcuda.so.1";
    };

    passthru = {
      inherit bazelConfig backend;
      bazelVersion = bazel.version;
      # Outside what nixpkgs' xla recipe covers (CPU and CUDA 12 on
      # x86_64-linux): CUDA 13, ROCm 7 and aarch64-linux are extensions of
      # the same recipe that nobody has built yet.
      experimental = !(system == "x86_64-linux" && (backend == "cpu" || backend == "cuda12"));
      pjrtApiVersion = pins.xla.pjrtApiVersion;
      pluginLib = "lib/${layout.libName}";
      stale = depsPin.stale;
    }
    // lib.optionalAttrs isCuda { inherit cudaLocal nvshmemInstall; }
    // lib.optionalAttrs isRocm { inherit rocmTree; };

    meta = {
      description = "PJRT ${backend} plugin built from XLA ${pins.xla.commit}";
      license =
        if isCuda then
          [
            lib.licenses.asl20
            lib.licenses.unfree
          ]
        else
          lib.licenses.asl20;
      platforms = pjrtLib.linuxSystems;
    };
  };
  bazelMajor = lib.versions.major;
in
# Only another Bazel MAJOR version stops evaluation (XLA's WORKSPACE build
# needs its major); a patch or minor release of nixpkgs' bazel_7 that the
# pin does not record yet is a warning, and version_info.json records the
# Bazel that really ran. `cargo xtask pins check` warns on the same kind of
# difference between the pin and XLA's .bazelversion.
assert lib.assertMsg (bazelMajor bazel.version == bazelMajor pins.toolchains.bazel.version)
  "pjrtpkgs: nixpkgs' ${pins.toolchains.bazel.attribute} is Bazel ${bazel.version}, another major version than pins.toml [toolchains.bazel] version ${pins.toolchains.bazel.version} (XLA's .bazelversion: ${pins.xla.bazelVersion}); point [toolchains.bazel] nixpkgs_attribute at the nixpkgs Bazel of XLA's major";
lib.warnIf (bazel.version != pins.toolchains.bazel.version)
  "pjrtpkgs: nixpkgs' ${pins.toolchains.bazel.attribute} is Bazel ${bazel.version}, pins.toml [toolchains.bazel] version says ${pins.toolchains.bazel.version} (XLA's .bazelversion: ${pins.xla.bazelVersion}); the source builds use ${bazel.version} and record it in version_info.json. Update [toolchains.bazel] version, then `cargo xtask deps-hash refresh` (the dependency archive names its Bazel)."
# The plugin must not keep Bazel, its dependency archive or the source alive.
plugin.overrideAttrs (previous: {
  disallowedReferences = [
    previous.deps
    xla-src
    bazel
  ];
})
