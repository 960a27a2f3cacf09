"""http_h2_lib.py - what the HTTP/2 test scripts share: the test server
(tests/http_h2_server.c) as a subprocess, and a small blocking HTTP/2
client on Debian's python3-h2 (a real peer: its own framing, HPACK and
flow control).  Imported by http_h2_clients.py and http_h2_attacks.py.
"""

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

import h2.config
import h2.connection
import h2.events

TIMEOUT = 5.0


class CheckFailed(Exception):
    pass


def expect(cond, msg):
    if not cond:
        raise CheckFailed(msg)


def eq(got, want, what):
    if got != want:
        g, w = repr(got), repr(want)
        raise CheckFailed(f"{what}: got {g[:300]}, expected {w[:300]}")


def sanitized(exe):
    """Whether exe was built with ASan or TSan (memory budgets x4)."""
    with open(exe, "rb") as f:
        data = f.read()
    return b"__asan_init" in data or b"__tsan_init" in data


class Server:
    """The test server; `args` are its options (--max-streams 8 ...)."""

    def __init__(self, exe, *args):
        self.exe = exe
        self.err = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([exe, *map(str, args)], stdout=subprocess.PIPE,
                                     stderr=self.err, text=True)
        line = self.proc.stdout.readline()
        expect(line.startswith("port "), f"server did not start: {line!r}")
        self.port = int(line.split()[1])

    def rss_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise CheckFailed("no VmRSS")

    def alive(self):
        return self.proc.poll() is None

    def stop(self, timeout=30):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            out, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()
            raise CheckFailed("server did not stop after SIGTERM")
        err = self.stderr()
        for bad in ("Sanitizer", "runtime error:", "TERN_ASSERT", "assertion"):
            expect(bad not in err, f"server reported: {err[-3000:]}")
        return out

    def stderr(self):
        self.err.seek(0)
        return self.err.read().decode(errors="replace")


class Response:
    def __init__(self):
        self.status = None
        self.headers = {}
        self.body = b""
        self.trailers = {}
        self.reset = None       # RST_STREAM error code
        self.done = False


class H2Client:
    """One connection, h2c with prior knowledge; requests by stream id."""

    def __init__(self, port, timeout=TIMEOUT, settings=None):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        cfg = h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        self.conn = h2.connection.H2Connection(config=cfg)
        self.conn.initiate_connection()
        if settings:
            self.conn.update_settings(settings)
        self.flush()
        self.responses = {}
        self.goaway = None
        self.closed = False

    def flush(self):
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def request(self, method, path, body=None, headers=(), trailers=None, end=True):
        sid = self.conn.get_next_available_stream_id()
        hdrs = [(":method", method), (":path", path), (":scheme", "http"),
                (":authority", "127.0.0.1"), *headers]
        no_body = body is None and trailers is None
        self.conn.send_headers(sid, hdrs, end_stream=no_body and end)
        if body is not None:
            self.send_body(sid, body, end=trailers is None and end)
        if trailers:
            self.conn.send_headers(sid, list(trailers), end_stream=True)
        self.responses[sid] = Response()
        self.flush()
        return sid

    def send_body(self, sid, body, end=True):
        """Send body, waiting for window as flow control demands."""
        off = 0
        while off < len(body):
            room = min(self.conn.local_flow_control_window(sid), self.conn.max_outbound_frame_size)
            if room <= 0:
                self.flush()
                self.pump()
                continue
            chunk = body[off:off + room]
            self.conn.send_data(sid, chunk)
            off += len(chunk)
        if end:
            self.conn.end_stream(sid)
        self.flush()

    def pump(self):
        """Read once and handle the events; False once closed."""
        try:
            data = self.sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            data = b""
        if not data:
            self.closed = True
            return False
        for ev in self.conn.receive_data(data):
            r = self.responses.get(getattr(ev, "stream_id", None))
            if isinstance(ev, h2.events.ResponseReceived):
                r.headers = dict(ev.headers)
                r.status = int(r.headers[":status"])
            elif isinstance(ev, h2.events.DataReceived):
                r.body += ev.data
                self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.TrailersReceived):
                r.trailers = dict(ev.headers)
            elif isinstance(ev, h2.events.StreamEnded):
                r.done = True
            elif isinstance(ev, h2.events.StreamReset):
                if r:
                    r.reset = ev.error_code
                    r.done = True
            elif isinstance(ev, h2.events.ConnectionTerminated):
                self.goaway = ev
        self.flush()
        return True

    def wait(self, sid, deadline=TIMEOUT):
        end = time.monotonic() + deadline
        r = self.responses[sid]
        while not r.done:
            expect(time.monotonic() < end, f"stream {sid}: no complete response in {deadline}s")
            if not self.pump():
                raise CheckFailed(f"stream {sid}: connection closed before the response ended")
        return r

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def probe(port, timeout=2.0):
    """A fresh connection's GET /plaintext answered within timeout seconds."""
    t0 = time.monotonic()
    c = H2Client(port, timeout=timeout)
    sid = c.request("GET", "/plaintext")
    r = c.wait(sid, timeout)
    c.close()
    eq(r.status, 200, "probe status")
    eq(r.body, b"Hello, World!", "probe body")
    return time.monotonic() - t0


def run_checks(checks, argv):
    failed = 0
    for name, fn in checks:
        t0 = time.monotonic()
        try:
            fn(argv[1])
            print(f"ok   {name} ({time.monotonic() - t0:.2f}s)", flush=True)
        except CheckFailed as e:
            print(f"FAIL {name}: {e}", flush=True)
            failed += 1
    sys.exit(1 if failed else 0)
