#!/usr/bin/env python3
"""http_real_clients.py - the hello example against real HTTP clients.

    python3 tests/http_real_clients.py path/to/hello [--keep-going]

Starts `hello --listen 127.0.0.1:<free port>` and talks to it with Python's
http.client, with curl, and with raw sockets, then stops it with SIGTERM
while 20 requests are in flight.  Python 3 standard library only.  Each
check says what it does; the first failure ends the run with a non-zero
exit (with --keep-going: every check runs, and the exit is non-zero if any
failed).
"""

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

MAX_BODY = 8 << 20          # hello's echo limit
TIMEOUT = 5.0               # seconds, for any single client operation


class CheckFailed(Exception):
    pass


def expect(cond, msg):
    if not cond:
        raise CheckFailed(msg)


def eq(got, want, what):
    if got != want:
        g, w = repr(got), repr(want)
        if len(g) > 300:
            g = g[:300] + "..."
        if len(w) > 300:
            w = w[:300] + "..."
        raise CheckFailed(f"{what}: got {g}, expected {w}")


# --------------------------------------------------------------------------
# the server

class Hello:
    def __init__(self, exe):
        self.exe = exe
        self.proc = None
        self.port = None
        self.err = tempfile.TemporaryFile()

    def start(self):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        self.port = s.getsockname()[1]
        s.close()
        # TERN_TEST_WRAP: a command to run it under (qemu-user for aarch64)
        wrap = os.environ.get("TERN_TEST_WRAP", "").split()
        self.proc = subprocess.Popen(wrap + [self.exe, "--listen", f"127.0.0.1:{self.port}"],
                                     stdout=subprocess.PIPE, stderr=self.err)
        line = self.proc.stdout.readline().decode(errors="replace")
        expect("listening on" in line,
               f"hello did not start: first line {line!r}, exit code {self.proc.poll()}")
        # wait until it accepts (the line is printed before serve() starts)
        deadline = time.monotonic() + TIMEOUT
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                expect(time.monotonic() < deadline, "hello never accepted a connection")
                time.sleep(0.02)
        threading.Thread(target=self.proc.stdout.read, daemon=True).start()

    def conn(self):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=TIMEOUT)

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stderr_text(self):
        self.err.seek(0)
        return self.err.read().decode(errors="replace")

    def kill(self):
        if self.alive():
            self.proc.kill()
            self.proc.wait()


# --------------------------------------------------------------------------
# raw sockets

def raw_exchange(port, data, per_byte_delay=0.0, timeout=TIMEOUT):
    """Send data (maybe byte by byte), then read until EOF.  The server may
    refuse early and close: a failed send is fine, the answer is read anyway.
    Returns (bytes received, True if it ended with EOF or a reset)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        try:
            if per_byte_delay:
                for i in range(len(data)):
                    s.sendall(data[i:i + 1])
                    time.sleep(per_byte_delay)
            else:
                s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        got = b""
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                return got, True
            except socket.timeout:
                return got, False
            if not chunk:
                return got, True
            got += chunk
    finally:
        s.close()


class RawResponses:
    """Content-Length responses, one after another, from a socket."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def _more(self, what):
        chunk = self.sock.recv(65536)
        expect(chunk, f"connection closed {what}")
        self.buf += chunk

    def next(self):
        """(status line, headers with lower-case names, body)"""
        while b"\r\n\r\n" not in self.buf:
            self._more(f"before a response head (have {self.buf[:100]!r})")
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
        n = int(headers.get("content-length", "0"))
        while len(self.buf) < n:
            self._more("inside a body")
        body, self.buf = self.buf[:n], self.buf[n:]
        return lines[0], headers, body


def status_of(raw):
    line = raw.split(b"\r\n", 1)[0].decode("latin-1")
    parts = line.split(" ", 2)
    expect(len(parts) >= 2 and parts[0].startswith("HTTP/1."), f"not an HTTP response: {raw[:200]!r}")
    return int(parts[1])


