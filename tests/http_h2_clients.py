#!/usr/bin/python3
"""http_h2_clients.py - tests/http_h2_server against real HTTP/2 clients.

    /usr/bin/python3 tests/http_h2_clients.py path/to/http_h2_server

curl (--http2-prior-knowledge), nghttp and h2load talk h2c to the server;
the same requests through the router and middleware go over HTTP/1.1 and
HTTP/2 and must give the same statuses, bodies and fields; python3-h2
checks what curl does not show (trailers both ways, resets, flow control,
GOAWAY on shutdown).  Every client run is bounded by `timeout`.
Exit 77 (skipped) when curl, nghttp or h2load is missing.
"""

import gzip
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from http_h2_lib import (CheckFailed, H2Client, Server, eq, expect, probe,  # noqa: E402
                         run_checks)


def curl(port, path, h2=True, args=(), timeout=20):
    """status, headers (lower-case), body of one curl request."""
    cmd = ["timeout", str(timeout), "curl", "-sS", "-D", "-", "--max-time", str(timeout - 2),
           "--http2-prior-knowledge" if h2 else "--http1.1", *args,
           f"http://127.0.0.1:{port}{path}"]
    p = subprocess.run(cmd, capture_output=True)
    expect(p.returncode == 0, f"curl {path}: exit {p.returncode}: {p.stderr.decode()[:300]}")
    head, _, body = p.stdout.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    hdrs = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    return status, hdrs, body


# The same request over both protocols: everything but Date and the
# framing fields must agree.
SAME = [
    ("/plaintext", ()),
    ("/users-not-found", ()),
    ("/gzip", ("-H", "Accept-Encoding: gzip")),
    ("/gzip", ()),
    ("/cors", ("-H", "Origin: http://a.example")),
    ("/cors", ("-X", "OPTIONS", "-H", "Origin: http://a.example",
               "-H", "Access-Control-Request-Method: PUT")),
    ("/timeout?ms=1000", ()),
    ("/timeout?ms=1", ()),
    ("/limited", ("--data-binary", "x" * 2000)),
    ("/limited", ("--data-binary", "x" * 200)),
    ("/json", ("-H", "Content-Type: application/json", "--data-binary", '{"a":[1,2,{"b":null}]}')),
    ("/json", ("--data-binary", "{not json")),
    ("/echo", ("--data-binary", "@" + os.path.abspath(__file__))),
    ("/file", ()),
    ("/file", ("-r", "100-199")),
    ("/big?n=300000", ()),
    ("/reqid", ("-H", "X-Request-Id: abc123")),
]
IGNORED = {"date", "content-length", "transfer-encoding", "connection", "keep-alive"}


def same_over_both(exe):
    s = Server(exe)
    try:
        for path, args in SAME:
            st1, h1, b1 = curl(s.port, path, h2=False, args=args)
            st2, h2_, b2 = curl(s.port, path, h2=True, args=args)
            what = f"{path} {' '.join(args)[:40]}"
            eq(st2, st1, f"{what}: status over HTTP/2 vs HTTP/1.1")
            eq(b2, b1, f"{what}: body over HTTP/2 vs HTTP/1.1")
            f1 = {k: v for k, v in h1.items() if k not in IGNORED}
            f2 = {k: v for k, v in h2_.items() if k not in IGNORED}
            eq(f2, f1, f"{what}: fields over HTTP/2 vs HTTP/1.1")
            if path == "/gzip" and args:
                expect(gzip.decompress(b2).startswith(b"line 0 of"), "gzip body decodes")
        # and the handler can tell them apart
        eq(curl(s.port, "/proto")[2], b"HTTP/2 GET /proto\n", "proto over h2")
        eq(curl(s.port, "/proto", h2=False)[2], b"HTTP/1.1 GET /proto\n", "proto over 1.1")
        # the access log says which
        curl(s.port, "/logged")
        curl(s.port, "/logged", h2=False)
        lines = [json.loads(l) for l in s.stderr().splitlines() if '"msg":"request"' in l]
        eq(sorted(l["proto"] for l in lines), ["HTTP/1.1", "HTTP/2"], "access log protos")
    finally:
        s.stop()


