# The only reader of pins.toml. Everything else in nix/ receives the plain
# values this file returns, so a change of schema is handled here once.
#
#   import ./pins.nix { }                      # the project's pins.toml
#   import ./pins.nix { pinsFile = ./x.toml; } # tests: any other copy
#
# Every value that reaches a builder's shell script (Bazel flags, which
# nixpkgs' buildBazelPackage splices into its build phase unquoted; library
# names; paths inside wheels) is checked here against the same formats
# `cargo xtask pins check` enforces, so a hostile or mistyped pins.toml
# stops evaluation with the key it is about instead of running as shell.
{
  pinsFile ? ../pins.toml,
}:
let
  raw = builtins.fromTOML (builtins.readFile pinsFile);

  # An unknown or stale hash is spelled as this placeholder in pins.toml;
  # Nix rejects it with a mismatch naming the real hash (see
  # `cargo xtask deps-hash refresh`).
  placeholderHash = "sha256-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";

  # name -> POSIX extended regular expression the whole value must match.
  formats = {
    commit = {
      re = "[0-9a-f]{40}";
      what = "a full commit id (40 lowercase hex digits)";
    };
    sri = {
      re = "sha256-[A-Za-z0-9+/]{43}=";
      what = "an SRI sha256 hash";
    };
    sha256 = {
      re = "[0-9a-f]{64}";
      what = "a hex sha256";
    };
    version = {
      re = "[0-9]+([.][0-9]+)+";
      what = "a dotted numeric version (7.7.0)";
    };
    apiVersion = {
      re = "[0-9]+[.][0-9]+|unknown";
      what = "a PJRT API version MAJOR.MINOR or \"unknown\"";
    };
    attribute = {
      re = "[A-Za-z_][A-Za-z0-9_'-]*([.][A-Za-z_][A-Za-z0-9_'-]*)*";
      what = "a nixpkgs attribute name";
    };
    capability = {
      re = "(sm|compute)_[1-9][0-9]{1,2}[af]?";
      what = "sm_XX or compute_XX (sm_90, sm_100a, compute_120)";
    };
    gfx = {
      re = "gfx[0-9][0-9a-f]{2,3}(:[a-z0-9]+[+-])*";
      what = "an AMDGPU target (gfx90a, gfx942, gfx1100)";
    };
    distro = {
      re = "rocm_[0-9]+([.][0-9]+)*(_[A-Za-z0-9]+)?";
      what = "a ROCm distribution (rocm_7.10.0_gfx90X)";
    };
    setting = {
      re = "HERMETIC_[A-Z0-9_]+";
      what = "a HERMETIC_* --repo_env setting of XLA's bazelrc";
    };
    library = {
      re = "[A-Za-z0-9_][A-Za-z0-9_.-]*";
      what = "a library name without directory (libnvshmem_host)";
    };
    url = {
      re = "https://[A-Za-z0-9._~:/?#@!&+,;=%-]+";
      what = "an https URL";
    };
    memberPath = {
      re = "[A-Za-z0-9_+-][A-Za-z0-9._+-]*(/[A-Za-z0-9_+-][A-Za-z0-9._+-]*)*";
      what = "a relative path inside the wheel";
    };
  };

  # `value` when it has the format, else a throw naming the key.
  check =
    format: key: value:
    if builtins.isString value && builtins.match formats.${format}.re value != null then
      value
    else
      throw "pjrtpkgs: pins.toml `${key}` = ${builtins.toJSON value} is not ${formats.${format}.what}; fix it (`cargo xtask pins check` names every such problem)";
  checkList =
    format: key: values:
    if !(builtins.isList values) || values == [ ] then
      throw "pjrtpkgs: pins.toml `${key}` must be a non-empty list (explicit targets, never probed)"
    else
      map (check format key) values;

  # [prebuilt.<name>.runtime] (the NVIDIA wheels for `prebuilt fetch
  # --with-runtime`) is not read: the Nix packages take CUDA from nixpkgs
  # and NVSHMEM from [cudaNN.nvshmem_wheel].
  prebuiltEntry = name: entry: {
    inherit name;
    inherit (entry) version backend;
    pjrtApiVersion =
      if entry ? pjrt_api_version then
        check "apiVersion" "prebuilt.${name}.pjrt_api_version" entry.pjrt_api_version
      else
        null;
    # The XLA commit the wheel was built from, when the pin records it.
    xlaCommit = if entry ? xla_commit then check "commit" "prebuilt.${name}.xla_commit" entry.xla_commit else null;
    platforms = builtins.mapAttrs (system: p: {
      url = check "url" "prebuilt.${name}.platforms.${system}.url" p.url;
      sha256 = check "sha256" "prebuilt.${name}.platforms.${system}.sha256" p.sha256;
      library = check "memberPath" "prebuilt.${name}.platforms.${system}.library" p.library;
    }) (entry.platforms or { });
  };

  # [cuda12] / [cuda13]: the same fields for each CUDA major version.
  cudaPin =
    section: t:
    let
      key = field: "${section}.${field}";
    in
    {
      cudaVersion = check "version" (key "cuda_version") t.cuda_version;
      cudnnVersion = check "version" (key "cudnn_version") t.cudnn_version;
      ncclVersion = check "version" (key "nccl_version") t.nccl_version;
      nvshmemVersion = check "version" (key "nvshmem_version") t.nvshmem_version;
      attribute = check "attribute" (key "nixpkgs_attribute") t.nixpkgs_attribute;
      computeCapabilities = checkList "capability" (key "compute_capabilities") t.compute_capabilities;
      # XLA settings given differently on purpose: setting -> why.
      overrides = builtins.mapAttrs (setting: why: builtins.seq (check "setting" (key "overrides") setting) why) (
        t.overrides or { }
      );
      # NVIDIA's NVSHMEM wheel for the prebuilt plugins, per Nix system.
      nvshmemWheel = builtins.mapAttrs (system: w: {
        url = check "url" (key "nvshmem_wheel.${system}.url") w.url;
        sha256 = check "sha256" (key "nvshmem_wheel.${system}.sha256") w.sha256;
      }) (t.nvshmem_wheel or { });
    };

  # One [bazel_deps.<backend>.<system>] table. A table without `hash` is an
  # error, not a silent placeholder (as in `cargo xtask pins check`); a
  # missing table is reported by source-plugin.nix.
  bazelDepsEntry =
    backend: system: d:
    let
      hash =
        if d ? hash then
          check "sri" "bazel_deps.${backend}.${system}.hash" d.hash
        else
          throw "pjrtpkgs: pins.toml [bazel_deps.${backend}.${system}] has no `hash`; write the placeholder \"${placeholderHash}\" or run `cargo xtask deps-hash refresh ${backend} --system ${system}`";
    in
    {
      inherit hash;
      xlaCommit = d.xla_commit or null;
      stale = hash == placeholderHash || (d.xla_commit or null) != raw.xla.commit;
    };