# --------------------------------------------------------------------------
# the checks

def check_plaintext(h):
    c = h.conn()
    c.request("GET", "/plaintext")
    r = c.getresponse()
    body = r.read()
    eq(r.status, 200, "GET /plaintext status")
    eq(r.version, 11, "GET /plaintext HTTP version")
    eq(body, b"Hello, World!", "GET /plaintext body")
    eq(r.getheader("Content-Type"), "text/plain", "GET /plaintext Content-Type")
    eq(r.getheader("Content-Length"), "13", "GET /plaintext Content-Length")
    expect(r.getheader("Date"), "GET /plaintext: no Date header")
    c.close()


def check_json(h):
    c = h.conn()
    c.request("GET", "/json")
    r = c.getresponse()
    body = r.read()
    eq(r.status, 200, "GET /json status")
    eq(r.getheader("Content-Type"), "application/json", "GET /json Content-Type")
    eq(json.loads(body), {"message": "Hello, World!"}, "GET /json document")
    c.close()


def check_echo(h):
    c = h.conn()
    body = bytes(range(256)) * 40 + "héllo ✓".encode()
    c.request("POST", "/echo", body=body, headers={"Content-Type": "application/x-test; q=1"})
    r = c.getresponse()
    got = r.read()
    eq(r.status, 200, "POST /echo status")
    eq(r.getheader("Content-Type"), "application/x-test; q=1", "POST /echo Content-Type")
    eq(got, body, "POST /echo body")
    # no Content-Type: the default
    c.request("POST", "/echo", body=b"x")
    r = c.getresponse()
    eq(r.read(), b"x", "POST /echo body without Content-Type")
    eq(r.getheader("Content-Type"), "application/octet-stream", "POST /echo default Content-Type")
    # an empty body
    c.request("POST", "/echo", body=b"", headers={"Content-Type": "text/plain"})
    r = c.getresponse()
    eq((r.status, r.read()), (200, b""), "POST /echo with an empty body")
    c.close()


def check_keep_alive(h):
    c = h.conn()
    c.connect()
    first = c.sock
    local = first.getsockname()
    for i in range(100):
        path = ("/plaintext", "/json", f"/users/u{i}")[i % 3]
        c.request("GET", path)
        r = c.getresponse()
        body = r.read()
        eq(r.status, 200, f"request {i} ({path}) status")
        expect(not r.will_close, f"request {i}: the server asked to close")
        expect(c.sock is first and c.sock.getsockname() == local,
               f"request {i}: http.client had to reconnect (the connection was not kept)")
        if path.startswith("/users/"):
            eq(json.loads(body), {"id": f"u{i}"}, f"request {i} body")
    c.close()


def check_chunked_upload(h):
    c = h.conn()
    pieces = [b"hello ", b"chunked ", b"", b"world", b"x" * 100000]
    c.request("POST", "/echo", body=iter(pieces), encode_chunked=True,
              headers={"Content-Type": "text/plain", "Transfer-Encoding": "chunked"})
    r = c.getresponse()
    got = r.read()
    eq(r.status, 200, "chunked POST /echo status")
    eq(got, b"".join(pieces), "chunked POST /echo body")
    # a small one comes back with a Content-Length
    c.request("POST", "/echo", body=iter([b"a", b"bc"]), encode_chunked=True,
              headers={"Transfer-Encoding": "chunked"})
    r = c.getresponse()
    eq((r.status, r.read(), r.getheader("Content-Length")), (200, b"abc", "3"),
       "small chunked POST /echo")
    # and the connection is still good
    c.request("GET", "/plaintext")
    eq(c.getresponse().read(), b"Hello, World!", "GET after a chunked upload")
    c.close()