def curl_basics(exe):
    s = Server(exe)
    try:
        st, h, b = curl(s.port, "/plaintext")
        eq((st, b), (200, b"Hello, World!"), "GET")
        eq(h.get("content-length"), "13", "content-length")
        body = os.urandom(3 << 20)
        p = subprocess.run(["timeout", "30", "curl", "-sS", "--http2-prior-knowledge",
                            "--data-binary", "@-", f"http://127.0.0.1:{s.port}/echo"],
                           input=body, capture_output=True)
        eq(p.returncode, 0, "curl POST 3 MiB exit")
        expect(p.stdout == body, f"3 MiB echoed intact ({len(p.stdout)} bytes back)")
        st, h, b = curl(s.port, "/big?n=5000000")
        eq((st, len(b)), (200, 5000000), "5 MB response")
        # request id generated when absent
        st, h, b = curl(s.port, "/reqid")
        expect(b.startswith(b"id=") and len(b) > 8 and h.get("x-request-id") == b[3:-1].decode(),
               f"generated request id: {b!r} {h.get('x-request-id')}")
        # a failure mid-response: curl sees a reset stream, not a clean end
        p = subprocess.run(["timeout", "10", "curl", "-sS", "--http2-prior-knowledge",
                            f"http://127.0.0.1:{s.port}/fail"], capture_output=True)
        expect(p.returncode != 0, "a handler failing mid-response resets its stream")
        probe(s.port)
    finally:
        s.stop()


def nghttp_and_h2load(exe):
    s = Server(exe)
    try:
        p = subprocess.run(["timeout", "20", "nghttp", "-nv", f"http://127.0.0.1:{s.port}/plaintext",
                            f"http://127.0.0.1:{s.port}/big?n=200000"],
                           capture_output=True, text=True)
        eq(p.returncode, 0, f"nghttp exit ({p.stderr[:200]})")
        expect(p.stdout.count(":status: 200") == 2, "nghttp: two 200s")
        expect("GOAWAY" in p.stdout, "nghttp ends with GOAWAY")
        p = subprocess.run(["timeout", "60", "h2load", "-n", "2000", "-c", "8", "-m", "16",
                            f"http://127.0.0.1:{s.port}/plaintext"], capture_output=True, text=True)
        eq(p.returncode, 0, f"h2load exit ({p.stderr[:200]})")
        expect("2000 succeeded, 0 failed, 0 errored, 0 timeout" in p.stdout,
               "h2load: " + [l for l in p.stdout.splitlines() if "requests:" in l][0])
        expect("status codes: 2000 2xx" in p.stdout, "h2load: all 2xx")
        with tempfile.NamedTemporaryFile() as f:
            f.write(b"y" * 100000)
            f.flush()
            p = subprocess.run(["timeout", "60", "h2load", "-n", "400", "-c", "4", "-m", "8",
                                "-d", f.name, f"http://127.0.0.1:{s.port}/echo"],
                               capture_output=True, text=True)
        expect("400 succeeded" in p.stdout, "h2load POST 100 kB bodies: " + p.stdout[-300:])
    finally:
        s.stop()


def trailers_both_ways(exe):
    s = Server(exe)
    try:
        c = H2Client(s.port)
        body = b"z" * 100000
        sid = c.request("POST", "/trailers", body=body, trailers=[("x-checksum", "abc")])
        r = c.wait(sid)
        eq(r.status, 200, "status")
        eq(r.body, b"len=100000 checksum=abc\n", "the handler saw the body and the trailer")
        eq(r.trailers, {"x-body-length": "100000", "x-echo-checksum": "abc"}, "response trailers")
        c.close()
        # over HTTP/1.1 the response trailers come in the chunked encoding
        st, h, b = curl(s.port, "/trailers", h2=False, args=("--data-binary", "abc", "--raw"))
        eq(h.get("transfer-encoding"), "chunked", "1.1 response with trailers is chunked")
        expect(b.endswith(b"0\r\nX-Body-Length: 3\r\nX-Echo-Checksum: none\r\n\r\n"),
               f"1.1 trailer section: {b[-80:]!r}")
    finally:
        s.stop()


