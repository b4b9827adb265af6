# The only reader of pins.toml. Everything else in nix/ receives the plain
# values this file returns, so a change of schema is handled here once.
#
#   import ./pins.nix { }                      # the project's pins.toml
#   import ./pins.nix { pinsFile = ./x.toml; } # tests: any other copy
{
  pinsFile ? ../pins.toml,
}:
let
  raw = builtins.fromTOML (builtins.readFile pinsFile);

  # An unknown or stale hash is spelled as this placeholder in pins.toml;
  # Nix rejects it with a mismatch naming the real hash (see
  # `cargo xtask deps-hash refresh`).
  placeholderHash = "sha256-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";

  prebuiltEntry = name: entry: {
    inherit name;
    inherit (entry) version backend;
    pjrtApiVersion = entry.pjrt_api_version or null;
    # The XLA commit the wheel was built from, when the pin records it.
    xlaCommit = entry.xla_commit or null;
    platforms = builtins.mapAttrs (_system: p: {
      inherit (p) url sha256 library;
    }) (entry.platforms or { });
  };

  # [cuda12] / [cuda13]: the same fields for each CUDA major version.
  cudaPin = t: {
    cudaVersion = t.cuda_version;
    cudnnVersion = t.cudnn_version;
    ncclVersion = t.nccl_version;
    nvshmemVersion = t.nvshmem_version or null;
    attribute = t.nixpkgs_attribute;
    computeCapabilities = t.compute_capabilities;
  };

  # One [bazel_deps.<backend>.<system>] table. A table without `hash` is an
  # error, not a silent placeholder (as in `cargo xtask pins check`); a
  # missing table is reported by source-plugin.nix.
  bazelDepsEntry =
    backend: system: d:
    let
      hash =
        d.hash or (throw "pjrtpkgs: pins.toml [bazel_deps.${backend}.${system}] has no `hash`; write the placeholder \"${placeholderHash}\" or run `cargo xtask deps-hash refresh ${backend} --system ${system}`");
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
    inherit (raw.xla) repository commit hash;
    pjrtApiVersion = raw.xla.pjrt_api_version;
    bazelVersion = raw.xla.bazel_version;
    date = raw.xla.date or null;
  };

  toolchains = {
    bazel = {
      inherit (raw.toolchains.bazel) version;
      attribute = raw.toolchains.bazel.nixpkgs_attribute;
    };
  };

  cuda12 = cudaPin raw.cuda12;
  cuda13 = cudaPin raw.cuda13;

  rocm7 = {
    distroVersion = raw.rocm7.distro_version;
    attribute = raw.rocm7.nixpkgs_attribute;
    gpuTargets = raw.rocm7.gpu_targets;
  };

  prebuilt = builtins.mapAttrs prebuiltEntry (raw.prebuilt or { });

  # bazelDeps.<backend>.<system> = { hash; xlaCommit; stale; }
  bazelDeps = builtins.mapAttrs (
    backend: builtins.mapAttrs (bazelDepsEntry backend)
  ) (raw.bazel_deps or { });
}
