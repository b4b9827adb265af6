# TEST DOUBLE of nixpkgs, for evaluation tests only (README.md here). It
# builds nothing: it has the attributes pjrtpkgs uses, with the argument
# shapes and the evaluation-time behaviour of the real ones (meta checks,
# outputs, hook order, buildBazelPackage, CUDA sets), and turns every package
# into a real (instantiable) derivation so that drvPaths can be compared.
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
