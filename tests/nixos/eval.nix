# Evaluates Peerix's NixOS modules with the real module system (Nixpkgs' lib alone), beside
# stand-ins for the few NixOS options they set, and returns what a test checks: the units'
# command lines and settings, the firewall, Nix's settings, the failed assertions and warnings.
{ nixpkgsLib, peerixDir, configuration }:
let
  lib = import nixpkgsLib;
  nixosStandIns = { lib, ... }: with lib; {
    options = {
      assertions = mkOption { type = types.listOf types.unspecified; default = [ ]; };
      warnings = mkOption { type = types.listOf types.str; default = [ ]; };
      nix.settings = mkOption { type = types.attrsOf types.anything; default = { }; };
      networking.firewall.allowedTCPPorts = mkOption { type = types.listOf types.port; default = [ ]; };
      networking.firewall.allowedUDPPorts = mkOption { type = types.listOf types.port; default = [ ]; };
      systemd.services = mkOption { type = types.attrsOf types.anything; default = { }; };
      systemd.paths = mkOption { type = types.attrsOf types.anything; default = { }; };
      services.kubo = mkOption { type = types.attrsOf types.anything; default = { }; };
    };
  };
  # The package: a directory whose bin/peerix is the binary under test.
  peerix = { type = "derivation"; name = "peerix"; outPath = peerixDir; };
  evaluated = lib.evalModules {
    modules = [
      ../../nixos/peerix.nix
      ../../nixos/peerix-tracker.nix
      nixosStandIns
      { _module.args.pkgs = { inherit peerix; }; }
      configuration
    ];
  };
  config = evaluated.config;
  unit = name: if config.systemd.services ? ${name} then config.systemd.services.${name} else null;
in
{
  failedAssertions = map (a: a.message) (builtins.filter (a: !a.assertion) config.assertions);
  inherit (config) warnings;
  nixSettings = config.nix.settings;
  firewall = {
    tcp = config.networking.firewall.allowedTCPPorts;
    udp = config.networking.firewall.allowedUDPPorts;
  };
  peerix = unit "peerix";
  tracker = unit "peerix-tracker";
  rescan = unit "peerix-rescan";
  paths = config.systemd.paths;
  kubo = config.services.kubo;
}
