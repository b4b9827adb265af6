# The pjrtpkgs package set for one system. Used by the flake's `packages`
# and by `overlays.default`; receives pins as plain values (nix/pins.nix) and
# never reads pins.toml itself.
#
# Two nixpkgs instances: `pkgs` (the caller's config; in the flake the
# default one, no unfree packages) builds everything free (CPU, ROCm, the
# tools); `pkgsUnfree` (in the flake allowUnfree + cudaSupport, without which
# every CUDA redistributable is meta.broken) builds CUDA and TPU. The CPU
# outputs therefore never evaluate anything of CUDA or anything unfree.
{
  pkgs,
  pkgsUnfree ? pkgs,
  pins,
  pjrtLib ? import ./lib.nix,
  projectSource,
}:
let
  inherit (pkgs) lib;
  system = pkgs.stdenv.hostPlatform.system;

  xla-src = pkgs.callPackage ./xla-src.nix { xlaPin = pins.xla; };

  isCuda = backend: backend == "cuda12" || backend == "cuda13";
  # The instance a backend's packages come from: CUDA (unfree, needs
  # cudaSupport) and TPU (unfree) from pkgsUnfree, the rest from pkgs.
  pkgsFor = backend: if isCuda backend || backend == "tpu" then pkgsUnfree else pkgs;

  # The toolchains each GPU backend resolves against, by the attribute
  # pins.toml names ([cuda12] / [cuda13] / [rocm7] nixpkgs_attribute).
  gpuSets = {
    cuda12 = pkgsUnfree.${pins.cuda12.attribute};
    cuda13 = pkgsUnfree.${pins.cuda13.attribute};
    rocm7 = pkgs.${pins.rocm7.attribute};
  };
  # The `cudaPackages` / `rocmPackages` arguments of a plugin of `backend`.
  gpuArgs = backend: {
    cudaPackages = if isCuda backend then gpuSets.${backend} else null;
    rocmPackages = if backend == "rocm7" then gpuSets.rocm7 else null;
  };

  prebuiltPins = pjrtLib.prebuiltFor pins.prebuilt system;
  wheelPackages = builtins.mapAttrs (
    _attr: entry:
    (pkgsFor entry.backend).callPackage ./prebuilt-plugin.nix (
      gpuArgs entry.backend
      // {
        inherit entry pjrtLib xla-src;
        xlaPin = pins.xla;
      }
      // pkgs.lib.optionalAttrs (isCuda entry.backend) {
        cudaPin = pins.${entry.backend};
        nvshmemLibraries = pins.rulesMlToolchain.nvshmemLibraries;
      }
    )
  ) prebuiltPins.wheels;
  # pjrt-cpu-bin, pjrt-cuda12-bin, ..., pjrt-tpu: the newest wheel of each backend.
  prebuiltPackages = wheelPackages // builtins.mapAttrs (_alias: attr: wheelPackages.${attr}) prebuiltPins.aliases;

  sourcePlugin =
    backend:
    (pkgsFor backend).callPackage ./source-plugin.nix (
      gpuArgs backend
      // {
        inherit backend pins pjrtLib xla-src;
        bazel = (pkgsFor backend).${pins.toolchains.bazel.attribute};
      }
    );

  sourcePackages = lib.optionalAttrs (builtins.elem system pjrtLib.linuxSystems) (
    builtins.listToAttrs (
      map (backend: {
        name = "pjrt-${backend}";
        value = sourcePlugin backend;
      }) (pjrtLib.sourceBackendsFor system)
    )
  );
in
prebuiltPackages
// sourcePackages
// {
  inherit xla-src;
  xtask = pkgs.callPackage ./xtask.nix { src = projectSource; };
}
// lib.optionalAttrs (sourcePackages ? pjrt-cpu) { default = sourcePackages.pjrt-cpu; }
