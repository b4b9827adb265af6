# TEST DOUBLE of stdenv.mkDerivation: real derivations (builtins.derivation,
# so drvPaths are real and comparable) that fail if ever built, with the
# nixpkgs behaviours pjrtpkgs depends on, each from the file it copies the
# semantics of (commits in README.md):
#
# * check-meta (pkgs/stdenv/generic/check-meta.nix, make-derivation.nix):
#   a package with an unfree license (unless config.allowUnfree or
#   allowUnfreePredicate), with meta.broken (unless config.allowBroken), or
#   not available on the host platform (meta.platforms / badPlatforms, unless
#   config.allowUnsupportedSystem) throws as soon as its drvPath or outPath is
#   used, with nixpkgs' message; so does everything that depends on it.
# * outputs (make-derivation.nix): `outputs` become real derivation outputs;
#   `drv.<output>` carries outputSpecified = true (what lib.getOutput keys on);
#   dependency lists reach the environment as their `dev` output, else `out`
#   (make-derivation.nix chooseDevOutputs).
# * runHook (pkgs/stdenv/generic/setup.sh): `runHook postFixup` runs the
#   implicit hook (the postFixup attribute) first, then the postFixupHooks
#   array, which setup hooks fill in the order they are sourced (the order of
#   nativeBuildInputs). `doubleFixup` evaluates that order for one shared
#   library and one executable of the output and returns their RUNPATH:
#     - postFixup text: `patchelf --add-rpath P`, `patchelf --set-rpath P`,
#       `addDriverRunpath FILE` (pkgs/by-name/ad/addDriverRunpath/setup-hook.sh:
#       prepends the driver link);
#     - autoPatchelfPostFixup (pkgs/by-name/au/autoPatchelfHook/auto-patchelf.sh,
#       pkgs/by-name/au/auto-patchelf/source/auto-patchelf.py): the RUNPATH is
#       SET anew to the resolved DT_NEEDED directories, plus runtimeDependencies
#       (each + "/lib") for dynamic executables only, plus appendRunpaths for
#       every file; resolved libraries are modelled as one marker entry;
#     - autoFixElfFiles addDriverRunpath (autoAddDriverRunpath's hook):
#       prepends the driver link.
{
  lib,
  system,
  config,
}:
let
  b = builtins;

  allowUnfree = config.allowUnfree or false;
  allowUnfreePredicate = config.allowUnfreePredicate or (_: false);
  allowBroken = config.allowBroken or false;
  allowUnsupportedSystem = config.allowUnsupportedSystem or false;

  licensesOf =
    meta:
    let
      l = meta.license or [ ];
    in
    if b.isList l then l else [ l ];

  # null when the package may be evaluated, else nixpkgs' refusal.
  refusal =
    args: name:
    let
      meta = args.meta or { };
      where = "in the nixpkgs TEST DOUBLE";
      unfree = b.filter (l: !(l.free or true)) (licensesOf meta);
      platforms = meta.platforms or null;
      available =
        (platforms == null || b.elem system platforms) && !(b.elem system (meta.badPlatforms or [ ]));
    in
    if unfree != [ ] && !allowUnfree && !(allowUnfreePredicate args) then
      "Package ‘${name}’ ${where} has an unfree license (‘${(b.head unfree).shortName or "unfree"}’), refusing to evaluate."
    else if (meta.broken or false) && !allowBroken then
      "Package ‘${name}’ ${where} is marked as broken, refusing to evaluate."
    else if !available && !allowUnsupportedSystem then
      "Package ‘${name}’ ${where} is not available on the requested hostPlatform:\n  hostPlatform.system = \"${system}\""
    else
      null;

  guard = msg: v: if msg == null then v else b.throw msg;

  # Environment values Nix accepts: strings, paths, derivations, numbers,
  # booleans and lists of those. Attribute sets without outPath, functions
  # and nulls stay out of the environment, as in the real stdenv.
  keep = v: !(b.isFunction v || v == null || (b.isAttrs v && !(v ? outPath)));
  envOf = attrs: b.removeAttrs attrs (b.filter (n: !(keep attrs.${n})) (b.attrNames attrs));
  chooseDev = map (lib.getOutput "dev");
  dependencyLists = [
    "nativeBuildInputs"
    "buildInputs"
    "propagatedBuildInputs"
    "propagatedNativeBuildInputs"
  ];

  # -- runHook postFixup -----------------------------------------------------
  driverLib = "/run/opengl-driver/lib";
  resolvedMarker = "<directories of the resolved DT_NEEDED libraries>";
  splitColons = s: b.filter (x: b.isString x && x != "") (b.split ":" s);
  unquote = s: b.head (b.match "\"?([^\"]*)\"?" s);
  implicitStep =
    text: runpath:
    let
      lines = b.filter b.isString (b.split "\n" (b.unsafeDiscardStringContext text));
      step =
        acc: line:
        let
          add = b.match "[[:space:]]*patchelf .*--add-rpath[[:space:]]+(\"[^\"]*\"|[^[:space:]]+).*" line;
          set = b.match "[[:space:]]*patchelf .*--set-rpath[[:space:]]+(\"[^\"]*\"|[^[:space:]]+).*" line;
          driver = b.match "[[:space:]]*addDriverRunpath[[:space:]].*" line;
        in
        if add != null then
          acc ++ splitColons (unquote (b.head add))
        else if set != null then
          splitColons (unquote (b.head set))
        else if driver != null then
          [ driverLib ] ++ acc
        else
          acc;
    in
    b.foldl' step runpath lines;

  fixupOf =
    args:
    let
      hooks = b.concatMap (p: p.doubleSetupHook.postFixupHooks or [ ]) (args.nativeBuildInputs or [ ]);
      asStrings = map (x: b.unsafeDiscardStringContext (toString x));
      runtimeDeps = map (d: "${b.unsafeDiscardStringContext (toString d)}/lib") (args.runtimeDependencies or [ ]);
      appendRunpaths = asStrings (args.appendRunpaths or [ ]);
      hookStep =
        executable: runpath: hook:
        if hook == "autoPatchelfPostFixup" then
          (if args.dontAutoPatchelf or false then
            runpath
          else
            [ resolvedMarker ] ++ (if executable then runtimeDeps else [ ]) ++ appendRunpaths)
        else if hook == "autoFixElfFiles addDriverRunpath" then
          [ driverLib ] ++ runpath
        else
          runpath;
      run = executable: b.foldl' (hookStep executable) (implicitStep (args.postFixup or "") [ ]) hooks;
    in
    {
      order = [ "postFixup (implicit hook)" ] ++ hooks;
      sharedLibrary = run false;
      executable = run true;
    };

  mkDerivation =
    args:
    let
      name = args.name or "${args.pname}-${args.version}";
      outputs = args.outputs or [ "out" ];
      msg = refusal args name;
      raw = b.derivation (
        envOf (
          b.removeAttrs args [
            "passthru"
            "meta"
            "env"
          ]
        )
        // b.listToAttrs (
          map (n: {
            name = n;
            value = chooseDev args.${n};
          }) (b.filter (n: args ? ${n}) dependencyLists)
        )
        // envOf (args.env or { })
        // {
          inherit name system outputs;
          builder = "/bin/sh";
          args = [
            "-c"
            "echo 'nixpkgs TEST DOUBLE: not buildable' >&2; exit 1"
          ];
        }
      );
      common = (args.passthru or { }) // {
        meta = args.meta or { };
        version = args.version or "";
        pname = args.pname or name;
        inherit name outputs;
        overrideAttrs =
          f:
          let
            r = f args;
          in
          mkDerivation (args // (if b.isFunction r then r args else r));
        doubleFixup = fixupOf args;
      };
      output =
        o:
        raw.${o}
        // common
        // {
          outPath = guard msg raw.${o}.outPath;
          drvPath = guard msg raw.${o}.drvPath;
          outputName = o;
          outputSpecified = true;
        };
      outputSets = b.listToAttrs (
        map (o: {
          name = o;
          value = output o;
        }) outputs
      );
    in
    raw
    // common
    // outputSets
    // {
      outPath = guard msg raw.outPath;
      drvPath = guard msg raw.drvPath;
      outputName = b.head outputs;
    };
in
{
  inherit mkDerivation;
}
