# Development shells. Each shell exports, for the plugins it is about, the
# variables ryft-xla-sys (PJRT_PLUGIN_*_LIB) and GoMLX
# (PJRT_PLUGIN_LIBRARY_PATH) read, pointing at this flake's prebuilt plugins.
#
# `default` is free and CUDA-free: tools and the CPU plugin only (`pkgs`,
# default nixpkgs config). CUDA and TPU shells take their toolchains from
# `pkgsUnfree` (allowUnfree + cudaSupport), as the packages do.
{
  pkgs,
  pkgsUnfree ? pkgs,
  pins,
  pjrtPackages,
}:
let
  inherit (pkgs) lib;
  isLinux = pkgs.stdenv.hostPlatform.isLinux;

  pluginPath = attr: "${pjrtPackages.${attr}}/${pjrtPackages.${attr}.pluginLib}";
  pluginDir = attr: "${pjrtPackages.${attr}}/lib";
  has = attr: pjrtPackages ? ${attr};

  # Prebuilt plugins only: entering a shell must never start a Bazel build.
  # attr -> the ryft-xla-sys variable naming it (null: none).
  plugins = {
    pjrt-cpu-bin = null;
    pjrt-cuda12-bin = "PJRT_PLUGIN_CUDA_12_LIB";
    pjrt-cuda13-bin = "PJRT_PLUGIN_CUDA_13_LIB";
    pjrt-rocm7-bin = "PJRT_PLUGIN_ROCM_7_LIB";
    pjrt-tpu = "PJRT_PLUGIN_TPU_LIB";
  };

  # The CPU plugin (where one exists) plus `attrs`.
  pluginEnv =
    attrs:
    let
      present = builtins.filter has ([ "pjrt-cpu-bin" ] ++ attrs);
    in
    lib.listToAttrs (
      map (attr: lib.nameValuePair plugins.${attr} (pluginPath attr)) (
        builtins.filter (attr: plugins.${attr} != null) present
      )
    )
    // {
      PJRT_PLUGIN_LIBRARY_PATH = lib.concatStringsSep ":" (map pluginDir present);
    };

  mkPjrtShell =
    name: attrs: extraPackages:
    pkgs.mkShell {
      inherit name;
      packages = [
        pkgs.cargo
        pkgs.rustc
        pkgs.clippy
        pkgs.rustfmt
        pkgs.rust-bindgen
        pkgs.gitMinimal
        pkgs.nix
        pkgs.nixfmt
        pkgs.deadnix
        pkgs.statix
        pkgs.${pins.toolchains.bazel.attribute}
        pkgs.python3
        pkgs.pkg-config
      ]
      ++ extraPackages;
      env = pluginEnv attrs // {
        LIBCLANG_PATH = "${lib.getLib pkgs.llvmPackages.libclang}/lib";
      };
    };

  cuda = set: [
    set.cuda_nvcc
    set.cuda_cudart
    set.cudnn
    set.nccl
  ];
in
{
  default = mkPjrtShell "pjrtpkgs" [ ] [ ];
}
// lib.optionalAttrs isLinux {
  cuda12 = mkPjrtShell "pjrtpkgs-cuda12" [ "pjrt-cuda12-bin" ] (cuda pkgsUnfree.${pins.cuda12.attribute});
  cuda13 = mkPjrtShell "pjrtpkgs-cuda13" [ "pjrt-cuda13-bin" ] (cuda pkgsUnfree.${pins.cuda13.attribute});
  rocm7 = mkPjrtShell "pjrtpkgs-rocm7" [ "pjrt-rocm7-bin" ] (
    with pkgs.${pins.rocm7.attribute};
    [
      clr
      rocminfo
    ]
  );
}
// lib.optionalAttrs (has "pjrt-tpu") {
  tpu = mkPjrtShell "pjrtpkgs-tpu" [ "pjrt-tpu" ] [ ];
}
