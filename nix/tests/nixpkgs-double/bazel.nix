# TEST DOUBLE of nixpkgs' Bazel 7 and buildBazelPackage:
#
# * bazel_7 (pkgs/by-name/ba/bazel_7/package.nix, read at 0437febe and
#   56ed99c3): `version ? "7.6.0"` is an argument, so `bazel_7.override {
#   version = "7.7.1"; }` is how a test stands in for nixpkgs' bump
#   (NixOS/nixpkgs#474010); the argument enableNixHacks adds
#   nix-build-bazel-package-hacks.patch ("always assume all markers valid",
#   "don't clean up environment variables"), so only `bazel_7.override {
#   enableNixHacks = true; }` trusts a restored external directory whose
#   markers were emptied. Both have the same name.
# * buildBazelPackage (pkgs/build-support/build-bazel-package/default.nix,
#   text read at 7572c1a9, plus the two changes merged before the flake's
#   revision, read in their pull requests): the arguments minus
#   buildAttrs/fetchAttrs go to both derivations; fetchAttrs (minus
#   hash/sha256) make the fixed-output `deps` derivation (nativeBuildInputs
#   ++ [ bazel ], proxy variables impure, `bazel build --nobuild` of
#   fetchAttrs' bazelTargets, no fixup, allowedRequisites = [], hash via
#   lib.fetchers.normalizeHash), buildAttrs the build, whose
#   nativeBuildInputs get `bazel.override { enableNixHacks = true; }`.
#   - NixOS/nixpkgs#497817 (merged 2026-03): the deps archive is a plain tar,
#     `${name}-deps.tar`, written with `tar cf` and unpacked with `tar xf`
#     (gzip hid /nix/store references from the fixed-output check);
#   - NixOS/nixpkgs#512134 (merged 2026-04): `bazelFlags` is turned into a
#     bash array unless __structuredAttrs (word splitting of the variable,
#     no command substitution) and passed as "${bazelFlags[@]}".
#   What the phases do with the flags is modelled exactly, because tests run
#   these texts: `bazelFetchFlags` is expanded from the environment
#   (`$bazelFetchFlags`, unquoted), while `bazelBuildFlags` are SPLICED into
#   the build phase's text (`lib.concatStringsSep " "`), unquoted: a flag
#   holding `$(...)` runs as a command there. The build's preConfigure
#   unpacks the archive and compares .nix-bazel-version with bazel.name.
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

  # #512134: bazelFlags as an array in both attribute modes.
  convertBazelFlagsToArray = ''
    if [[ -z "''${__structuredAttrs-}" ]]; then
      bazelFlags=( ''${bazelFlags-} )
    fi
  '';

  bazelCmd =
    {
      cmd,
      additionalFlags,
      targets,
    }:
    lib.optionalString (targets != [ ]) ''
      ${convertBazelFlagsToArray}
      BAZEL_USE_CPP_ONLY_TOOLCHAIN=1 \
      USER=homeless-shelter \
      bazel \
        --batch \
        --output_base="$bazelOut" \
        --output_user_root="$bazelUserRoot" \
        ${cmd} \
        --curses=no \
        "''${copts[@]}" \
        "''${host_copts[@]}" \
        "''${linkopts[@]}" \
        "''${host_linkopts[@]}" \
        "''${bazelFlags[@]}" \
        ${lib.concatStringsSep " " additionalFlags} \
        ${lib.concatStringsSep " " targets}
    '';

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
    in
    mkDerivation (
      fBuildAttrs
      // {
        deps = mkDerivation (
          fFetchAttrs
          // {
            name = "${name}-deps.tar";
            impureEnvVars = lib.fetchers.proxyImpureEnvVars ++ fFetchAttrs.impureEnvVars or [ ];
            nativeBuildInputs = fFetchAttrs.nativeBuildInputs or [ ] ++ [ bazel ];
            buildPhase =
              fFetchAttrs.buildPhase or ''
                runHook preBuild
                ${bazelCmd {
                  cmd = "build --nobuild";
                  additionalFlags = [
                    "--loading_phase_threads=1"
                    "$bazelFetchFlags"
                    "--jobs"
                    "$NIX_BUILD_CORES"
                  ];
                  targets = fFetchAttrs.bazelTargets ++ fFetchAttrs.bazelTestTargets;
                }}
                runHook postBuild
              '';
            installPhase =
              fFetchAttrs.installPhase or ''
                (cd $bazelOut/ && tar cf $out --sort=name --mtime='@1' --owner=0 --group=0 --numeric-owner external/)
              '';
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
          (cd $bazelOut && tar xf $deps)
          test "${bazel.name}" = "$(<$bazelOut/external/.nix-bazel-version)" || {
            echo "fixed output derivation was built for a different bazel version" >&2
            exit 1
          }
        ''
        + fBuildAttrs.preConfigure or "";
        buildPhase =
          fBuildAttrs.buildPhase or ''
            runHook preBuild
            copts=()
            host_copts=()
            linkopts=()
            host_linkopts=()
            ${bazelCmd {
              cmd = "build";
              additionalFlags = fBuildAttrs.bazelBuildFlags ++ [
                "--jobs"
                "$NIX_BUILD_CORES"
              ];
              targets = fBuildAttrs.bazelTargets;
            }}
            runHook postBuild
          '';
      }
    );
in
{
  inherit bazel_7 buildBazelPackage;
}
