#!/usr/bin/env bash
# bench/http_icount.sh HELLO [N] - total instructions (callgrind, one P) of
# examples/hello serving N (default 10000) keep-alive GET /plaintext from
# one Python client, start-up and shutdown included.  The total depends on
# how often the server goes idle between requests, so on machine load:
# compare two builds only with runs alternated in the same conditions.
set -u
BIN=${1:?usage: bench/http_icount.sh HELLO [N]}; n=${2:-10000}
port=$((20000 + RANDOM % 20000)); f=$(mktemp)
TERN_PROCS=1 valgrind --tool=callgrind --callgrind-out-file="$f" "$BIN" --listen 127.0.0.1:$port \
    >/dev/null 2>&1 &
pid=$!
/usr/bin/python3 - "$port" "$n" <<'PY'
import http.client, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
for _ in range(300):
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30); c.connect(); break
    except OSError: time.sleep(0.1)
for _ in range(n):
    c.request("GET", "/plaintext"); r = c.getresponse(); r.read()
    assert r.status == 200
PY
kill -INT $pid; wait $pid
printf 'http_plaintext_total\t%s\tinstructions/%s requests\n' "$(grep -m1 "^summary:" "$f" | awk '{print $2}')" "$n"
rm -f "$f"
