#!/usr/bin/env bash
# A server whose listen fails says why and exits 1: hello and svc, started
# on a port another socket holds.
#   listen_fails.sh HELLO SVC
set -uo pipefail
python3 - "$@" <<'PY'
import socket, subprocess, sys
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen()
addr = "127.0.0.1:%d" % s.getsockname()[1]
bad = 0
for exe in sys.argv[1:]:
    r = subprocess.run([exe, "--listen", addr], capture_output=True, text=True, timeout=30)
    want = "listen on %s: Address already in use" % addr
    ok = r.returncode == 1 and want in r.stderr
    print("%s %s: exit %d, stderr %r" % ("ok" if ok else "FAIL", exe, r.returncode, r.stderr))
    bad += not ok
sys.exit(1 if bad else 0)
PY
