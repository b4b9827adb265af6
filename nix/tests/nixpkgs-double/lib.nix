# TEST DOUBLE: the few nixpkgs `lib` functions pjrtpkgs calls, same names
# and argument order as nixpkgs' lib/ (lists.nix, attrsets.nix, strings.nix,
# customisation.nix, meta.nix); nothing more.
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
  genAttrs = names: f: b.listToAttrs (map (n: nameValuePair n (f n)) names);
  nameValuePair = name: value: { inherit name value; };
  mapAttrs' = f: set: b.listToAttrs (map (n: f n set.${n}) (b.attrNames set));
  filterAttrs = pred: set: b.removeAttrs set (b.filter (n: !(pred n set.${n})) (b.attrNames set));
  removePrefix =
    prefix: s:
    let
      n = b.stringLength prefix;
    in
    if b.substring 0 n s == prefix then b.substring n (-1) s else s;
  getOutput = output: pkg: pkg.${output} or pkg;
  getLib = getOutput "lib";
  getDev = getOutput "dev";
  getBin = getOutput "bin";
  makeLibraryPath = xs: b.concatStringsSep ":" (map (p: "${getLib p}/lib") xs);
  assertMsg = pred: msg: pred || b.throw msg;
  licenses = {
    asl20 = {
      spdxId = "Apache-2.0";
      free = true;
    };
    mit = {
      spdxId = "MIT";
      free = true;
    };
    unfree = {
      shortName = "unfree";
      free = false;
    };
  };
  sourceTypes.binaryNativeCode = {
    shortName = "binaryNativeCode";
    isSource = false;
  };
}
