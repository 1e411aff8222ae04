#!/usr/bin/env python3
"""An old Peerix LAN peer, for tests: it stands for machines still running the old Python
program, written afresh from the description of its wire format (standard library only).

UDP, port P (12304 by default), one socket bound to 0.0.0.0:P with SO_BROADCAST, for both
sending and receiving:
  request  0x00 | request id (u32 big-endian) | store hash (32 ASCII characters)
           sent to port P of the broadcast address of every private IPv4 interface, or of
           one host given by unicast
  answer   0x01 | the request id echoed | HTTP port (u32 big-endian) | "local/<hash>.narinfo"
           sent back to the source address and port of the request
  Datagrams from the machine's own IPv4 addresses are ignored.
HTTP, port H, every interface:
  GET /local/<hash>.narinfo   the narinfo (text/x-nix-narinfo), its URL field set to
                              local/nar/<B>.nar, B = standard base64 of the full store path
                              with every "/" replaced by "_" (padding kept)
  GET /local/nar/<B>.nar      the NAR, as text/plain (as the old program served it)
A requester GETs http://<answer source>:<answer port>/local/<hash>.narinfo, then the URL
field of that narinfo from the same address and port.

  old_peer.py serve --http-port H --path NARINFO NAR [--path ...]   answer and serve
  old_peer.py fetch HASH --out DIR [--unicast HOST]                 ask, then download
  old_peer.py ask HASH [--unicast HOST]                             ask, report the answer
Each prints JSON lines on stdout: serve one per request or download, the others one result
(ask's with elapsed_ms, the time from sending the request to the answer or the wait's end).
"""

import argparse, base64, fcntl, ipaddress, json, os, random, socket, struct, sys, threading, time
import urllib.error, urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

REQUEST, ANSWER = 0x00, 0x01
SIOCGIFADDR, SIOCGIFNETMASK = 0x8915, 0x891B
print_lock = threading.Lock()


def emit(record):
    with print_lock:
        print(json.dumps(record), flush=True)


