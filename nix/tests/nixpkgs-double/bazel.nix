# TEST DOUBLE of nixpkgs' Bazel 7 and buildBazelPackage:
#
# * bazel_7 (pkgs/by-name/ba/bazel_7/package.nix): version 7.6.0; the
#   argument enableNixHacks adds nix-build-bazel-package-hacks.patch ("always
#   assume all markers valid", "don't clean up environment variables"), so
#   only `bazel_7.override { enableNixHacks = true; }` trusts a restored
#   external directory whose markers were emptied. Both have the same name.
# * buildBazelPackage (pkgs/build-support/build-bazel-package/default.nix):
#   the arguments minus buildAttrs/fetchAttrs go to both derivations;
#   fetchAttrs (minus hash/sha256) make the fixed-output `deps` derivation
#   ("${name}-deps.tar.gz", nativeBuildInputs ++ [ bazel ], proxy variables
#   impure, `bazel build --nobuild` of fetchAttrs' bazelTargets, no fixup,
#   allowedRequisites = [], hash via lib.fetchers.normalizeHash), buildAttrs
#   the build, whose nativeBuildInputs get `bazel.override { enableNixHacks =
#   true; }` and whose preConfigure first unpacks $deps with `tar xfz` and
#   checks .nix-bazel-version against bazel.name. The phase texts are short
#   stand-ins, not nixpkgs' scripts.
{
  lib,
  mkDerivation,
}:
let
  bazel_7 = lib.makeOverridable (
    {
      enableNixHacks ? false,
      version ? "7.6.0",
    }:
    mkDerivation {
      pname = "bazel";
      inherit version;
      patches = [
        "java_toolchain.patch"
        "strict_action_env.patch"
        "bazel_rc.patch"
      ]
      ++ lib.optional enableNixHacks "nix-build-bazel-package-hacks.patch";
      passthru = { inherit enableNixHacks; };
      meta.platforms = [
        "x86_64-linux"
        "aarch64-linux"
        "aarch64-darwin"
        "x86_64-darwin"
      ];
    }
  ) { };

  buildBazelPackage =
    args@{
      name ? "${args.pname}-${args.version}",
      bazel,
      bazelFlags ? [ ],
      bazelBuildFlags ? [ ],
      bazelFetchFlags ? [ ],
      bazelTargets ? [ ],
      bazelTestTargets ? [ ],
      buildAttrs,
      fetchAttrs,
      dontAddBazelOpts ? false,
      ...
    }:
    let
      fArgs =
        removeAttrs args [
          "buildAttrs"
          "fetchAttrs"
          "removeRulesCC"
        ]
        // {
          inherit
            name
            bazelFlags
            bazelBuildFlags
            bazelFetchFlags
            bazelTargets
            bazelTestTargets
            dontAddBazelOpts
            ;
        };
      fBuildAttrs = fArgs // buildAttrs;
      fFetchAttrs =
        fArgs
        // removeAttrs fetchAttrs [
          "hash"
          "sha256"
        ];
      bazelCmd =
        cmd: targets:
        ''bazel --batch --output_base="$bazelOut" --output_user_root="$bazelUserRoot" ${cmd} --curses=no $bazelFlags ${lib.concatStringsSep " " targets}'';
    in
    mkDerivation (
      fBuildAttrs
      // {
        deps = mkDerivation (
          fFetchAttrs
          // {
            name = "${name}-deps.tar.gz";
            impureEnvVars = lib.fetchers.proxyImpureEnvVars ++ fFetchAttrs.impureEnvVars or [ ];
            nativeBuildInputs = fFetchAttrs.nativeBuildInputs or [ ] ++ [ bazel ];
            buildPhase =
              fFetchAttrs.buildPhase or ''
                runHook preBuild
                ${bazelCmd "build --nobuild --loading_phase_threads=1 $bazelFetchFlags" (
                  fFetchAttrs.bazelTargets ++ fFetchAttrs.bazelTestTargets
                )}
                runHook postBuild
              '';
            installPhase = fFetchAttrs.installPhase or "tar czf $out external/";
            dontFixup = true;
            allowedRequisites = [ ];
          }
          // lib.fetchers.normalizeHash { hashTypes = [ "sha256" ]; } fetchAttrs
        );
        nativeBuildInputs = fBuildAttrs.nativeBuildInputs or [ ] ++ [
          (bazel.override { enableNixHacks = true; })
        ];
        preConfigure = ''
          mkdir -p "$bazelOut"
          (cd $bazelOut && tar xfz $deps)
          test "${bazel.name}" = "$(<$bazelOut/external/.nix-bazel-version)"
        ''
        + fBuildAttrs.preConfigure or "";
        buildPhase =
          fBuildAttrs.buildPhase or ''
            runHook preBuild
            ${bazelCmd "build $bazelBuildFlags --jobs $NIX_BUILD_CORES" fBuildAttrs.bazelTargets}
            runHook postBuild
          '';
      }
    );
in
{
  inherit bazel_7 buildBazelPackage;
}
