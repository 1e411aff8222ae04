#!/usr/bin/env python3
"""End-to-end check of kubo_node.py: one kubo peer fetches a file from another.

    python3 tests/interop/kubo_node_check.py [SIZE_MIB]   (default 64)

Starts two kubo_node.py instances, A and B. A adds SIZE_MIB of random bytes;
B connects to A and gets the CID over Bitswap. The check passes if B's copy
has the same sha256. Prints the timings; exits 1 on any mismatch or error.
Prefix it with `strace -f -e trace=connect,sendto,sendmsg -o FILE` to see
what the peers contact.
"""

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time

NODE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "kubo_node.py")


class Peer:
    def __init__(self, name):
        self.name = name
        self.proc = subprocess.Popen(
            [sys.executable, NODE], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        self.info = json.loads(self.proc.stdout.readline())
        if "error" in self.info:
            raise SystemExit(f"{name} did not start: {self.info['error']}")

    def ask(self, line):
        start = time.monotonic()
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        reply = json.loads(self.proc.stdout.readline())
        took = time.monotonic() - start
        print(f"{self.name}: {line} -> {json.dumps(reply)} ({took:.2f} s)")
        if not reply.get("ok"):
            raise SystemExit(f"{self.name}: {line!r} failed")
        return reply, took

    def quit(self):
        if self.proc.poll() is None:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.flush()
            self.proc.wait(30)


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def main(argv):
    size = int(argv[1]) if len(argv) > 1 else 64
    with tempfile.TemporaryDirectory(prefix="kubo_node_check-") as tmp:
        src, dst = os.path.join(tmp, "in"), os.path.join(tmp, "out")
        with open(src, "wb") as f:
            for _ in range(size):
                f.write(os.urandom(1 << 20))
        peers = []
        try:
            start = time.monotonic()
            a, b = Peer("A"), Peer("B")
            peers = [a, b]
            print(f"A and B up in {time.monotonic() - start:.2f} s: {a.info['multiaddrs'][0]}")
            cid = a.ask(f"add {src}")[0]["cid"]
            b.ask(f"connect {a.info['multiaddrs'][0]}")
            took = b.ask(f"get {cid} {dst}")[1]
        finally:
            for p in peers:
                p.quit()
        same = sha256(src) == sha256(dst)
        verdict = "matches" if same else "DIFFERS"
        print(f"{size} MiB in {took:.2f} s ({size / took:.1f} MiB/s), sha256 {verdict}")
        return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
