#!/usr/bin/python3
"""ready.py - start a server and time it from exec to its first 200.

    ready.py [--idle SECONDS] URL -- CMD [ARG ...]

Starts CMD, asks URL (http://127.0.0.1:PORT/path) every 0.5 ms with a raw
HTTP/1.1 GET until it answers 200, and prints the milliseconds from just
before exec to that answer.  With --idle it then leaves the server alone
for SECONDS and prints, on the same line, its resident set (VmRSS, bytes:
the idle RSS).  Then SIGTERM (SIGKILL after 5 s).  Exit status 1 when the
server exits or does not answer within 20 s.  The poller is this process,
started before the clock, so its own start-up is not counted.
"""
import os
import signal
import socket
import subprocess
import sys
import time
from urllib.parse import urlsplit


def answers_200(host, port, path):
    try:
        with socket.create_connection((host, port), timeout=1) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
            head = s.recv(64)
            return head.startswith(b"HTTP/1.1 200") or head.startswith(b"HTTP/1.0 200")
    except OSError:
        return False


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def main(argv):
    idle = None
    if argv[:1] == ["--idle"]:
        idle = float(argv[1])
        argv = argv[2:]
    if len(argv) < 3 or argv[1] != "--":
        sys.stderr.write(__doc__)
        return 2
    u = urlsplit(argv[0])
    host, port, path = u.hostname, u.port, u.path or "/"
    t0 = time.monotonic()
    p = subprocess.Popen(argv[2:], stdin=subprocess.DEVNULL)
    try:
        while not answers_200(host, port, path):
            if p.poll() is not None or time.monotonic() - t0 > 20:
                sys.stderr.write(f"ready.py: {argv[2]} exited or did not answer {argv[0]}\n")
                return 1
            time.sleep(0.0005)
        ms = (time.monotonic() - t0) * 1000
        out = f"{ms:.1f}"
        if idle is not None:
            time.sleep(idle)
            out += f" {rss_bytes(p.pid)}"
        print(out)
        return 0
    finally:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
