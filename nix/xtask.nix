# `cargo xtask` as a package, built with nixpkgs' Rust tooling from the
# project's Cargo.lock (no network: every crate is fetched by hash).
{
  lib,
  rustPlatform,
  pkg-config,
  zlib,
  xz,
  llvmPackages,
  protobuf,
  makeWrapper,
  src,
}:
rustPlatform.buildRustPackage {
  pname = "xtask";
  version = "0.1.0";
  inherit src;
  cargoLock.lockFile = src + "/Cargo.lock";
  cargoBuildFlags = [
    "--package"
    "xtask"
  ];
  # The test suite needs nix, libclang and an XLA checkout; CI runs it.
  doCheck = false;
  nativeBuildInputs = [
    pkg-config
    makeWrapper
  ];
  buildInputs = [
    zlib
    xz
  ];
  # The `clang` crate loads libclang at run time (bindgen verb). diff-headers
  # compiles .proto files with protoc: the one vendored in a crate is not in
  # the store, so nixpkgs' is named (PROTOC).
  postFixup = ''
    wrapProgram $out/bin/xtask --set-default LIBCLANG_PATH ${lib.getLib llvmPackages.libclang}/lib \
      --set-default PROTOC ${protobuf}/bin/protoc
  '';
  meta = {
    description = "pjrtpkgs maintainer tool: pins, Nix-exact hashes, PJRT header diffs, bindings, smoke tests";
    license = lib.licenses.asl20;
    mainProgram = "xtask";
  };
}
