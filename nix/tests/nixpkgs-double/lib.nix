# TEST DOUBLE: the nixpkgs `lib` functions pjrtpkgs and the double call, with
# the names, argument order and semantics of nixpkgs' lib/ (lists.nix,
# attrsets.nix, strings.nix, customisation.nix, asserts.nix, trivial.nix, licenses.nix,
# source-types.nix, fetchers.nix; read at NixOS/nixpkgs, see README.md).
# Written here, not copied; nothing more than what is used.
let
  b = builtins;
in
rec {
  optionals = cond: xs: if cond then xs else [ ];
  optional = cond: x: if cond then [ x ] else [ ];
  optionalString = cond: s: if cond then s else "";
  optionalAttrs = cond: as: if cond then as else { };
  concatStringsSep = b.concatStringsSep;
  concatMapStringsSep = sep: f: xs: b.concatStringsSep sep (map f xs);
  concatMap = b.concatMap;
  concatLists = b.concatLists;
  unique = b.foldl' (acc: x: if b.elem x acc then acc else acc ++ [ x ]) [ ];
  any = b.any;
  all = b.all;
  genAttrs = names: f: b.listToAttrs (map (n: nameValuePair n (f n)) names);
  nameValuePair = name: value: { inherit name value; };
  listToAttrs = b.listToAttrs;
  mapAttrs' = f: set: b.listToAttrs (map (n: f n set.${n}) (b.attrNames set));
  filterAttrs = pred: set: b.removeAttrs set (b.filter (n: !(pred n set.${n})) (b.attrNames set));
  removePrefix =
    prefix: s:
    let
      n = b.stringLength prefix;
    in
    if b.substring 0 n s == prefix then b.substring n (-1) s else s;
  hasPrefix = prefix: s: b.substring 0 (b.stringLength prefix) s == prefix;
  versionAtLeast = v1: v2: b.compareVersions v1 v2 >= 0;
  versionOlder = v1: v2: b.compareVersions v1 v2 < 0;
  # lib/strings.nix: escapeShellArg quotes unless the word is safe.
  escapeShellArg =
    arg:
    let
      s = toString arg;
    in
    if b.match "[[:alnum:],._+:@%/-]+" s != null then
      s
    else
      "'${b.replaceStrings [ "'" ] [ "'\\''" ] s}'";
  escapeShellArgs = xs: b.concatStringsSep " " (map escapeShellArg xs);

  # lib/attrsets.nix getOutput: an explicitly chosen output stays as it is;
  # otherwise the named output, else `out`, else the package itself.
  getOutput =
    output: pkg:
    if !(pkg ? outputSpecified) || !pkg.outputSpecified then pkg.${output} or pkg.out or pkg else pkg;
  getLib = getOutput "lib";
  getDev = getOutput "dev";
  getBin = getOutput "bin";
  getInclude = getOutput "include";
  makeLibraryPath = xs: b.concatStringsSep ":" (map (p: "${getLib p}/lib") xs);
  makeBinPath = xs: b.concatStringsSep ":" (map (p: "${getBin p}/bin") xs);

  assertMsg = pred: msg: pred || b.throw msg;
  # lib/trivial.nix: warn prints on stderr and goes on (builtins.warn where
  # the Nix has it, else a trace; NIX_ABORT_ON_WARN is not modelled).
  warn = msg: b.trace "evaluation warning: ${msg}";
  warnIf = cond: msg: if cond then warn msg else x: x;
  versions.major = v: b.head (b.splitVersion v);
  versions.majorMinor = v: b.concatStringsSep "." (b.genList (i: b.elemAt (b.splitVersion v) i) 2);

  # lib/customisation.nix makeOverridable, reduced: `.override` re-calls the
  # function with the arguments updated.
  makeOverridable =
    f: args:
    let
      result = f args;
    in
    result
    // {
      override = newArgs: makeOverridable f (args // (if b.isFunction newArgs then newArgs args else newArgs));
    };

  # lib/fetchers.nix normalizeHash: `hash` (SRI) or `sha256` -> the
  # outputHash/outputHashAlgo pair a fixed-output derivation takes.
  fetchers = {
    proxyImpureEnvVars = [
      "http_proxy"
      "https_proxy"
      "ftp_proxy"
      "all_proxy"
      "no_proxy"
      "HTTP_PROXY"
      "HTTPS_PROXY"
      "FTP_PROXY"
      "ALL_PROXY"
      "NO_PROXY"
    ];
    normalizeHash =
      { hashTypes }:
      args:
      if args ? hash then
        {
          outputHash = args.hash;
          outputHashAlgo = null;
        }
      else
        let
          algo = b.head (b.filter (t: args ? ${t}) hashTypes ++ [ (b.throw "normalizeHash: no hash given") ]);
        in
        {
          outputHash = args.${algo};
          outputHashAlgo = algo;
        };
  };

  licenses = {
    asl20 = {
      spdxId = "Apache-2.0";
      shortName = "asl20";
      free = true;
    };
    mit = {
      spdxId = "MIT";
      shortName = "mit";
      free = true;
    };
    bsd3 = {
      spdxId = "BSD-3-Clause";
      shortName = "bsd3";
      free = true;
    };
    unfree = {
      shortName = "unfree";
      free = false;
    };
    # lib/licenses.nix: NVIDIA's CUDA redistributables, unfree.
    nvidiaCudaRedist = {
      shortName = "nvidiaCudaRedist";
      free = false;
      redistributable = true;
    };
  };
  sourceTypes.binaryNativeCode = {
    shortName = "binaryNativeCode";
    isSource = false;
  };
}
