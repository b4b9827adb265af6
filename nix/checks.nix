# Flake checks: `xtask smoke` loads each plugin, prebuilt or built from
# source, and runs a real computation.
# CPU runs anywhere; GPU checks only on builders that advertise the device
# (requiredSystemFeatures), so `nix flake check` elsewhere skips nothing silently:
# Nix refuses to build them and says which feature is missing.
{
  pkgs,
  pjrtPackages,
}:
let
  inherit (pkgs) lib;
  smoke =
    attr: features:
    let
      plugin = pjrtPackages.${attr};
    in
    pkgs.runCommand "smoke-${attr}"
      {
        nativeBuildInputs = [ pjrtPackages.xtask ];
        requiredSystemFeatures = features;
      }
      ''
        xtask smoke ${plugin}/${plugin.pluginLib}
        touch $out
      '';
  # Plugin package -> the system features its check needs. The source
  # builds are checked too: `nix flake check` then builds XLA (hours).
  plugins = {
    pjrt-cpu-bin = [ ];
    pjrt-cpu = [ ];
    pjrt-cuda12-bin = [ "cuda" ];
    pjrt-cuda13-bin = [ "cuda" ];
    pjrt-rocm7-bin = [ "rocm" ];
    pjrt-cuda12 = [ "cuda" ];
    pjrt-cuda13 = [ "cuda" ];
    pjrt-rocm7 = [ "rocm" ];
  };
in
lib.mapAttrs' (attr: features: lib.nameValuePair "smoke-${lib.removePrefix "pjrt-" attr}" (smoke attr features)) (
  lib.filterAttrs (attr: _: pjrtPackages ? ${attr}) plugins
)
