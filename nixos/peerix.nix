# NixOS module: runs `peerix serve` as an unprivileged, sandboxed service and points the local Nix
# daemon at it. It changes no Nix setting beyond `extra-substituters` and
# `extra-trusted-public-keys` (and the narinfo TTLs when `globalCacheTTL` is set).
#
# The options keep the names, types and defaults of the old program's module, so its users'
# configurations keep working; where an old default was unsafe the description says why it changed.
{ config, lib, pkgs, ... }:
let
  cfg = config.services.peerix;
  inherit (lib) mkEnableOption mkOption mkIf types optional optionals concatMap;
  hardening = import ./hardening.nix;

  loopback = builtins.match "(127[.].*|::1|[[]::1]|localhost)" cfg.listen != null;
  wildcard = builtins.elem cfg.listen [ "0.0.0.0" "::" "[::]" ];
  # An IPv6 literal goes in brackets in a URL.
  host = if lib.hasInfix ":" cfg.listen && !lib.hasPrefix "[" cfg.listen then "[${cfg.listen}]" else cfg.listen;
  # Where this machine's Nix and tools reach the front: a wildcard address is no destination.
  url = "http://${if wildcard then "127.0.0.1" else host}:${toString cfg.port}";
  # Where a local client reaches the control routes, which answer loopback only.
  localApi = if loopback || wildcard then url else "http://127.0.0.1:${toString cfg.port}";
  lanMode = cfg.mode == "lan" || cfg.mode == "both";
  trackerMode = builtins.elem cfg.mode [ "wan" "hybrid" "both" ];
  embeddedNode = cfg.ipfs.enable;
  publicKeys = optional (cfg.publicKey != null) cfg.publicKey
    ++ optional (cfg.publicKeyFile != null) (lib.fileContents cfg.publicKeyFile);
  totalBandwidth =
    if cfg.ipfs.rateLimit.totalBandwidth != null then cfg.ipfs.rateLimit.totalBandwidth
    else if cfg.ipfs.lowBandwidth then 3072
    else null;
  bandwidthLimit =
    if cfg.bandwidthLimit != null then cfg.bandwidthLimit
    else if totalBandwidth != null && (cfg.ipfs.rateLimit.enable || cfg.ipfs.lowBandwidth)
    then "${toString totalBandwidth}KiB"
    else null;

  # The ports the embedded node listens on: its default (the HTTP port + 1000, TCP and QUIC), or
  # those of `listenAddrs`.
  portsOf = proto: addrs: concatMap
    (a: let m = builtins.match ".*/${proto}/([0-9]+).*" a; in optional (m != null) (lib.toInt (builtins.head m)))
    addrs;
  libp2pTcp = if cfg.listenAddrs == [ ] then [ (cfg.port + 1000) ] else portsOf "tcp" cfg.listenAddrs;
  libp2pUdp = if cfg.listenAddrs == [ ] then optional quic (cfg.port + 1000) else portsOf "udp" cfg.listenAddrs;
  lanPort = if cfg.lanPort != null then cfg.lanPort else cfg.port + 2;
  low = cfg.ipfs.lowBandwidth;
  quic = cfg.ipfs.enableQUIC && !low;
  highWater = if low then lib.min 10 cfg.ipfs.connMgr.highWater else cfg.ipfs.connMgr.highWater;
  dhtMode = {
    dhtclient = "client";
    autoclient = "client";
    dht = "auto";
    auto = "auto";
    dhtserver = "server";
    none = "off";
  }.${cfg.ipfs.routingType};

  inherit (import ./flags.nix lib) value each switch;

  args = [
    "serve"
    "--listen" cfg.listen
    "--port" (toString cfg.port)
    "--priority" (toString cfg.priority)
    "--mode" cfg.mode
    "--state-dir" "/var/lib/peerix"
    "--store-root" cfg.storeRoot
    "--scan-interval" (toString cfg.scanInterval)
    "--network-id" cfg.networkId
    "--upstream-cache" cfg.upstreamCache
  ]
  ++ optionals (cfg.privateKeyFile != null) [ "--private-key" "%d/signing-key" ]
  ++ value "--tracker-url" cfg.trackerUrl
  ++ value "--announce-addr" cfg.announceAddr
  ++ value "--bootstrap-url" cfg.bootstrapUrl
  ++ each "--bootstrap-peers" cfg.bootstrapPeers
  ++ each "--relay-servers" cfg.relayServers
  ++ each "--listen-addrs" cfg.listenAddrs
  ++ each "--trusted-public-key" (publicKeys ++ cfg.trustedPublicKeys)
  ++ switch "--no-default-trusted-keys" cfg.noDefaultTrustedKeys
  ++ each "--trusted-peer" cfg.trustedPeers
  ++ switch "--no-verify" cfg.noVerify
  ++ each "--filter-pattern" cfg.filterPatterns
  ++ switch "--no-default-filters" cfg.noDefaultFilters
  ++ switch "--no-filter" cfg.noFilter
  ++ value "--bandwidth-limit" bandwidthLimit
  ++ value "--ipfs-api" cfg.ipfsApi
  ++ switch "--no-embedded-node" (!embeddedNode)
  ++ [ "--quic" (if quic then "on" else "off") "--dht-mode" dhtMode ]
  ++ [ "--max-peer-connections" (toString highWater) ]
  ++ value "--max-inbound-peer-connections" cfg.ipfs.resourceMgr.connsInbound
  ++ value "--max-outbound-peer-connections" cfg.ipfs.resourceMgr.connsOutbound
  ++ optionals cfg.relayServer [ "--relay-server" "on" ]
  ++ value "--relay-max-circuits" cfg.relayLimits.maxCircuits
  ++ value "--relay-max-circuit-bytes" cfg.relayLimits.maxCircuitBytes
  ++ value "--relay-max-circuit-duration" cfg.relayLimits.maxCircuitDuration
  ++ switch "--allow-relayed-transfers" cfg.allowRelayedTransfers
  ++ value "--announce-rate" cfg.announceRate
  ++ value "--cache-size" cfg.cacheSize
  ++ switch "--pull-through" cfg.pullThrough
  ++ value "--identity-file" cfg.identityFile
  ++ value "--timeout" cfg.timeout
  ++ each "--extra-hosts" cfg.extraHosts
  ++ switch "--disable-broadcast" cfg.disableBroadcast
  ++ value "--lan-port" cfg.lanPort
  ++ each "--allowed-host" cfg.allowedHosts
  ++ value "--max-add-size" cfg.maxAddSize
  ++ value "--header-timeout" cfg.headerTimeout
  ++ value "--max-connections" cfg.maxConnections
  ++ switch "--offline" cfg.offline
  ++ optional (cfg.verbosity > 0) ("-" + lib.concatStrings (lib.replicate cfg.verbosity "v"))
  ++ cfg.extraArgs;

  nullOr = t: mkOption' (types.nullOr t) null;
  mkOption' = type: default: description: mkOption { inherit type default description; };