in
{
  inherit placeholderHash;
  schemaVersion = raw.schema_version;

  xla = {
    repository = check "url" "xla.repository" raw.xla.repository;
    commit = check "commit" "xla.commit" raw.xla.commit;
    hash = check "sri" "xla.hash" raw.xla.hash;
    pjrtApiVersion = raw.xla.pjrt_api_version;
    bazelVersion = check "version" "xla.bazel_version" raw.xla.bazel_version;
    date = raw.xla.date or null;
  };

  toolchains = {
    bazel = {
      version = check "version" "toolchains.bazel.version" raw.toolchains.bazel.version;
      attribute = check "attribute" "toolchains.bazel.nixpkgs_attribute" raw.toolchains.bazel.nixpkgs_attribute;
    };
  };

  cuda12 = cudaPin "cuda12" raw.cuda12;
  cuda13 = cudaPin "cuda13" raw.cuda13;

  rocm7 = {
    distroVersion = check "distro" "rocm7.distro_version" raw.rocm7.distro_version;
    attribute = check "attribute" "rocm7.nixpkgs_attribute" raw.rocm7.nixpkgs_attribute;
    gpuTargets = checkList "gfx" "rocm7.gpu_targets" raw.rocm7.gpu_targets;
  };

  # What XLA's rules_ml_toolchain (at the commit its WORKSPACE pins) says
  # the Nix layer must follow.
  rulesMlToolchain = {
    commit = check "commit" "rules_ml_toolchain.commit" raw.rules_ml_toolchain.commit;
    nvshmemLibraries = checkList "library" "rules_ml_toolchain.nvshmem_libraries" raw.rules_ml_toolchain.nvshmem_libraries;
  };

  prebuilt = builtins.mapAttrs prebuiltEntry (raw.prebuilt or { });

  # bazelDeps.<backend>.<system> = { hash; xlaCommit; stale; }
  bazelDeps = builtins.mapAttrs (backend: builtins.mapAttrs (bazelDepsEntry backend)) (raw.bazel_deps or { });
}
