# NixOS module: runs `peerix tracker`, the directory of peers and the paths they share for nodes in
# `wan`, `hybrid` and `both`, sandboxed as the node is, with a state directory of its own and no
# access to the Nix store.
{ config, lib, pkgs, ... }:
let
  cfg = config.services.peerix-tracker;
  inherit (lib) mkEnableOption mkOption mkIf types optionals;
  hardening = import ./hardening.nix;
  inherit (import ./flags.nix lib) value each;
  nullOr = t: description: mkOption { type = types.nullOr t; default = null; inherit description; };
  args = [
    "tracker"
    "--host" cfg.host
    "--port" (toString cfg.port)
    "--db-path" cfg.dbPath
  ]
  ++ each "--trust-proxy" cfg.trustProxy
  ++ value "--ttl" cfg.ttl
  ++ value "--max-skew" cfg.maxSkew
  ++ value "--ip-rate" cfg.ipRate
  ++ value "--ip-burst" cfg.ipBurst
  ++ value "--peer-rate" cfg.peerRate
  ++ value "--peer-burst" cfg.peerBurst
  ++ value "--header-timeout" cfg.headerTimeout
  ++ value "--max-connections" cfg.maxConnections
  ++ cfg.extraArgs;
in
{
  options.services.peerix-tracker = {
    enable = mkEnableOption "the Peerix tracker";

    package = mkOption {
      type = types.package;
      default = pkgs.peerix;
      defaultText = lib.literalExpression "pkgs.peerix";
      description = "The peerix package.";
    };

    host = mkOption {
      type = types.str;
      default = "0.0.0.0";
      description = "Address the tracker listens on.";
    };

    port = mkOption {
      type = types.port;
      default = 12305;
      description = "Port of the tracker's HTTP server.";
    };

    dbPath = mkOption {
      type = types.str;
      default = "/var/lib/peerix-tracker/tracker.redb";
      description = ''
        The tracker's database. The old program kept an SQLite `tracker.db`; this one is a redb
        file, so the default name changed (the old file is not read).
      '';
    };

    openFirewall = mkOption {
      type = types.bool;
      default = true;
      description = "Open the tracker's TCP port.";
    };

    trustProxy = mkOption {
      type = types.listOf types.str;
      default = [ ];
      description = "Address blocks (CIDR) of reverse proxies allowed to name the client in X-Forwarded-For or X-Real-IP.";
    };

    ttl = nullOr types.ints.positive "Seconds after its last heartbeat a peer is forgotten (120 by default).";
    maxSkew = nullOr types.ints.positive "Seconds a write's signed timestamp may differ from the tracker's clock (30 by default).";
    ipRate = nullOr types.number "Requests per second per client IP, on average.";
    ipBurst = nullOr types.ints.positive "Requests a client IP may make at once after a pause.";
    peerRate = nullOr types.number "Writes per second per peer, on average.";
    peerBurst = nullOr types.ints.positive "Writes a peer may make at once after a pause.";
    headerTimeout = nullOr types.ints.positive "Seconds an HTTP connection has to send a complete request head.";
    maxConnections = nullOr types.ints.positive "HTTP connections open at once.";

    extraArgs = mkOption {
      type = types.listOf types.str;
      default = [ ];
      description = "Further arguments for `peerix tracker`.";
    };
  };

  config = mkIf cfg.enable {
    networking.firewall.allowedTCPPorts = mkIf cfg.openFirewall [ cfg.port ];

    systemd.services.peerix-tracker = {
      description = "Peerix tracker";
      wantedBy = [ "multi-user.target" ];
      after = [ "network.target" ];
      serviceConfig = hardening // {
        Type = "notify";
        WatchdogSec = "60s";
        ExecStartPre = lib.escapeShellArgs ([ "${cfg.package}/bin/peerix" ] ++ args ++ [ "--check-config" ]);
        ExecStart = lib.escapeShellArgs ([ "${cfg.package}/bin/peerix" ] ++ args);
        DynamicUser = true;
        StateDirectory = "peerix-tracker";
        Restart = "on-failure";
        # A bad setting (--check-config's exit 2) is not retried: its message stays the last word.
        RestartPreventExitStatus = 2;
        # The tracker has no business with the Nix store.
        InaccessiblePaths = [ "/nix/var/nix" ];
        ReadWritePaths = optionals (!(lib.hasPrefix "/var/lib/peerix-tracker/" cfg.dbPath)) [ (dirOf cfg.dbPath) ];
      };
    };
  };
}
