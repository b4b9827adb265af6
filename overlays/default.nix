# overlays.default: adds the pjrtpkgs package set to nixpkgs as
# `pjrtPackages` (pjrtPackages.pjrt-cpu, pjrtPackages.pjrt-cuda12-bin, ...).
{
  pins ? import ../nix/pins.nix { },
  projectSource,
}:
final: _prev: {
  pjrtPackages = import ../nix/packages.nix {
    pkgs = final;
    inherit pins projectSource;
  };
}
