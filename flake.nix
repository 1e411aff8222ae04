{
  description = "Peerix: a peer-to-peer binary cache for Nix";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs = { self, nixpkgs }:
    let
      systems = [ "x86_64-linux" "aarch64-linux" ];
      forAll = f: nixpkgs.lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
      cargo = builtins.fromTOML (builtins.readFile ./Cargo.toml);
    in
    {
      packages = forAll (pkgs: rec {
        peerix = pkgs.rustPlatform.buildRustPackage {
          pname = "peerix";
          version = cargo.package.version;
          src = self;
          cargoLock.lockFile = ./Cargo.lock;
          # The test suite needs real Nix stores, root and network namespaces: run scripts/test.
          doCheck = false;
          meta = {
            description = cargo.package.description;
            license = with pkgs.lib.licenses; [ mit asl20 ];
            mainProgram = "peerix";
          };
        };
        default = peerix;
      });

      overlays.default = final: _prev: {
        peerix = self.packages.${final.system}.peerix;
      };

      nixosModules.peerix = { pkgs, lib, ... }: {
        imports = [ ./nixos/peerix.nix ];
        services.peerix.package = lib.mkDefault self.packages.${pkgs.system}.peerix;
      };
      nixosModules.peerix-tracker = { pkgs, lib, ... }: {
        imports = [ ./nixos/peerix-tracker.nix ];
        services.peerix-tracker.package = lib.mkDefault self.packages.${pkgs.system}.peerix;
      };
      nixosModules.default = self.nixosModules.peerix;

      # The modules evaluated by the module system, as tests/nixos_module.rs does with Nixpkgs'
      # lib alone: a node and a tracker with their defaults must pass every assertion.
      checks = forAll (pkgs: {
        modules =
          let
            evaluated = import ./tests/nixos/eval.nix {
              nixpkgsLib = "${nixpkgs}/lib";
              peerixDir = "${self.packages.${pkgs.system}.peerix}";
              configuration = {
                services.peerix.enable = true;
                services.peerix-tracker.enable = true;
              };
            };
          in
          assert evaluated.failedAssertions == [ ];
          pkgs.writeText "peerix-modules.json" (builtins.toJSON evaluated);
      });

      devShells = forAll (pkgs: {
        default = pkgs.mkShell {
          packages = with pkgs; [ cargo rustc clippy rustfmt nix curl ];
        };
      });
    };
}
