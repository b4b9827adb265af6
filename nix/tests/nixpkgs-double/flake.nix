# TEST DOUBLE of nixpkgs, for evaluation tests only (nix/tests/README.md).
# It builds nothing useful: it has the attributes pjrtpkgs uses, with the
# argument shapes of the real ones, and turns every package into a real
# (instantiable) derivation so that drvPaths can be compared.
{
  outputs = _: {
    lib = import ./lib.nix;
    legacyPackages = builtins.listToAttrs (
      map
        (system: {
          name = system;
          value = import ./. { inherit system; };
        })
        [
          "x86_64-linux"
          "aarch64-linux"
          "aarch64-darwin"
        ]
    );
  };
}