def check_limit_exact(h):
    c = h.conn()
    body = os.urandom(1024) * (MAX_BODY // 1024)
    c.request("POST", "/echo", body=body)
    r = c.getresponse()
    got = r.read()
    eq(r.status, 200, "POST /echo of exactly 8 MiB: status")
    expect(got == body, "POST /echo of exactly 8 MiB: body differs")
    c.close()


def check_too_large(h):
    c = h.conn()
    c.putrequest("POST", "/echo")
    c.putheader("Content-Length", str(MAX_BODY + 1))
    c.putheader("Content-Type", "application/octet-stream")
    c.endheaders()          # the head only: the body is never sent
    t0 = time.monotonic()
    try:
        r = c.getresponse()
    except socket.timeout:
        raise CheckFailed(f"no answer within {TIMEOUT:.0f} s to a head declaring "
                          f"Content-Length {MAX_BODY + 1}: the server waits for a body it "
                          "should refuse at once with 413")
    body = r.read()
    eq(r.status, 413, "Content-Length 8 MiB + 1 status")
    eq(r.getheader("Connection"), "close", "Content-Length 8 MiB + 1 Connection header")
    expect(time.monotonic() - t0 < 1.0, "the 413 took over a second")
    print(f"      ({body.decode(errors='replace').strip()!r})")
    c.close()


def check_users(h):
    c = h.conn()
    for ident in ("abc", "42", "a b"):
        c.request("GET", "/users/" + ident.replace(" ", "%20"))
        r = c.getresponse()
        body = r.read()
        eq(r.status, 200, f"GET /users/{ident} status")
        eq(json.loads(body), {"id": ident}, f"GET /users/{ident} document")
    c.close()


def check_404_405(h):
    c = h.conn()
    c.request("GET", "/nope")
    r = c.getresponse()
    eq((r.status, r.read()), (404, b"404 Not Found\n"), "GET /nope")
    c.request("GET", "/users/abc/extra")
    r = c.getresponse()
    eq(r.status, 404, "GET /users/abc/extra status")
    r.read()
    c.request("POST", "/plaintext", body=b"ignored")
    r = c.getresponse()
    eq((r.status, r.read()), (405, b"405 Method Not Allowed\n"), "POST /plaintext")
    eq(r.getheader("Allow"), "GET, HEAD", "POST /plaintext Allow")
    c.request("DELETE", "/echo")
    r = c.getresponse()
    r.read()
    eq((r.status, r.getheader("Allow")), (405, "POST"), "DELETE /echo status and Allow")
    # all on one connection: errors are answers, not broken connections
    c.request("GET", "/plaintext")
    eq(c.getresponse().read(), b"Hello, World!", "GET after 404/405 on the same connection")
    c.close()


def curl(h, *args, data=None):
    p = subprocess.run(["curl", "-sS", "--max-time", "10", *args], input=data,
                       capture_output=True, timeout=20)
    expect(p.returncode == 0,
           f"curl {' '.join(args)} failed ({p.returncode}): {p.stderr.decode(errors='replace')}")
    return p.stdout, p.stderr.decode(errors="replace")


def check_curl(h):
    out, _ = curl(h, h.url("/plaintext"))
    eq(out, b"Hello, World!", "curl GET /plaintext")

    out, _ = curl(h, "-i", "--http1.0", h.url("/plaintext"))
    head, body = out.split(b"\r\n\r\n", 1)
    expect(head.startswith(b"HTTP/1.0 200 OK\r\n"), f"curl --http1.0: status line {head[:40]!r}")
    expect(b"\r\nConnection: close" in head, f"curl --http1.0: no Connection: close in {head!r}")
    eq(body, b"Hello, World!", "curl --http1.0 body")

    out, _ = curl(h, "-I", h.url("/plaintext"))
    head = out.decode("latin-1")
    expect(head.startswith("HTTP/1.1 200 OK\r\n"), f"curl -I: {head[:40]!r}")
    expect("\r\nContent-Length: 13\r\n" in head, f"curl -I: no Content-Length: 13 in {head!r}")
    expect(head.endswith("\r\n\r\n"), f"curl -I: a body after the head: {head!r}")

    body = os.urandom(50000)
    out, _ = curl(h, "--data-binary", "@-", "-H", "Content-Type: application/x-bin",
                  h.url("/echo"), data=body)
    expect(out == body, f"curl --data-binary @-: {len(out)} bytes back for {len(body)}")

    big = os.urandom(2 * 1000 * 1000)
    with tempfile.NamedTemporaryFile() as f:
        f.write(big)
        f.flush()
        t0 = time.monotonic()
        out, err = curl(h, "-v", "-H", "Expect: 100-continue", "--data-binary", "@" + f.name,
                        h.url("/echo"))
        took = time.monotonic() - t0
    expect(out == big, f"curl Expect: 100-continue: {len(out)} bytes back for {len(big)}")
    expect("< HTTP/1.1 100 Continue" in err,
           "curl Expect: 100-continue: the server never sent 100 Continue")
    # curl sends anyway after 1 s without a 100: the 100 must have come first
    expect(took < 0.9, f"curl Expect: 100-continue took {took:.2f} s")


def check_slow_client(h):
    req = b"GET /plaintext HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    t0 = time.monotonic()
    got, closed = raw_exchange(h.port, req, per_byte_delay=0.015)
    eq(status_of(got), 200, f"slow client ({len(req)} bytes over {time.monotonic() - t0:.1f} s)")
    expect(got.endswith(b"\r\n\r\nHello, World!"), f"slow client: body {got[-40:]!r}")
    expect(closed, "slow client: not closed after Connection: close")


def check_oversized_header(h):
    req = b"GET /plaintext HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * (70 * 1024) + b"\r\n\r\n"
    got, closed = raw_exchange(h.port, req)
    expect(got, "oversized header: no answer at all (connection reset before the 431?)")
    eq(status_of(got), 431, "70 KiB header field")
    expect(closed, "oversized header: the connection stayed open")


def check_long_request_line(h):
    req = b"GET /" + b"a" * (100 * 1024) + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    got, closed = raw_exchange(h.port, req)
    expect(got, "100 KiB request line: no answer at all (connection reset before the 414?)")
    eq(status_of(got), 414, "100 KiB request line")
    expect(closed, "long request line: the connection stayed open")


def check_pipelined_raw(h):
    s = socket.create_connection(("127.0.0.1", h.port), timeout=TIMEOUT)
    reqs = b"".join(b"GET /users/p%d HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in range(10))
    s.sendall(reqs)
    rr = RawResponses(s)
    for i in range(10):
        line, hdrs, body = rr.next()
        eq(line, "HTTP/1.1 200 OK", f"pipelined response {i}")
        eq(json.loads(body), {"id": f"p{i}"}, f"pipelined response {i} body")
    eq(rr.buf, b"", "bytes after the 10th pipelined response")
    s.close()


def check_sigterm(h):
    n = 20
    results = [None] * n
    sent = threading.Barrier(n + 1, timeout=TIMEOUT)

    def client(i):
        try:
            c = h.conn()
            c.request("GET", "/sleep?ms=1500")
            sent.wait()
            r = c.getresponse()
            results[i] = (r.status, r.read(), r.getheader("Connection"))
            c.close()
        except Exception as e:  # reported below
            results[i] = ("error", repr(e), None)
            try:
                sent.abort()
            except Exception:
                pass

    threads = [threading.Thread(target=client, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    sent.wait()
    # the requests are in the handlers now: sent is not read, so leave the
    # server time to read them on a loaded machine (the handlers sleep 1.5 s)
    time.sleep(0.5)
    t0 = time.monotonic()
    h.proc.send_signal(signal.SIGTERM)
    for t in threads:
        t.join(TIMEOUT)
    bad = [(i, r) for i, r in enumerate(results) if r is None or r[:2] != (200, b"slept 1500 ms\n")]
    expect(not bad, f"{len(bad)} of {n} in-flight requests failed at SIGTERM: {bad[:5]}")
    try:
        code = h.proc.wait(TIMEOUT)
    except subprocess.TimeoutExpired:
        raise CheckFailed(f"hello still running {TIMEOUT:.0f} s after SIGTERM")
    took = time.monotonic() - t0
    eq(code, 0, "hello's exit code after SIGTERM")
    expect(took < 3.0, f"hello took {took:.1f} s to exit")
    closes = sum(1 for r in results if r[2] == "close")
    # tern/http.h: in-flight requests finish, "their responses carry Connection: close"
    eq(closes, n, "answers with Connection: close among those in flight at SIGTERM")
    print(f"      (all {n} answered with Connection: close; exit 0 after {took:.2f} s)")
    try:
        socket.create_connection(("127.0.0.1", h.port), timeout=1).close()
        raise CheckFailed("the port still accepts connections after exit")
    except ConnectionRefusedError:
        pass


CHECKS = [
    ("GET /plaintext with http.client", check_plaintext),
    ("GET /json with http.client, parsed", check_json),
    ("POST /echo with a body and Content-Type: echoed exactly", check_echo),
    ("keep-alive: 100 requests on one HTTPConnection, never reconnecting", check_keep_alive),
    ("chunked upload (encode_chunked=True) to /echo", check_chunked_upload),
    ("POST /echo of exactly 8 MiB is accepted", check_limit_exact),
    ("GET /users/abc (route parameter)", check_users),
    ("404 and 405 with Allow", check_404_405),
    ("curl: GET, --http1.0, -I, --data-binary @-, Expect: 100-continue with 2 MB", check_curl),
    ("raw socket: a slow client (one byte every 15 ms) is served", check_slow_client),
    ("raw socket: 10 pipelined requests, answered in order", check_pipelined_raw),
    ("raw socket: a 70 KiB header field gets 431", check_oversized_header),
    ("raw socket: a 100 KiB request line gets 414", check_long_request_line),
    ("Content-Length 8 MiB + 1, head only: 413 at once", check_too_large),
]


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    keep_going = "--keep-going" in sys.argv[1:]
    if len(args) != 1:
        print(__doc__.strip().split("\n\n")[1], file=sys.stderr)
        return 2
    exe = os.path.abspath(args[0])
    if not os.access(exe, os.X_OK):
        print(f"FAIL: {exe} is not an executable", file=sys.stderr)
        return 2
    have_curl = shutil.which("curl") is not None
    failed = 0
    h = Hello(exe)
    try:
        print(f"starting {exe}")
        h.start()
        print(f"  listening on 127.0.0.1:{h.port}")
        for name, fn in CHECKS + [("SIGTERM with 20 requests in flight on /sleep?ms=1500: "
                                    "all get 200, exit 0", check_sigterm)]:
            if fn is check_curl and not have_curl:
                print(f"SKIP {name} (curl not installed)")
                continue
            if not h.alive():
                # a crash in an earlier check: start a fresh server for the rest
                print(f"  hello exited ({h.proc.returncode}); its stderr:\n{h.stderr_text()}")
                h = Hello(exe)
                h.start()
            print(f"check: {name}", flush=True)
            try:
                fn(h)
                print("  ok", flush=True)
            except (CheckFailed, OSError, http.client.HTTPException) as e:
                failed += 1
                kind = "" if isinstance(e, CheckFailed) else f"{type(e).__name__}: "
                print(f"FAIL: {name}\n  {kind}{e}", file=sys.stderr, flush=True)
                if not h.alive():
                    print(f"  hello exited with {h.proc.returncode}; its stderr:\n"
                          f"{h.stderr_text()}", file=sys.stderr)
                if not keep_going:
                    return 1
                if fn is not check_sigterm and h.alive():
                    # its state is unknown now: go on with a fresh server
                    h.kill()
                    h = Hello(exe)
                    h.start()
    finally:
        h.kill()
    if failed:
        print(f"{failed} check(s) failed", file=sys.stderr)
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
