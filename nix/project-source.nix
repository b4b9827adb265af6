# The Rust workspace alone, so that editing a .nix file or pins.toml does
# not change the xtask derivation.
root:
builtins.path {
  path = root;
  name = "pjrtpkgs-source";
  filter =
    path: type:
    let
      rel = builtins.substring (builtins.stringLength (toString root) + 1) (-1) (toString path);
      top = builtins.head (builtins.split "/" rel);
    in
    builtins.elem top [
      "Cargo.toml"
      "Cargo.lock"
      ".cargo"
      "xtask"
      "crates"
    ]
    && !(type == "directory" && builtins.baseNameOf path == "target");
}
