# Development shells. Every shell exports the plugin variables that
# ryft-xla-sys (PJRT_PLUGIN_*_LIB) and GoMLX (PJRT_PLUGIN_LIBRARY_PATH) read,
# pointing at this flake's plugins where one exists for the system.
{
  pkgs,
  pins,
  pjrtPackages,
}:
let
  inherit (pkgs) lib;

  pluginPath = attr: lib.optionalString (pjrtPackages ? ${attr}) "${pjrtPackages.${attr}}/${pjrtPackages.${attr}.pluginLib}";
  pluginDir = attr: lib.optionalString (pjrtPackages ? ${attr}) "${pjrtPackages.${attr}}/lib";
  # Prebuilt plugins only: entering a shell must never start a Bazel build.
  pluginAttrs = [
    "pjrt-cpu-bin"
    "pjrt-cuda12-bin"
    "pjrt-cuda13-bin"
    "pjrt-rocm7-bin"
    "pjrt-tpu"
  ];

  pluginEnv = {
    PJRT_PLUGIN_CUDA_12_LIB = pluginPath "pjrt-cuda12-bin";
    PJRT_PLUGIN_CUDA_13_LIB = pluginPath "pjrt-cuda13-bin";
    PJRT_PLUGIN_ROCM_7_LIB = pluginPath "pjrt-rocm7-bin";
    PJRT_PLUGIN_TPU_LIB = pluginPath "pjrt-tpu";
    PJRT_PLUGIN_LIBRARY_PATH = lib.concatStringsSep ":" (
      builtins.filter (d: d != "") (map pluginDir pluginAttrs)
    );
  };

  mkPjrtShell =
    name: extraPackages:
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
      env = pluginEnv // {
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
  default = mkPjrtShell "pjrtpkgs" [ ];
}
// lib.optionalAttrs pkgs.stdenv.hostPlatform.isLinux {
  cuda12 = mkPjrtShell "pjrtpkgs-cuda12" (cuda pkgs.${pins.cuda12.attribute});
  cuda13 = mkPjrtShell "pjrtpkgs-cuda13" (cuda pkgs.${pins.cuda13.attribute});
  rocm7 = mkPjrtShell "pjrtpkgs-rocm7" (
    with pkgs.${pins.rocm7.attribute};
    [
      clr
      rocminfo
    ]
  );
}