def many_streams_one_conn(exe):
    """Concurrent streams on one connection run their handlers concurrently."""
    s = Server(exe)
    try:
        c = H2Client(s.port)
        t0 = time.monotonic()
        sids = [c.request("GET", "/sleep?ms=300") for _ in range(50)]
        for sid in sids:
            r = c.wait(sid)
            eq((r.status, r.body), (200, b"slept\n"), "sleep")
        el = time.monotonic() - t0
        expect(el < 2.0, f"50 streams of 300 ms took {el:.2f}s: not concurrent")
        # a client reset of a sleeping stream: the handler's ctx is cancelled
        sid = c.request("GET", "/sleep?ms=5000")
        time.sleep(0.1)
        c.conn.reset_stream(sid)
        c.flush()
        sid2 = c.request("GET", "/plaintext")
        eq(c.wait(sid2).body, b"Hello, World!", "the connection goes on after a reset")
        c.close()
    finally:
        s.stop()


def slow_reader_flow_control(exe):
    """A client that reads slowly gets all of a large body, window by window."""
    s = Server(exe)
    try:
        c = H2Client(s.port)
        sid = c.request("GET", "/big?n=2000000")
        r = c.responses[sid]
        while not r.done:
            expect(c.pump(), "connection open")
        eq(len(r.body), 2000000, "all bytes")
        expect(r.body[:26] == b"abcdefghijklmnopqrstuvwxyz", "content")
        c.close()
    finally:
        s.stop()


def graceful_shutdown(exe):
    """SIGTERM: GOAWAY to every connection, in-flight streams finish."""
    s = Server(exe)
    idle = H2Client(s.port)
    eq(idle.wait(idle.request("GET", "/plaintext")).status, 200, "a first request")
    # the in-flight request through curl (python-h2 closes its side on GOAWAY)
    busy = subprocess.Popen(["timeout", "10", "curl", "-sS", "--http2-prior-knowledge",
                             f"http://127.0.0.1:{s.port}/sleep?ms=700"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(0.3)
    s.proc.send_signal(15)
    out, err = busy.communicate()
    eq((busy.returncode, out), (0, b"slept\n"), f"the in-flight stream finished ({err!r})")
    end = time.monotonic() + 5
    while idle.goaway is None and time.monotonic() < end and idle.pump():
        pass
    expect(idle.goaway is not None, "GOAWAY on the idle connection")
    eq(idle.goaway.error_code, 0, "GOAWAY NO_ERROR")
    eq(idle.goaway.last_stream_id, 1, "GOAWAY's last stream id")
    out = s.stop()
    expect("bye 0" in out, f"serve returned 0: {out!r}")


CHECKS = [
    ("curl_basics", curl_basics),
    ("same_over_both", same_over_both),
    ("nghttp_and_h2load", nghttp_and_h2load),
    ("trailers_both_ways", trailers_both_ways),
    ("many_streams_one_conn", many_streams_one_conn),
    ("slow_reader_flow_control", slow_reader_flow_control),
    ("graceful_shutdown", graceful_shutdown),
]

if __name__ == "__main__":
    for tool in ("curl", "nghttp", "h2load"):
        if not shutil.which(tool):
            print(f"{tool} not found: skipped")
            sys.exit(77)
    if len(sys.argv) > 2:
        CHECKS = [c for c in CHECKS if c[0] in sys.argv[2:]]
    run_checks(CHECKS, sys.argv)