def ipv4_interfaces():
    """(address, network) of every interface with an IPv4 address, read by ioctl."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    found = []
    for _, name in socket.if_nameindex():
        request = struct.pack("256s", name.encode()[:15])
        try:
            addr = socket.inet_ntoa(fcntl.ioctl(probe, SIOCGIFADDR, request)[20:24])
            mask = socket.inet_ntoa(fcntl.ioctl(probe, SIOCGIFNETMASK, request)[20:24])
        except OSError:  # no IPv4 address on this interface
            continue
        found.append((addr, ipaddress.IPv4Interface(f"{addr}/{mask}").network))
    probe.close()
    return found


def udp_socket(port):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    sock.bind(("0.0.0.0", port))
    return sock


def nar_name(store_path):
    return base64.b64encode(store_path.encode()).decode().replace("/", "_")


def load_path(narinfo_file):
    """(hash, narinfo text with its URL rewritten, NAR route) of one shared path."""
    lines = open(narinfo_file).read().splitlines()
    store_path = next(l[len("StorePath: "):] for l in lines if l.startswith("StorePath: "))
    hash_part = os.path.basename(store_path)[:32]
    url = f"local/nar/{nar_name(store_path)}.nar"
    lines = [l for l in lines if not l.startswith("URL: ")]
    lines.insert(1, f"URL: {url}")
    return hash_part, "\n".join(lines) + "\n", "/" + url


def serve(args):
    hashes, narinfos, nars = set(), {}, {}
    for narinfo_file, nar_file in args.path:
        hash_part, narinfo, nar_route = load_path(narinfo_file)
        hashes.add(hash_part)
        narinfos[f"/local/{hash_part}.narinfo"] = narinfo.encode()
        nars[nar_route] = nar_file

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path in narinfos:
                body = narinfos[self.path]
                return self.reply(200, "text/x-nix-narinfo", len(body), [body])
            try:
                nar = open(nars[self.path], "rb")
            except (KeyError, OSError):  # not shared, or its file is gone
                return self.reply(404, "text/plain", 0, [])
            with nar:
                size = os.fstat(nar.fileno()).st_size
                self.reply(200, "text/plain", size, iter(lambda: nar.read(1 << 16), b""))

        def reply(self, status, content_type, length, chunks):
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(length))
            self.end_headers()
            for chunk in chunks:
                self.wfile.write(chunk)
            emit({"event": "http", "from": "%s:%d" % self.client_address[:2],
                  "path": self.path, "status": status})

        def log_message(self, *_):  # the JSON lines above are the log
            pass

    own = {addr for addr, _ in ipv4_interfaces()}
    sock = udp_socket(args.udp_port)
    # Bound before HTTP starts, so a peer whose HTTP port answers also hears requests.
    http = ThreadingHTTPServer(("0.0.0.0", args.http_port), Handler)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    while True:
        data, source = sock.recvfrom(2048)
        if source[0] in own or len(data) < 5 or data[0] != REQUEST:
            continue
        request_id = struct.unpack_from("!I", data, 1)[0]
        hash_part = data[5:].decode("ascii", "replace")
        answered = hash_part in hashes
        if answered:
            answer = struct.pack("!BII", ANSWER, request_id, args.http_port)
            sock.sendto(answer + f"local/{hash_part}.narinfo".encode(), source)
        emit({"event": "request", "from": "%s:%d" % source, "id": request_id,
              "hash": hash_part, "answered": answered})


def ask(args):
    """Sends one request; returns (id, answer source, HTTP port, path) or (id, None, ...), and
    the milliseconds from sending to the answer or to the end of the wait."""
    sock = udp_socket(args.source_port)
    interfaces = ipv4_interfaces()
    own = {addr for addr, _ in interfaces}
    if args.unicast:
        targets = [args.unicast]
    else:
        targets = [str(net.broadcast_address) for addr, net in interfaces
                   if net.is_private and not net.is_loopback]
    request_id = random.getrandbits(32)
    request = struct.pack("!BI", REQUEST, request_id) + args.hash.encode()
    started = time.monotonic()

    def elapsed_ms():
        return (time.monotonic() - started) * 1000

    for target in targets:
        sock.sendto(request, (target, args.udp_port))
    deadline = time.monotonic() + args.timeout_ms / 1000
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            data, source = sock.recvfrom(2048)
        except socket.timeout:
            break
        if source[0] in own or len(data) < 5 or data[0] != ANSWER:
            continue
        if struct.unpack_from("!I", data, 1)[0] != request_id:
            continue  # an answer to some other request, or a forged one
        if len(data) < 9:
            emit({"error": "short answer", "from": "%s:%d" % source, "id": request_id})
            sys.exit(2)
        port = struct.unpack_from("!I", data, 5)[0]
        return request_id, source, port, data[9:].decode("ascii", "replace"), elapsed_ms()
    return request_id, None, None, None, elapsed_ms()


def ask_command(args):
    request_id, source, port, path, elapsed = ask(args)
    if source is None:
        emit({"answered": False, "id": request_id, "elapsed_ms": elapsed})
    else:
        emit({"answered": True, "id": request_id, "from": "%s:%d" % source, "port": port,
              "path": path, "elapsed_ms": elapsed})


def fetch(args):
    request_id, source, port, path, _ = ask(args)
    if source is None:
        return emit({"found": False, "id": request_id})
    base = f"http://{source[0]}:{port}/"
    report = {"id": request_id, "from": "%s:%d" % source, "port": port, "path": path}
    try:
        with urllib.request.urlopen(f"{base}local/{args.hash}.narinfo", timeout=10) as reply:
            report["narinfo_content_type"] = reply.headers.get("Content-Type")
            narinfo = reply.read().decode()
        url = next(l[len("URL: "):] for l in narinfo.splitlines() if l.startswith("URL: "))
        report["url"] = url
        os.makedirs(args.out, exist_ok=True)
        with urllib.request.urlopen(base + url, timeout=10) as reply, \
                open(os.path.join(args.out, f"{args.hash}.nar"), "wb") as nar:
            report["nar_content_type"] = reply.headers.get("Content-Type")
            while chunk := reply.read(1 << 16):
                nar.write(chunk)
        with open(os.path.join(args.out, f"{args.hash}.narinfo"), "w") as out:
            out.write(narinfo)
    except urllib.error.HTTPError as error:
        emit({"found": False, "status": error.code, **report})
        sys.exit(2)
    except (OSError, StopIteration, UnicodeDecodeError) as error:
        emit({"found": False, "error": str(error) or type(error).__name__, **report})
        sys.exit(2)
    emit({"found": True, **report})


def main():
    parser = argparse.ArgumentParser(description="An old Peerix LAN peer, for tests.")
    commands = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--udp-port", type=int, default=12304, help="the LAN protocol's port")
    serve_parser = commands.add_parser("serve", parents=[common], help="answer and serve paths")
    serve_parser.add_argument("--http-port", type=int, required=True)
    serve_parser.add_argument("--path", nargs=2, action="append", required=True,
                              metavar=("NARINFO", "NAR"), help="a path to share (repeatable)")
    serve_parser.set_defaults(run=serve)
    for name, run, help_text in [("fetch", fetch, "ask for HASH and download it"),
                                 ("ask", ask_command, "ask for HASH, report the answer")]:
        sub = commands.add_parser(name, parents=[common], help=help_text)
        sub.add_argument("hash")
        sub.add_argument("--unicast", metavar="HOST", help="ask HOST instead of broadcasting")
        sub.add_argument("--timeout-ms", type=int, default=1000, help="how long to wait")
        sub.add_argument("--source-port", type=int,
                         help="port to send from (default: the UDP port, as the old program)")
        if name == "fetch":
            sub.add_argument("--out", required=True, help="directory for HASH.narinfo, HASH.nar")
        sub.set_defaults(run=run)
    args = parser.parse_args()
    if getattr(args, "source_port", 0) is None:
        args.source_port = args.udp_port
    args.run(args)


if __name__ == "__main__":
    main()
