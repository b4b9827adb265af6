# TEST DOUBLE of nixpkgs' top level: `import nixpkgs { system; config; overlays; }`.
# Every package is a real derivation whose builder fails if ever run: these
# derivations are only instantiated (drvPath), never built. The behaviours
# modelled, and the nixpkgs file each copies, are listed in README.md.
{
  system ? builtins.currentSystem,
  config ? { },
  overlays ? [ ],
}:
let
  b = builtins;
  lib = import ./lib.nix;
  inherit (import ./stdenv.nix { inherit lib system config; }) mkDerivation;
  isLinux = b.match ".*-linux" system != null;

  tool =
    pname:
    mkDerivation {
      inherit pname;
      version = "0-double";
    };
  # A package with a lib output, as glibc, zlib, rdma-core in nixpkgs.
  library =
    pname:
    mkDerivation {
      inherit pname;
      version = "0-double";
      outputs = [
        "out"
        "dev"
        "lib"
      ];
    };
  # A setup hook; `postFixupHooks` is what its setup-hook script appends.
  hook =
    name: postFixupHooks: extra:
    mkDerivation {
      inherit name;
      passthru = {
        doubleSetupHook = { inherit postFixupHooks; };
      }
      // extra;
    };

  # Fixed-output like the real fetchers (pkgs/build-support/fetchurl,
  # fetchgithub): a builtin derivation carrying the pinned hash.
  fetchurl =
    {
      url,
      sha256 ? null,
      hash ? null,
      name ? b.baseNameOf url,
    }:
    b.derivation {
      inherit name url system;
      builder = "builtin:fetchurl";
      urls = [ url ];
      outputHashMode = "flat";
      outputHashAlgo = "sha256";
      outputHash = if hash != null then hash else sha256;
      preferLocalBuild = true;
    };
  fetchFromGitHub =
    {
      owner,
      repo,
      rev,
      hash,
    }:
    b.derivation {
      name = "source";
      inherit system owner repo rev;
      url = "https://github.com/${owner}/${repo}/archive/${rev}.tar.gz";
      builder = "builtin:fetchurl";
      outputHashMode = "recursive";
      outputHash = hash;
    };

  glibc = library "glibc";
  python3 = tool "python3" // {
    interpreter = "${python3}/bin/python3";
    withPackages =
      f:
      let
        env = mkDerivation {
          name = "python3-env";
          paths = f { numpy = tool "numpy"; };
        };
      in
      env // { interpreter = "${env}/bin/python3"; };
  };

  rocmVersion = "7.2.1";
  # A ROCm package; `doubleFiles` models the files it installs that XLA's
  # ROCm configuration reads (rocm_configure.bzl, find_rocm_config.py): the
  # ROCm projects' CMake install layout, which nixpkgs keeps by setting
  # CMAKE_INSTALL_{INCLUDEDIR,LIBDIR}=include/lib in every ROCm package of
  # pkgs/development/rocm-modules (rocrand/default.nix 0145c6da,
  # clr/default.nix e62b4c77), all in the `out` output. Header contents are
  # only the version defines find_rocm_config.py parses (values made up:
  # the layout is what is modelled).
  rocm =
    pname: files:
    mkDerivation {
      inherit pname;
      version = rocmVersion;
      passthru.doubleFiles = files;
    };
  define = names: b.concatStringsSep "" (map (n: "#define ${n} 7\n") names);
  rocmLibrary =
    pname: library: header: defines:
    rocm pname (
      {
        "lib/lib${library}.so" = "";
      }
      // lib.optionalAttrs (header != null) { ${header} = define defines; }
    );

  bazelSet = import ./bazel.nix { inherit lib mkDerivation; };
  cudaSets = import ./cuda.nix { inherit lib mkDerivation config; };

  self = {
    inherit
      lib
      system
      config
      fetchurl
      fetchFromGitHub
      glibc
      python3
      ;
    inherit (bazelSet) bazel_7 buildBazelPackage;
    inherit (cudaSets) cudaPackages_12_9 cudaPackages_13_0;
    cudaPackages = cudaSets.cudaPackages_12_9;
    callPackage =
      fn: extra:
      let
        f = if b.isFunction fn then fn else import fn;
        wanted = b.functionArgs f;
        auto = b.intersectAttrs wanted self;
      in
      f (auto // extra);
    stdenv = {
      inherit mkDerivation;
      hostPlatform = {
        inherit system isLinux;
        isDarwin = b.match ".*-darwin" system != null;
      };
      shell = "${self.bash}/bin/bash";
      cc = {
        cc.lib = tool "gcc-lib";
        bintools.dynamicLinker =
          if system == "aarch64-linux" then
            "${glibc}/lib/ld-linux-aarch64.so.1"
          else
            "${glibc}/lib/ld-linux-x86-64.so.2";
      };
    };
    mkShell =
      args:
      mkDerivation (
        b.removeAttrs args [ "packages" ]
        // {
          name = args.name or "shell";
          nativeBuildInputs = args.packages or [ ];
        }
      );
    runCommand =
      name: env: script:
      mkDerivation (env // { inherit name script; });
    writeText = name: text: mkDerivation { inherit name text; };
    symlinkJoin =
      {
        name,
        paths,
        postBuild ? "",
      }:
      mkDerivation { inherit name paths postBuild; };
    rustPlatform.buildRustPackage =
      args:
      mkDerivation (
        b.removeAttrs args [ "cargoLock" ]
        // {
          cargoLockFile = args.cargoLock.lockFile;
        }
      );
    rocmPackages = {
      # clr/default.nix (e62b4c77) postInstall: links rocm-core's headers
      # into include/ (`ln -s ${rocm-core}/include/* $out/include/`) and the
      # ROCm clang as llvm/ (`ln -s ${hipClang} $out/llvm`, bin/ of
      # llvm.rocm-toolchain), which rocm_configure.bzl runs as llvm/bin/clang.
      clr = rocm "clr" {
        "include/hip/hip_version.h" = define [
          "HIP_VERSION_MAJOR"
          "HIP_VERSION_MINOR"
        ];
        "include/rocm-core/rocm_version.h" = define [
          "ROCM_VERSION_MAJOR"
          "ROCM_VERSION_MINOR"
          "ROCM_VERSION_PATCH"
        ];
        "lib/libamdhip64.so" = "";
        "llvm/bin/clang" = "";
      };
      rocm-core = rocm "rocm-core" {
        "include/rocm-core/rocm_version.h" = define [
          "ROCM_VERSION_MAJOR"
          "ROCM_VERSION_MINOR"
          "ROCM_VERSION_PATCH"
        ];
        "lib/librocm-core.so" = "";
      };
      rocminfo = rocm "rocminfo" { "bin/rocminfo" = ""; };
      rocm-device-libs = rocm "rocm-device-libs" { "amdgcn/bitcode/ocml.bc" = ""; };
      rocblas = rocmLibrary "rocblas" "rocblas" "include/rocblas/internal/rocblas-version.h" [
        "ROCBLAS_VERSION_MAJOR"
        "ROCBLAS_VERSION_MINOR"
        "ROCBLAS_VERSION_PATCH"
      ];
      hipblas = rocmLibrary "hipblas" "hipblas" null [ ];
      hipblaslt = rocmLibrary "hipblaslt" "hipblaslt" null [ ];
      miopen = rocmLibrary "miopen" "MIOpen" "include/miopen/version.h" [
        "MIOPEN_VERSION_MAJOR"
        "MIOPEN_VERSION_MINOR"
        "MIOPEN_VERSION_PATCH"
      ];
      rccl = rocmLibrary "rccl" "rccl" null [ ];
      rocsolver = rocmLibrary "rocsolver" "rocsolver" "include/rocsolver/rocsolver-version.h" [
        "ROCSOLVER_VERSION_MAJOR"
        "ROCSOLVER_VERSION_MINOR"
        "ROCSOLVER_VERSION_PATCH"
      ];
      hipsolver = rocmLibrary "hipsolver" "hipsolver" "include/hipsolver/internal/hipsolver-version.h" [
        "hipsolverVersionMajor"
        "hipsolverVersionMinor"
        "hipsolverVersionPatch"
      ];
      rocsparse = rocmLibrary "rocsparse" "rocsparse" null [ ];
      hipsparse = rocmLibrary "hipsparse" "hipsparse" "include/hipsparse/hipsparse-version.h" [
        "hipsparseVersionMajor"
        "hipsparseVersionMinor"
        "hipsparseVersionPatch"
      ];
      rocfft = rocmLibrary "rocfft" "rocfft" "include/rocfft/rocfft-version.h" [
        "rocfft_version_major"
        "rocfft_version_minor"
        "rocfft_version_patch"
      ];
      hipfft = rocmLibrary "hipfft" "hipfft" "include/hipfft/hipfft-version.h" [
        "hipfftVersionMajor"
        "hipfftVersionMinor"
        "hipfftVersionPatch"
      ];
      # rocrand/default.nix (0145c6da): outputs = [ "out" ] (plus test and
      # benchmark when asked for), headers under include/rocrand.
      rocrand = rocmLibrary "rocrand" "rocrand" "include/rocrand/rocrand_version.h" [ "ROCRAND_VERSION" ];
      hiprand = rocmLibrary "hiprand" "hiprand" "include/hiprand/hiprand_version.h" [ "HIPRAND_VERSION" ];
      rocprim = rocm "rocprim" { "include/rocprim/rocprim_version.hpp" = ""; };
      hipcub = rocm "hipcub" { "include/hipcub/hipcub_version.hpp" = ""; };
      rocthrust = rocm "rocthrust" { "include/thrust/rocthrust_version.hpp" = ""; };
      roctracer = rocmLibrary "roctracer" "roctracer64" "include/roctracer/roctracer.h" [
        "ROCTRACER_VERSION_MAJOR"
        "ROCTRACER_VERSION_MINOR"
      ];
      rocprofiler-sdk = rocmLibrary "rocprofiler-sdk" "rocprofiler-sdk" null [ ];
      llvm.clang = rocm "rocm-clang" { "bin/clang" = ""; };
    };
    llvmPackages.libclang = library "libclang";
    protobuf = tool "protobuf";
    autoPatchelfHook = hook "auto-patchelf-hook" [ "autoPatchelfPostFixup" ] { };
    autoAddDriverRunpath = hook "auto-add-driver-runpath-hook" [ "autoFixElfFiles addDriverRunpath" ] { };
    # Only defines the addDriverRunpath shell function; runs nothing by itself.
    addDriverRunpath = hook "add-driver-runpath-hook" [ ] { driverLink = "/run/opengl-driver"; };
    makeWrapper = hook "make-wrapper-hook" [ ] { };
    cacert = tool "cacert";
    bash = tool "bash";
    zlib = library "zlib";
    xz = library "xz";
    elfutils = library "elfutils";
    libxml2 = library "libxml2";
    ncurses = library "ncurses";
    ncurses5 = library "ncurses-abi5-compat";
    rdma-core = library "rdma-core";
    unzip = tool "unzip";
    zip = tool "zip";
    which = tool "which";
    file = tool "file";
    patchelf = tool "patchelf";
    gitMinimal = tool "git";
    pkg-config = tool "pkg-config";
    cargo = tool "cargo";
    rustc = tool "rustc";
    clippy = tool "clippy";
    rustfmt = tool "rustfmt";
    rust-bindgen = tool "rust-bindgen";
    nix = tool "nix";
    nixfmt = tool "nixfmt";
    nixfmt-tree = tool "nixfmt-tree";
    deadnix = tool "deadnix";
    statix = tool "statix";
  };
in
b.foldl' (acc: overlay: acc // overlay acc acc) self overlays
