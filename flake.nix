{
  description = "PJRT plugins of XLA (CPU, CUDA 12/13, ROCm 7, TPU), built from source or repackaged, all pinned in pins.toml";

  # Binary cache, opt-in (--accept-flake-config); see docs/cache.md and nix/cache-config.md.
  # Commented out because no public pjrtpkgs cache exists yet: never invent its URL or key.
  # nixConfig = {
  #   extra-substituters = [ "https://cache.pjrtpkgs.example.org" ];
  #   extra-trusted-public-keys = [ "pjrtpkgs-1:REPLACE-WITH-THE-BASE64-PUBLIC-KEY=" ];
  # };

  # nixos-unstable of 2026-09-29: has nixpkgs' xla recipe with CUDA support
  # and PJRT tests (NixOS/nixpkgs#560740); see nix/README.md "Pinned nixpkgs".
  inputs.nixpkgs.url = "github:NixOS/nixpkgs/b4fd65b198c599cbe814fcb9f42d25d021595ec9";

  outputs =
    { self, nixpkgs }:
    let
      pjrtLib = import ./nix/lib.nix;
      pins = import ./nix/pins.nix { };
      projectSource = import ./nix/project-source.nix ./.;

      # macOS only where a pinned wheel exists for it.
      systems =
        pjrtLib.linuxSystems
        ++ builtins.filter (s: builtins.elem s (pjrtLib.prebuiltSystems pins.prebuilt)) [ "aarch64-darwin" ];
      forAllSystems =
        f:
        builtins.listToAttrs (
          map (system: {
            name = system;
            value = f system;
          }) systems
        );

      # Free packages (CPU, ROCm, tools, the default shell) from nixpkgs as it
      # comes: nothing unfree can sneak in.
      pkgsBySystem = forAllSystems (system: import nixpkgs { inherit system; });
      # CUDA and TPU: unfree, and nixpkgs marks every CUDA redistributable
      # meta.broken unless config.cudaSupport (cuda-modules/buildRedist).
      pkgsUnfreeBySystem = forAllSystems (
        system:
        import nixpkgs {
          inherit system;
          config = {
            allowUnfree = true;
            cudaSupport = true;
          };
        }
      );
    in
    {
      lib = pjrtLib;

      overlays.default = import ./overlays { inherit pins projectSource; };

      packages = forAllSystems (
        system:
        import ./nix/packages.nix {
          pkgs = pkgsBySystem.${system};
          pkgsUnfree = pkgsUnfreeBySystem.${system};
          inherit pins pjrtLib projectSource;
        }
      );

      devShells = forAllSystems (
        system:
        import ./nix/dev-shells.nix {
          pkgs = pkgsBySystem.${system};
          pkgsUnfree = pkgsUnfreeBySystem.${system};
          inherit pins;
          pjrtPackages = self.packages.${system};
        }
      );

      checks = forAllSystems (
        system:
        import ./nix/checks.nix {
          pkgs = pkgsBySystem.${system};
          pjrtPackages = self.packages.${system};
        }
      );

      formatter = forAllSystems (system: pkgsBySystem.${system}.nixfmt-tree);

      # Linux only: Hydra builds what the cache serves.
      hydraJobs = {
        packages = nixpkgs.lib.genAttrs pjrtLib.linuxSystems (system: self.packages.${system});
        checks = nixpkgs.lib.genAttrs pjrtLib.linuxSystems (system: self.checks.${system});
      };
    };
}
