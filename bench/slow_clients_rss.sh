#!/usr/bin/env bash
# bench/slow_clients_rss.sh HELLO [CLIENTS] [BYTES] - examples/hello's
# resident memory with CLIENTS (default 20) clients that each POST a
# BYTES-long body (default 8 MiB) to /echo and never read the reply:
# prints VmRSS before and with them, and the cost per client (issue 15:
# 50 such clients took hello to 839 MB).  Bounded: the clients give up
# after 20 s, hello is stopped at the end.
set -u
BIN=${1:?usage: bench/slow_clients_rss.sh HELLO [CLIENTS] [BYTES]}
clients=${2:-20}; bytes=${3:-8388608}
port=$((20000 + RANDOM % 20000))
TERN_PROCS=2 "$BIN" --listen 127.0.0.1:$port >/dev/null 2>&1 &
pid=$!
trap 'kill -INT $pid 2>/dev/null; wait $pid 2>/dev/null' EXIT
rss() { awk '/^VmRSS/ {print $2}' /proc/$pid/status; }
/usr/bin/python3 - "$port" "$clients" "$bytes" "$pid" <<'PY'
import socket, sys, time
port, n, size, pid = map(int, sys.argv[1:5])
def rss():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1])
for _ in range(100):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close(); break
    except OSError: time.sleep(0.05)
time.sleep(0.2)
before = rss()
body = b"x" * size
socks = []
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port), timeout=20)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)   # and never read
    s.sendall(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Type: application/octet-stream\r\n"
              b"Content-Length: %d\r\n\r\n" % size + body)
    socks.append(s)
time.sleep(1.0)     # every handler has its body and is stuck writing
held = rss()
print(f"slow_clients_rss\t{n} clients x {size} bytes\tbefore {before} KiB\twith them {held} KiB"
      f"\tper client {(held - before) / n / 1024:.1f} MiB")
for s in socks: s.close()
PY
