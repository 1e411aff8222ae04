# NixOS module: runs `peerix serve` as an unprivileged, sandboxed service and points the local Nix
# daemon at it. It changes no other Nix setting.
{ config, lib, pkgs, ... }:
let
  cfg = config.services.peerix;
  inherit (lib) mkEnableOption mkOption mkIf types optional optionals concatMap;
  url = "http://${cfg.listen}:${toString cfg.port}";
  args = [
    "serve"
    "--listen" cfg.listen
    "--port" (toString cfg.port)
    "--priority" (toString cfg.priority)
    "--state-dir" "/var/lib/peerix"
  ]
  ++ optionals (cfg.privateKeyFile != null) [ "--private-key" "%d/signing-key" ]
  ++ concatMap (p: [ "--filter-pattern" p ]) cfg.filterPatterns
  ++ optional cfg.noDefaultFilters "--no-default-filters"
  ++ optional cfg.noFilter "--no-filter"
  ++ optionals (cfg.bandwidthLimit != null) [ "--bandwidth-limit" cfg.bandwidthLimit ]
  ++ optionals (cfg.ipfsApi != null) [ "--ipfs-api" cfg.ipfsApi ]
  ++ concatMap (a: [ "--relay-servers" a ]) cfg.relayServers
  ++ optionals cfg.relayServer [ "--relay-server" "on" ]
  ++ optional cfg.allowRelayedTransfers "--allow-relayed-transfers"
  ++ optionals (cfg.announceAddr != null) [ "--announce-addr" cfg.announceAddr ]
  ++ cfg.extraArgs;
in
{
  options.services.peerix = {
    enable = mkEnableOption "Peerix, a peer-to-peer binary cache for Nix";

    package = mkOption {
      type = types.package;
      description = "The peerix package.";
    };

    listen = mkOption {
      type = types.str;
      default = "127.0.0.1";
      description = "Address of the HTTP binary cache. Keep it on loopback unless other machines should read this store directly.";
    };

    port = mkOption {
      type = types.port;
      default = 12304;
      description = "Port of the HTTP binary cache.";
    };

    priority = mkOption {
      type = types.int;
      default = 20;
      description = "Substituter priority announced to Nix (lower is tried first; cache.nixos.org is 40).";
    };

    privateKeyFile = mkOption {
      type = types.nullOr types.path;
      default = null;
      description = "Secret signing key (`peerix keygen` or `nix-store --generate-binary-cache-key`). Passed to the service as a systemd credential, so it may stay readable by root only.";
    };

    publicKey = mkOption {
      type = types.nullOr types.str;
      default = null;
      description = "Public key that this machine trusts for paths served by Peerix nodes (added to nix.settings.extra-trusted-public-keys).";
    };

    filterPatterns = mkOption {
      type = types.listOf types.str;
      default = [ ];
      description = "Extra fnmatch patterns on store path basenames that must never be shared.";
    };

    noDefaultFilters = mkOption {
      type = types.bool;
      default = false;
      description = "Skip the built-in sensitive-path patterns (extra patterns still apply).";
    };

    noFilter = mkOption {
      type = types.bool;
      default = false;
      description = "Share every store path, sensitive ones included.";
    };

    addSubstituter = mkOption {
      type = types.bool;
      default = true;
      description = "Add Peerix to nix.settings.extra-substituters.";
    };

    openFirewall = mkOption {
      type = types.bool;
      default = false;
      description = "Open the HTTP port in the firewall (only useful with a non-loopback listen address).";
    };

    bandwidthLimit = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "20M";
      description = "Cap on peer-to-peer traffic, bytes per second in each direction (suffixes k, M, G, KiB, MiB, GiB).";
    };

    ipfsApi = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "http://127.0.0.1:5001";
      description = "HTTP RPC of a running kubo to use next to the embedded IPFS node.";
    };

    relayServers = mkOption {
      type = types.listOf types.str;
      default = [ ];
      example = [ "/ip4/203.0.113.1/tcp/13304/p2p/12D3KooW..." ];
      description = "Relays (v2) to hold a reservation on while this machine is not publicly reachable; by default, relays among the connected peers.";
    };

    relayServer = mkOption {
      type = types.bool;
      default = false;
      description = "Relay connections for peers that cannot reach each other directly (within the relay limits; see `peerix serve --help`). Worth turning on for a publicly reachable machine; open its libp2p port too.";
    };

    allowRelayedTransfers = mkOption {
      type = types.bool;
      default = false;
      description = "Let NARs travel over relayed connections when no direct one can be made (relays only carry handshakes otherwise).";
    };

    announceAddr = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "my-public-ip-or-hostname";
      description = "An address peers can reach this machine at that it cannot discover itself (port forward, VPN): an IP address or host name (TCP and QUIC on the libp2p port), or a multiaddr.";
    };

    extraArgs = mkOption {
      type = types.listOf types.str;
      default = [ ];
      description = "Further arguments for `peerix serve`.";
    };
  };

  config = mkIf cfg.enable {
    nix.settings = {
      extra-substituters = mkIf cfg.addSubstituter [ url ];
      extra-trusted-public-keys = mkIf (cfg.publicKey != null) [ cfg.publicKey ];
    };

    networking.firewall.allowedTCPPorts = mkIf cfg.openFirewall [ cfg.port ];

    systemd.services.peerix = {
      description = "Peerix peer-to-peer Nix binary cache";
      wantedBy = [ "multi-user.target" ];
      after = [ "network-online.target" ];
      wants = [ "network-online.target" ];
      serviceConfig = {
        ExecStart = lib.escapeShellArgs ([ "${cfg.package}/bin/peerix" ] ++ args);
        LoadCredential = optional (cfg.privateKeyFile != null) "signing-key:${toString cfg.privateKeyFile}";
        DynamicUser = true;
        StateDirectory = "peerix";
        Restart = "on-failure";
        # Peerix reads the store and its database; it never writes to either.
        ReadOnlyPaths = [ "/nix/store" "/nix/var/nix/db" ];
        ProtectSystem = "strict";
        ProtectHome = true;
        PrivateTmp = true;
        PrivateDevices = true;
        NoNewPrivileges = true;
        CapabilityBoundingSet = "";
        RestrictAddressFamilies = [ "AF_INET" "AF_INET6" "AF_UNIX" "AF_NETLINK" ];
        RestrictNamespaces = true;
        RestrictRealtime = true;
        LockPersonality = true;
        MemoryDenyWriteExecute = true;
        ProtectKernelTunables = true;
        ProtectKernelModules = true;
        ProtectControlGroups = true;
        SystemCallArchitectures = "native";
        SystemCallFilter = [ "@system-service" "~@privileged" ];
      };
    };
  };
}
