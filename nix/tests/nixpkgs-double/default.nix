# TEST DOUBLE of nixpkgs' top level: `import nixpkgs { system; config; overlays; }`.
# Every package is a derivation whose builder fails if ever run: these
# derivations are only instantiated (drvPath), never built.
{
  system ? builtins.currentSystem,
  config ? { },
  overlays ? [ ],
}:
let
  b = builtins;
  lib = import ./lib.nix;

  # Environment values Nix accepts: strings, paths, derivations, numbers,
  # booleans and lists of those. Attribute sets without outPath and
  # functions are dropped, as the real stdenv keeps them out of the env too.
  envValue =
    v:
    if b.isFunction v then
      null
    else if b.isAttrs v && !(v ? outPath) then
      null
    else
      v;
  envOf = attrs: b.removeAttrs (b.mapAttrs (_: envValue) attrs) (b.filter (n: envValue attrs.${n} == null) (b.attrNames attrs));

  mkDerivation =
    args:
    let
      name = args.name or "${args.pname}-${args.version}";
      drv = b.derivation (
        envOf (b.removeAttrs args [ "passthru" "meta" "env" ])
        // envOf (args.env or { })
        // {
          inherit name system;
          builder = "/bin/sh";
          args = [
            "-c"
            "echo 'nixpkgs TEST DOUBLE: not buildable' >&2; exit 1"
          ];
        }
      );
    in
    drv
    // (args.passthru or { })
    // {
      meta = args.meta or { };
      version = args.version or "";
      pname = args.pname or name;
    };

  # A package with the given outputs, as nixpkgs' multi-output packages.
  pkg =
    pname: version:
    mkDerivation { inherit pname version; }
    // {
      lib = mkDerivation {
        inherit version;
        pname = "${pname}-lib";
      };
      dev = mkDerivation {
        inherit version;
        pname = "${pname}-dev";
      };
      bin = mkDerivation {
        inherit version;
        pname = "${pname}-bin";
      };
    };
  tool = pname: pkg pname "0-double";
  hook = pname: mkDerivation { name = pname; };

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

  cudaSet = version: cudnn: {
    cudaMajorMinorVersion = b.concatStringsSep "." (b.genList (i: b.elemAt (b.splitVersion version) i) 2);
    cuda_nvcc = pkg "cuda_nvcc" version;
    cuda_cudart = pkg "cuda_cudart" version;
    cuda_cccl = pkg "cuda_cccl" version;
    cuda_cupti = pkg "cuda_cupti" version;
    cuda_nvml_dev = pkg "cuda_nvml_dev" version;
    cuda_nvrtc = pkg "cuda_nvrtc" version;
    cuda_nvtx = pkg "cuda_nvtx" version;
    cuda_profiler_api = pkg "cuda_profiler_api" version;
    libcublas = pkg "libcublas" version;
    libcufft = pkg "libcufft" version;
    libcurand = pkg "libcurand" version;
    libcusolver = pkg "libcusolver" version;
    libcusparse = pkg "libcusparse" version;
    libnvjitlink = pkg "libnvjitlink" version;
    cudnn = pkg "cudnn" cudnn;
    nccl = pkg "nccl" "2.28.0";
  };

  rocmVersion = "7.1.1";
  rocm = pname: pkg pname rocmVersion;

  self = {
    inherit
      lib
      system
      config
      fetchurl
      fetchFromGitHub
      ;
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
        inherit system;
        isLinux = b.match ".*-linux" system != null;
        isDarwin = b.match ".*-darwin" system != null;
      };
      cc = {
        cc.lib = tool "gcc-lib";
        bintools.dynamicLinker = "/double/ld-linux.so";
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
    symlinkJoin = { name, paths }: mkDerivation { inherit name paths; };
    rustPlatform.buildRustPackage =
      args:
      mkDerivation (
        b.removeAttrs args [ "cargoLock" ]
        // {
          cargoLockFile = args.cargoLock.lockFile;
        }
      );
    bazel_7 = pkg "bazel" "7.6.0";
    cudaPackages_12_9 = cudaSet "12.9.1" "9.13.0";
    cudaPackages_13_0 = cudaSet "13.0.2" "9.13.0";
    rocmPackages = {
      clr = rocm "clr";
      rocminfo = rocm "rocminfo";
      rocm-device-libs = rocm "rocm-device-libs";
      rocblas = rocm "rocblas";
      hipblas = rocm "hipblas";
      hipblaslt = rocm "hipblaslt";
      miopen = rocm "miopen";
      rccl = rocm "rccl";
      rocsolver = rocm "rocsolver";
      hipsolver = rocm "hipsolver";
      rocsparse = rocm "rocsparse";
      hipsparse = rocm "hipsparse";
      rocfft = rocm "rocfft";
      hipfft = rocm "hipfft";
      rocprim = rocm "rocprim";
      hipcub = rocm "hipcub";
      rocthrust = rocm "rocthrust";
      roctracer = rocm "roctracer";
      llvm.clang = rocm "rocm-clang";
    };
    llvmPackages.libclang = tool "libclang";
    protobuf = tool "protobuf";
    autoPatchelfHook = hook "auto-patchelf-hook";
    addDriverRunpath = hook "add-driver-runpath-hook";
    makeWrapper = hook "make-wrapper-hook";
    cacert = tool "cacert";
    glibc = tool "glibc";
    zlib = tool "zlib";
    xz = tool "xz";
    unzip = tool "unzip";
    zip = tool "zip";
    which = tool "which";
    patchelf = tool "patchelf";
    gitMinimal = tool "git";
    python3 = tool "python3";
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