in
{
  options.services.peerix = {
    enable = mkEnableOption "Peerix, a peer-to-peer binary cache for Nix";

    package = mkOption {
      type = types.package;
      default = pkgs.peerix;
      defaultText = lib.literalExpression "pkgs.peerix";
      description = "The peerix package (one build: the embedded IPFS node is always in it).";
    };

    openFirewall = mkOption' types.bool true ''
      Open what the chosen mode listens on beyond loopback: the embedded node's libp2p ports
      (TCP and QUIC) and mDNS (UDP 5353, all modes but `wan`); in `lan` and `both` the LAN
      protocol's UDP port (`port`) and the `/local` listener (`lanPort`); the HTTP port only when
      `listen` is not a loopback address.
    '';

    listen = mkOption' types.str "127.0.0.1" ''
      Address of the HTTP binary cache. Keep it on loopback unless other machines should read this
      store directly.
    '';

    port = mkOption' types.port 12304 "Port of the HTTP binary cache (and of the LAN protocol in `lan` and `both`).";

    priority = mkOption' types.int 20 "Substituter priority announced to Nix (lower is tried first; cache.nixos.org is 40).";

    mode = mkOption' (types.enum [ "ipfs" "libp2p" "lan" "wan" "hybrid" "both" ]) "ipfs" ''
      How peers are found: `ipfs` (the public IPFS DHT and Peerix's own), `libp2p` (Peerix's own
      DHT only), `lan` (mDNS and the old LAN protocol, no internet), `wan` (the tracker alone),
      `hybrid` (`libp2p` and the tracker), `both` (`lan` and `wan`).
    '';

    user = nullOr types.str ''
      User to run Peerix as. The old default was `nobody`; now, by default (null), systemd gives
      the service a dynamic user of its own: `nobody` is shared with other services (and NFS), so
      whatever one of them can read or signal, all can.
    '';

    group = nullOr types.str "Group to run Peerix as (with `user`); by default the dynamic user's own.";

    privateKeyFile = nullOr types.path ''
      Secret signing key (`peerix keygen` or `nix-store --generate-binary-cache-key`). Passed to
      the service as a systemd credential, so it may stay readable by root only.
    '';

    publicKey = nullOr types.str ''
      A public key this machine trusts for paths from Peerix peers: added to Nix's
      `extra-trusted-public-keys` and to Peerix's own trusted keys, in addition to the ones it
      trusts by default (cache.nixos.org's).
    '';

    publicKeyFile = nullOr types.path ''
      A file holding such a public key (read when the configuration is evaluated); as `publicKey`.
    '';

    trustedPublicKeys = mkOption' (types.listOf types.str) [ ] ''
      Further keys Peerix trusts for peers' paths. They are not added to Nix's keys, but with
      `privateKeyFile` set Peerix signs what they signed, so Nix, trusting Peerix's key, trusts
      those paths too.
    '';

    noDefaultTrustedKeys = mkOption' types.bool false "Trust only `publicKey`, `publicKeyFile` and `trustedPublicKeys` for peers' paths, not cache.nixos.org's key too.";

    trustedPeers = mkOption' (types.listOf types.str) [ ] "Peer ids whose paths `noVerify` accepts without a trusted signature.";

    globalCacheTTL = nullOr types.ints.unsigned ''
      Seconds Nix keeps narinfo answers (its `narinfo-cache-positive-ttl` and
      `narinfo-cache-negative-ttl`, for every substituter). Unset: Nix's own defaults, untouched.
    '';

    trackerUrl = nullOr types.str "URL of the tracker; required in `wan`, `hybrid` and `both`.";

    announceAddr = nullOr types.str ''
      An address peers can reach this machine at that it cannot discover itself (port forward,
      VPN): an IP address or host name (TCP and QUIC on the libp2p port), or a multiaddr.
    '';

    peerId = nullOr types.str ''
      No longer used: a node's peer id is derived from its key (`identityFile`), so it cannot be
      chosen. Setting it only warns.
    '';

    identityFile = nullOr types.str "The node's libp2p identity (default: `/var/lib/peerix/identity.key`, created when missing).";

    upstreamCache = mkOption' types.str "https://cache.nixos.org" ''
      Binary cache asked about paths no trusted key signed: a peer's path is accepted, with this
      cache's narinfo, when it has the same NAR; "" for none.
    '';

    noVerify = mkOption' types.bool false "Accept the `trustedPeers`' paths without a trusted signature or upstream agreement (their NAR hash is still checked).";

    noFilter = mkOption' types.bool false "Share every store path, sensitive ones included.";

    noDefaultFilters = mkOption' types.bool false "Skip the built-in sensitive-path patterns (`filterPatterns` still apply).";

    filterPatterns = mkOption' (types.listOf types.str) [ ] "Extra fnmatch patterns on store path names that are never shared.";

    bootstrapUrl = nullOr types.str ''
      URL of another node's `/bootstrap` to meet the network through. The old default was a
      third party's server; now none: a default server would choose every install's first peers
      and learn every install's address.
    '';

    bootstrapPeers = mkOption' (types.listOf types.str) [ ] "Multiaddrs of peers to connect to at start.";

    relayServers = mkOption' (types.listOf types.str) [ ] ''
      Relays (v2) to hold a reservation on while this machine is not publicly reachable; by
      default, relays among the connected peers.
    '';

    networkId = mkOption' types.str "default" "Network id: only peers with the same one exchange paths.";

    listenAddrs = mkOption' (types.listOf types.str) [ ] ''
      libp2p listen multiaddrs. Empty: TCP and QUIC on all addresses at `port` + 1000.
    '';

    scanInterval = mkOption' types.ints.unsigned 3600 "Seconds between publication scans of the store (0: only at start and on changes).";

    bandwidthLimit = nullOr types.str ''
      Cap on peer-to-peer traffic, bytes per second in each direction (suffixes k, M, G, KiB, MiB,
      GiB). Not together with `ipfs.rateLimit.totalBandwidth`.
    '';

    ipfsApi = nullOr types.str "HTTP RPC of a running kubo to use next to the embedded IPFS node (e.g. http://127.0.0.1:5001).";

    relayServer = mkOption' types.bool false ''
      Relay connections for peers that cannot reach each other directly (within `relayLimits`).
      Worth turning on for a publicly reachable machine.
    '';

    relayLimits = {
      maxCircuits = nullOr types.ints.positive "Relayed circuits at once.";
      maxCircuitBytes = nullOr types.str "Bytes one relayed circuit may carry (suffixes as `bandwidthLimit`).";
      maxCircuitDuration = nullOr types.str "How long one relayed circuit may last (e.g. 90s, 2m).";
    };

    allowRelayedTransfers = mkOption' types.bool false "Let NARs travel over relayed connections when no direct one can be made.";

    announceRate = nullOr types.number "DHT announcements started per second at most (0: no pacing).";

    cacheSize = nullOr types.str "Disk space for NARs fetched from peers (suffixes as `bandwidthLimit`); none by default.";

    pullThrough = mkOption' types.bool false "Serve Nix the paths no peer holds from `upstreamCache`, through this node; the near nodes of the network pull each file once for all of them. Turn it on on every machine of a LAN that shares one uplink; off by default, since alone it only adds a hop.";

    timeout = nullOr (types.ints.between 1 10000) "Milliseconds a LAN query waits for an answer (`lan`, `both`; 150 by default).";

    extraHosts = mkOption' (types.listOf types.str) [ ] "Hosts (HOST or HOST:PORT) asked by unicast besides the LAN broadcast, and answered (`lan`, `both`).";

    disableBroadcast = mkOption' types.bool false "Send no LAN broadcast; only `extraHosts` are asked.";

    lanPort = nullOr types.port "Port of the `/local` listener old LAN peers fetch from (`port` + 2 by default).";

    allowedHosts = mkOption' (types.listOf types.str) [ ] "Host names besides loopback under which the RPC, `/status`, the dashboard and (while the front listens on loopback) the Nix routes answer.";

    maxAddSize = nullOr types.str "Largest body `/api/v0/add` takes.";

    headerTimeout = nullOr types.ints.positive "Seconds an HTTP connection has to send a complete request head.";

    maxConnections = nullOr types.ints.positive "HTTP connections open at once.";

    offline = mkOption' types.bool false "Contact no peer and no upstream: serve this store only.";

    storeRoot = mkOption' types.str "/" "Root of the Nix store to serve.";

    verbosity = mkOption' (types.ints.between 0 3) 0 "More log output: 1 info, 2 debug, 3 trace.";

    addSubstituter = mkOption' types.bool true "Add Peerix to `nix.settings.extra-substituters`.";

    extraArgs = mkOption' (types.listOf types.str) [ ] "Further arguments for `peerix serve`.";

    ipfs = {
      enable = mkOption' types.bool true "Run the embedded IPFS node (off: `--no-embedded-node`, kubo or the LAN protocol alone).";
      configureKubo = mkOption' types.bool true ''
        Configure `services.kubo` for Peerix. Only takes effect with `ipfsApi` set: the embedded
        node needs no kubo.
      '';
      lowBandwidth = mkOption' types.bool false ''
        A preset for limited networks: QUIC off, at most 10 connections, a 3 MiB/s cap on
        peer-to-peer traffic (each unless set otherwise). The old default was true, to tame kubo;
        as a preset of the embedded node it would make every install slow, so it is off by
        default.
      '';
      rateLimit = {
        enable = mkOption' types.bool false "Cap peer-to-peer traffic at `totalBandwidth` (the old iptables rate limit, now the node's own cap).";
        totalBandwidth = nullOr types.ints.positive "The cap, KiB/s in each direction.";
      };
      routingType = mkOption' (types.enum [ "dhtclient" "dht" "dhtserver" "none" "autoclient" "auto" ]) "dhtclient" ''
        The node's role in the public DHT (`--dht-mode`): `dhtclient` and `autoclient` only ask
        and announce, `dht` and `auto` answer too once directly reachable, `dhtserver` always
        answers, `none` stays off the public DHT.
      '';
      enableQUIC = mkOption' types.bool true "QUIC (UDP) beside TCP (`--quic`; off in `lowBandwidth`).";
      acceleratedDHTClient = mkOption' types.bool false ''
        Kept for old configurations (kubo's full routing table); the embedded node has no such
        client, so setting it only warns. With `configureKubo`, it is passed to kubo.
      '';
      connMgr = {
        lowWater = mkOption' types.ints.unsigned 600 ''
          Kept for old configurations: the embedded node prunes no connections, `highWater` is its
          cap. With `configureKubo`, passed to kubo.
        '';
        highWater = mkOption' types.ints.positive 900 "Connections to peers at most (`--max-peer-connections`; 10 in `lowBandwidth`).";
      };
      resourceMgr = {
        connsInbound = nullOr types.ints.positive "Connections peers may open to this node, at most (`--max-inbound-peer-connections`).";
        connsOutbound = nullOr types.ints.positive "Connections this node may open, at most (`--max-outbound-peer-connections`).";
      };
    };
  };

  config = mkIf cfg.enable {
    assertions = [
      {
        assertion = trackerMode -> cfg.trackerUrl != null;
        message = "services.peerix: mode \"${cfg.mode}\" finds peers through a tracker: set services.peerix.trackerUrl.";
      }
      {
        assertion = cfg.noVerify -> cfg.trustedPeers != [ ];
        message = "services.peerix.noVerify accepts only trustedPeers' paths unchecked: list them in services.peerix.trustedPeers.";
      }
      {
        assertion = !embeddedNode -> (cfg.ipfsApi != null && cfg.trackerUrl != null);
        message = "services.peerix.ipfs.enable = false leaves the peer-to-peer work to kubo, which needs services.peerix.ipfsApi and a services.peerix.trackerUrl to name the CIDs of the paths it fetches.";
      }
      {
        assertion = cfg.pullThrough -> (embeddedNode && cfg.upstreamCache != "");
        message = "services.peerix.pullThrough serves paths from the upstream cache between the near nodes: set services.peerix.upstreamCache, and keep ipfs.enable.";
      }
      {
        assertion = cfg.noFilter -> (cfg.filterPatterns == [ ] && !cfg.noDefaultFilters);
        message = "services.peerix.noFilter shares every path: filterPatterns and noDefaultFilters would have no effect; set one or the other.";
      }
      {
        assertion = !(cfg.bandwidthLimit != null && cfg.ipfs.rateLimit.enable && cfg.ipfs.rateLimit.totalBandwidth != null);
        message = "services.peerix: bandwidthLimit and ipfs.rateLimit.totalBandwidth both cap peer-to-peer traffic; set one.";
      }
      {
        assertion = cfg.group != null -> cfg.user != null;
        message = "services.peerix.group needs services.peerix.user (without it the service runs as a dynamic user).";
      }
    ];

    warnings = optional (cfg.peerId != null)
      "services.peerix.peerId has no effect: a node's peer id comes from its key; to keep an identity, keep /var/lib/peerix/identity.key or set services.peerix.identityFile."
    ++ optional (cfg.ipfs.acceleratedDHTClient && cfg.ipfsApi == null)
      "services.peerix.ipfs.acceleratedDHTClient has no effect on the embedded node (it has no such client); it is passed to kubo only with ipfsApi and configureKubo."
    ++ optional (cfg.ipfs.rateLimit.totalBandwidth != null && !cfg.ipfs.rateLimit.enable && !cfg.ipfs.lowBandwidth)
      "services.peerix.ipfs.rateLimit.totalBandwidth has no effect without ipfs.rateLimit.enable."
    ++ optional (cfg.ipfs.connMgr.lowWater != 600 && cfg.ipfsApi == null)
      "services.peerix.ipfs.connMgr.lowWater has no effect on the embedded node (it prunes no connections); ipfs.connMgr.highWater is its cap.";

    # A kubo for Peerix to use, only when one is asked for.
    services.kubo = mkIf (cfg.ipfs.configureKubo && cfg.ipfsApi != null) {
      enable = lib.mkDefault true;
      settings = lib.mapAttrsRecursive (_: lib.mkDefault) {
        Routing.Type = cfg.ipfs.routingType;
        Routing.AcceleratedDHTClient = cfg.ipfs.acceleratedDHTClient;
        Swarm.ConnMgr = { LowWater = cfg.ipfs.connMgr.lowWater; HighWater = highWater; };
        Swarm.Transports.Network.QUIC = quic;
      };
    };

    nix.settings = {
      extra-substituters = mkIf cfg.addSubstituter [ url ];
      extra-trusted-public-keys = mkIf (publicKeys != [ ]) publicKeys;
    } // lib.optionalAttrs (cfg.globalCacheTTL != null) {
      narinfo-cache-positive-ttl = cfg.globalCacheTTL;
      narinfo-cache-negative-ttl = cfg.globalCacheTTL;
    };

    networking.firewall = mkIf cfg.openFirewall {
      allowedTCPPorts =
        optionals (embeddedNode && !cfg.offline) libp2pTcp
        ++ optional (lanMode && !cfg.offline) lanPort
        ++ optional (!loopback) cfg.port;
      allowedUDPPorts =
        optionals (embeddedNode && !cfg.offline) libp2pUdp
        ++ optional (embeddedNode && !cfg.offline && cfg.mode != "wan") 5353
        ++ optional (lanMode && !cfg.offline) cfg.port;
    };

    # A system switch adds paths: publish them now rather than at the next scan.
    systemd.paths.peerix-rescan = mkIf (loopback || wildcard) {
      description = "Publish what a system switch added to the store";
      wantedBy = [ "multi-user.target" ];
      pathConfig.PathChanged = "/run/current-system";
    };
    systemd.services.peerix-rescan = mkIf (loopback || wildcard) {
      description = "Peerix: look at the store again";
      after = [ "peerix.service" ];
      # Only while Peerix runs: a node that (re)starts scans anyway.
      requisite = [ "peerix.service" ];
      serviceConfig = hardening // {
        Type = "oneshot";
        DynamicUser = true;
        ExecStart = lib.escapeShellArgs [ "${cfg.package}/bin/peerix" "rescan" "--api" localApi ];
      };
    };

    systemd.services.peerix = {
      description = "Peerix peer-to-peer Nix binary cache";
      wantedBy = [ "multi-user.target" ];
      after = [ "network-online.target" ];
      wants = [ "network-online.target" ];
      serviceConfig = hardening // {
        # Ready once the binary cache answers; restarted when a runtime stops answering.
        Type = "notify";
        WatchdogSec = "60s";
        # A bad setting stops the start with a message naming the option's flag.
        ExecStartPre = lib.escapeShellArgs ([ "${cfg.package}/bin/peerix" ] ++ args ++ [ "--check-config" ]);
        ExecStart = lib.escapeShellArgs ([ "${cfg.package}/bin/peerix" ] ++ args);
        LoadCredential = optional (cfg.privateKeyFile != null) "signing-key:${toString cfg.privateKeyFile}";
        DynamicUser = cfg.user == null;
        StateDirectory = "peerix";
        Restart = "on-failure";
        # A bad setting (--check-config's exit 2) is not retried: its message stays the last word.
        RestartPreventExitStatus = 2;
        # Peerix reads the store and its database; it never writes to either.
        ReadOnlyPaths = [ "/nix/store" "/nix/var/nix/db" ];
      } // lib.optionalAttrs (cfg.user != null) {
        User = cfg.user;
      } // lib.optionalAttrs (cfg.group != null) {
        Group = cfg.group;
      };
    };
  };
}
