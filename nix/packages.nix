# The pjrtpkgs package set for one nixpkgs instance (one system). Used by
# the flake's `packages` and by `overlays.default`; receives pins as plain
# values (nix/pins.nix) and never reads pins.toml itself.
{
  pkgs,
  pins,
  pjrtLib ? import ./lib.nix,
  projectSource,
}:
let
  inherit (pkgs) lib callPackage;
  system = pkgs.stdenv.hostPlatform.system;

  xla-src = callPackage ./xla-src.nix { xlaPin = pins.xla; };

  # The toolchains each GPU backend resolves against, by the attribute
  # pins.toml names ([cuda12] / [cuda13] / [rocm7] nixpkgs_attribute).
  gpuSets = {
    cuda12 = pkgs.${pins.cuda12.attribute};
    cuda13 = pkgs.${pins.cuda13.attribute};
    rocm7 = pkgs.${pins.rocm7.attribute};
  };
  # The `cudaPackages` / `rocmPackages` arguments of a plugin of `backend`.
  gpuArgs = backend: {
    cudaPackages = if backend == "cuda12" || backend == "cuda13" then gpuSets.${backend} else null;
    rocmPackages = if backend == "rocm7" then gpuSets.rocm7 else null;
  };

  prebuiltPins = pjrtLib.prebuiltFor pins.prebuilt system;
  wheelPackages = builtins.mapAttrs (
    _attr: entry:
    callPackage ./prebuilt-plugin.nix (
      gpuArgs entry.backend
      // {
        inherit entry pjrtLib xla-src;
        xlaPin = pins.xla;
      }
    )
  ) prebuiltPins.wheels;
  # pjrt-cpu-bin, pjrt-cuda12-bin, ..., pjrt-tpu: the newest wheel of each backend.
  prebuiltPackages = wheelPackages // builtins.mapAttrs (_alias: attr: wheelPackages.${attr}) prebuiltPins.aliases;

  sourcePlugin =
    backend:
    callPackage ./source-plugin.nix (
      gpuArgs backend
      // {
        inherit backend pins pjrtLib xla-src;
        bazel = pkgs.${pins.toolchains.bazel.attribute};
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
  xtask = callPackage ./xtask.nix { src = projectSource; };
}
// lib.optionalAttrs (sourcePackages ? pjrt-cpu) { default = sourcePackages.pjrt-cpu; }
