# Pure functions of plain values: no nixpkgs, no derivations. Tested with
# `nix-instantiate --eval` and through the flake in xtask/tests/nix_flake.rs.
let
  inherit (builtins)
    concatStringsSep
    attrNames
    filter
    hasAttr
    listToAttrs
    ;
in
rec {
  # Systems the flake describes. Source builds and Linux wheels exist for
  # both Linux systems; macOS only where a plugin wheel exists for it.
  linuxSystems = [
    "x86_64-linux"
    "aarch64-linux"
  ];

  sourceBackends = [
    "cpu"
    "cuda12"
    "cuda13"
    "rocm7"
  ];

  # The source builds a system gets. ROCm is x86_64 only: XLA's ROCm
  # configurations and the only ROCm 7 wheel target x86_64-linux.
  sourceBackendsFor = system: builtins.filter (b: b != "rocm7" || system == "x86_64-linux") sourceBackends;

  # [prebuilt.<name>] (a PyPI package name) -> its own flake package.
  prebuiltAttrName = name: "prebuilt-${name}";

  # The per-backend package (`pjrt-cpu-bin`, ..., `pjrt-tpu`): TPU has no
  # source build, so its name carries no `-bin`.
  backendAttrName = backend: if backend == "tpu" then "pjrt-tpu" else "pjrt-${backend}-bin";

  # The systems at least one prebuilt plugin is pinned for.
  prebuiltSystems =
    prebuilt: unique (builtins.concatMap (p: attrNames p.platforms) (builtins.attrValues prebuilt));

  unique = foldl' (acc: x: if builtins.elem x acc then acc else acc ++ [ x ]) [ ];
  foldl' = builtins.foldl';

  # A PJRT API version that is "major.minor" (pins may say "unknown").
  knownApiVersion = v: v != null && builtins.match "[0-9]+[.][0-9]+" v != null;

  # Of several wheels for one backend, the per-backend package is the one
  # with the newest known PJRT API version; ties go to the first name.
  newestWheel =
    entries:
    foldl' (
      best: e:
      if best == null then
        e
      else if knownApiVersion e.pjrtApiVersion
        && (!knownApiVersion best.pjrtApiVersion || builtins.compareVersions e.pjrtApiVersion best.pjrtApiVersion > 0)
      then
        e
      else
        best
    ) null entries;

  # The prebuilt packages for `system`: one `prebuilt-<name>` per pinned
  # wheel, plus the per-backend alias `pjrt-<backend>-bin` / `pjrt-tpu`.
  prebuiltFor =
    prebuilt: system:
    let
      here = map (name: prebuilt.${name} // { platform = prebuilt.${name}.platforms.${system}; }) (
        filter (name: hasAttr system prebuilt.${name}.platforms) (attrNames prebuilt)
      );
      backends = unique (map (e: e.backend) here);
    in
    {
      wheels = listToAttrs (
        map (e: {
          name = prebuiltAttrName e.name;
          value = e;
        }) here
      );
      aliases = listToAttrs (
        map (backend: {
          name = backendAttrName backend;
          value = prebuiltAttrName (newestWheel (filter (e: e.backend == backend) here)).name;
        }) backends
      );
    };

  # Bazel's name for the host CPU, as XLA's pjrt_x86 / pjrt_aarch64 configs set it.
  bazelCpu =
    system:
    {
      x86_64-linux = "k8";
      aarch64-linux = "aarch64";
    }
    .${system} or (throw "pjrtpkgs: no source build for ${system}; source builds exist for ${concatStringsSep ", " linuxSystems}");

  # The Bazel invocation of one source build, as data:
  #   { targets; fetchTargets; flags; fetchFlags; buildFlags; configureArgs; env; output; }
  # `flags` go to both the dependency fetch and the build (buildBazelPackage's
  # bazelFlags), `fetchFlags` / `buildFlags` to one of them; `configureArgs`
  # are XLA's configure.py arguments per phase ({ fetch; build; }, or null
  # where nixpkgs' xla recipe does not run configure.py either).
  # `paths` holds store paths (strings) and versions the backend needs:
  #   every backend: { dynamicLinker; hostRpath; }
  #   cuda*:  + { cuda; cudnn; nccl; cudaRelease; cudnnRelease; }
  #           (the release labels of nixpkgs' CUDA/cuDNN manifests)
  #   rocm7:  + { rocm; clang; }
  # Everything a backend needs is passed in explicitly; nothing is probed.
  bazelConfig =
    {
      backend,
      system,
      pins,
      paths,
    }:
    let
      isCuda = backend == "cuda12" || backend == "cuda13";
      common = [
        # Release build, as XLA's pjrt_release config.
        "-c"
        "opt"
        # XLA still describes its dependencies in WORKSPACE; bzlmod would
        # reach the Bazel Central Registry.
        "--noenable_bzlmod"
        # Bazel's own sandbox cannot run the downloaded hermetic tools inside
        # the Nix sandbox; the Nix sandbox still isolates the whole build.
        "--spawn_strategy=local"
        "--genrule_strategy=local"
        # Host CPU, as XLA's pjrt_x86 / pjrt_aarch64 configs.
        "--cpu=${bazelCpu system}"
        # Missing includes in XLA's bundled LLVM headers (as nixpkgs' xla).
        "--cxxopt=-include"
        "--cxxopt=cstdint"
        "--host_cxxopt=-include"
        "--host_cxxopt=cstdint"
        # Tools built for the exec configuration run during the build; they
        # need the Nix dynamic linker and libraries to start at all.
        "--host_linkopt=-Wl,--dynamic-linker=${paths.dynamicLinker}"
        "--host_linkopt=-Wl,-rpath,${paths.hostRpath}"
        # Read by the rules_python patch (nix/patches/): the downloaded
        # hermetic Python gets this interpreter before Bazel runs it.
        "--repo_env=NIX_DYNAMIC_LINKER=${paths.dynamicLinker}"
        # Exclude targets that XLA itself does not build in open source.
        "--build_tag_filters=-mobile,-ios,-no_oss${
          if backend == "cpu" then
            ",-gpu"
          else if backend == "rocm7" then
            ",-cuda-only,-oneapi-only"
          else
            ",-rocm-only,-oneapi-only"
        }"
        # Never upload or consult remote caches: the build must be local and offline.
        "--noremote_accept_cached"
        "--remote_cache="
      ];

      cudaPin = pins.${backend};
      cuda = [
        # XLA's pjrt_cudaNN configs: hermetic CUDA built with NVCC. This
        # includes XLA's `cuda_version` config, whose versions are CUDA 12's
        # (NVSHMEM 3.2.5 even for CUDA 13): every HERMETIC_* setting of the
        # pjrt_cudaNN config is therefore given again below, from pins.toml,
        # where it records XLA's own value.
        "--config=cuda_nvcc"
        # Plugins must not bundle the CUDA libraries (pjrt_release).
        "--@local_config_cuda//cuda:include_cuda_libs=false"
        # Bazel 7 resets Starlark flags in exec transitions; the legacy define
        # reaches rules_ml_toolchain there too (with the BUILD rewrite in
        # source-plugin.nix), as in nixpkgs' xla.
        "--define=using_cuda_nvcc=true"
        # The release labels of the nixpkgs manifests actually given (12.9.1),
        # not a component's package version (cuda_cudart 12.9.79).
        # (Deliberate overrides of XLA's values: [cudaNN.overrides].)
        "--repo_env=HERMETIC_CUDA_VERSION=${paths.cudaRelease}"
        "--repo_env=HERMETIC_CUDNN_VERSION=${paths.cudnnRelease}"
        # As XLA's pjrt_cudaNN sets them ([cudaNN] of pins.toml). NVSHMEM is
        # XLA's hermetic download (no local path): its version selects the
        # archive, and the fetch needs the right one.
        "--repo_env=HERMETIC_NVSHMEM_VERSION=${cudaPin.nvshmemVersion}"
        "--repo_env=HERMETIC_NCCL_VERSION=${cudaPin.ncclVersion}"
        # Hermetic CUDA pointed at nixpkgs' trees instead of downloads.
        "--repo_env=LOCAL_CUDA_PATH=${paths.cuda}"
        "--repo_env=LOCAL_CUDNN_PATH=${paths.cudnn}"
        "--repo_env=LOCAL_NCCL_PATH=${paths.nccl}"
      ];

      rocm = [
        # XLA's rocm_base config: @local_config_rocm's crosstool, with
        # clang_local turning C++ toolchain resolution off so that
        # --crosstool_top (and so CLANG_COMPILER_PATH) is what compiles.
        "--config=rocm_base"
        "--repo_env=TF_NEED_ROCM=1"
        # Host code with ROCm's clang from nixpkgs (XLA's official config
        # hard-codes /usr/lib/llvm-18); rocm_configure.bzl's find_cc reads it.
        "--action_env=TF_ROCM_CLANG=1"
        "--action_env=CLANG_COMPILER_PATH=${paths.clang}/bin/clang"
        # One joined ROCm tree from nixpkgs; never /opt/rocm. (Not
        # TF_ROCM_MULTIPLE_PATHS: rocm_configure.bzl fails on any relative
        # path present in two of them, which nixpkgs' outputs all share.)
        "--repo_env=ROCM_PATH=${paths.rocm}"
        # Explicit targets from pins.toml: rocm_agent_enumerator never runs.
        "--repo_env=TF_ROCM_AMDGPU_TARGETS=${concatStringsSep "," pins.rocm7.gpuTargets}"
      ];

      backendFlags =
        {
          cpu = [ ];
          cuda12 = cuda;
          cuda13 = cuda;
          rocm7 = rocm;
        }
        .${backend} or (throw "pjrtpkgs: unknown backend '${backend}'; known: ${concatStringsSep ", " sourceBackends}");

      # The pinned capabilities for the build; the fetch uses one fixed
      # capability so that the deps archive (and its hash) does not change
      # with them (as nixpkgs' xla: local_config_cuda is regenerated offline).
      buildCapabilities = if isCuda then cudaPin.computeCapabilities else [ ];
      fetchCapabilities = if isCuda then [ "sm_80" ] else [ ];
      capabilityFlags =
        caps: if isCuda then [ "--repo_env=HERMETIC_CUDA_COMPUTE_CAPABILITIES=${concatStringsSep "," caps}" ] else [ ];

      # XLA's configure.py (writes xla_configure.bazelrc, imported by
      # .bazelrc); without --clang_path it selects rules_ml_toolchain's
      # hermetic Clang. nixpkgs' xla runs it for CPU and CUDA; its ROCm mode
      # selects rocm_clang_official (/usr/lib/llvm-18, lld), so ROCm relies
      # on the flags above instead.
      configure =
        caps:
        if backend == "cpu" then
          [
            "--backend=CPU"
            "--host_compiler=CLANG"
          ]
        else if isCuda then
          [
            "--backend=CUDA"
            "--host_compiler=CLANG"
            "--cuda_compiler=NVCC"
            "--cuda_compute_capabilities=${concatStringsSep "," caps}"
            "--cuda_version=${paths.cudaRelease}"
            "--cudnn_version=${paths.cudnnRelease}"
            "--local_cuda_path=${paths.cuda}"
            "--local_cudnn_path=${paths.cudnn}"
            "--local_nccl_path=${paths.nccl}"
            "--nccl"
          ]
        else
          null;

      # XLA has one CPU plugin target and one GPU target for CUDA and ROCm.
      plugin = if backend == "cpu" then "pjrt_c_api_cpu_plugin.so" else "pjrt_c_api_gpu_plugin.so";
      targets = [ "//xla/pjrt/c:${plugin}" ];
    in
    {
      inherit targets;
      # nccl_archive is first requested once actions run; `build --nobuild`
      # would leave it out of the offline archive (as nixpkgs' xla).
      fetchTargets = targets ++ (if isCuda then [ "@nccl_archive//..." ] else [ ]);
      flags = common ++ backendFlags;
      fetchFlags = capabilityFlags fetchCapabilities;
      buildFlags = capabilityFlags buildCapabilities;
      configureArgs =
        if configure buildCapabilities == null then
          null
        else
          {
            fetch = configure fetchCapabilities;
            build = configure buildCapabilities;
          };
      # Environment of the Bazel process: nothing that varies between hosts.
      env = {
        # XLA's configure scripts read these; explicit so nothing is guessed.
        TF_NEED_CUDA = if isCuda then "1" else "0";
        TF_NEED_ROCM = if backend == "rocm7" then "1" else "0";
      };
      # The file Bazel leaves under bazel-bin for the target.
      output = "xla/pjrt/c/${plugin}";
    };

  # Name of the installed library, the same for source and prebuilt packages.
  pluginLibName = backend: "pjrt_c_api_${backend}_plugin.so";

  # The one layout of every plugin package, source-built or prebuilt:
  #   lib/pjrt_c_api_<backend>_plugin.so
  #   include/xla/pjrt/c/pjrt_c_api*.h  XLA's headers (`xlaHeaders`: a directory, or "" when unknown)
  #   include/pjrt_c_api*.h             else what `fallbackHeaders` (shell) copies there, if anything
  #   share/pjrt/version_info.json      `versionInfo` (see below)
  # Returns the derivation attributes that install it (`libName`,
  # `versionInfoJson` and `xlaHeaders` are passed through the environment);
  # `prepare` runs first, `library` is a shell word naming the plugin file.
  pluginLayout =
    {
      backend,
      versionInfo,
      library,
      xlaHeaders,
      fallbackHeaders ? "",
      prepare ? "",
    }:
    {
      libName = pluginLibName backend;
      versionInfoJson = builtins.toJSON versionInfo;
      inherit xlaHeaders;
      installPhase = ''
        runHook preInstall
        ${prepare}
        install -Dm755 ${library} "$out/lib/$libName"
        mkdir -p "$out/include" "$out/share/pjrt"
        if [ -n "$xlaHeaders" ]; then
          mkdir -p "$out/include/xla/pjrt/c"
          cp "$xlaHeaders"/pjrt_c_api*.h "$out/include/xla/pjrt/c/"
        ${if fallbackHeaders == "" then "" else "else\n  ${fallbackHeaders}"}
        fi
        printf '%s\n' "$versionInfoJson" > "$out/share/pjrt/version_info.json"
        runHook postInstall
      '';
    };

  # Contents of share/pjrt/version_info.json.
  versionInfo =
    {
      backend,
      origin,
      xlaCommit,
      pjrtApiVersion,
      toolchains ? { },
      extra ? { },
    }:
    {
      schema = 1;
      inherit backend origin toolchains;
      xla_commit = xlaCommit;
      pjrt_api_version = pjrtApiVersion;
    }
    // extra;
}
