#!/bin/bash
# grpc_stack_depth.sh - how deep a unary gRPC call's coroutine stack goes,
# and how many pages the coroutine stacks hold, in bench/grpc_greeter
# after an h2load burst (informational, not part of compare.sh).
#
#   BUILD_DIR=build-rel bench/grpc_stack_depth.sh [N]
#
# Coroutine stacks are slots of 64 MiB regions (src/runtime/stack.c:
# 64 KiB stacks, a 4 KiB guard below each with MADV_GUARD_INSTALL), fresh
# pages read zero, and a spare stack keeps what it was written with; so
# for each slot, the lowest non-zero byte (read from /proc/PID/mem, the
# pages present from /proc/PID/pagemap: run as root) is the deepest any
# coroutine on it went.  The histogram's big bucket is the handlers'.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${BIN:-$ROOT/${BUILD_DIR:-build-rel}/bench/grpc_greeter}
N=${1:-2000}
PORT=$((20000 + RANDOM % 20000))
TMP=$(mktemp -d)
trap 'kill $SP 2>/dev/null || true; rm -rf "$TMP"' EXIT
printf '\x00\x00\x00\x00\x07\x0a\x05world' >"$TMP/hello.bin"
"$BIN" --listen 127.0.0.1:$PORT </dev/null >/dev/null 2>&1 &
SP=$!
sleep 0.5
timeout 60 h2load -n "$N" -c16 -m64 -t2 -d "$TMP/hello.bin" -H 'content-type: application/grpc' \
    -H 'te: trailers' "http://127.0.0.1:$PORT/helloworld.Greeter/SayHello" | grep -E '^requests:'
python3 - "$SP" <<'PY'
import collections, struct, sys
pid = int(sys.argv[1]); slot = 68 * 1024; page = 4096
regs = []
for l in open(f'/proc/{pid}/maps'):
    f = l.split()
    a, b = (int(x, 16) for x in f[0].split('-'))
    if b - a >= 60 << 20 and len(f) < 6:
        regs.append((a, b))
mem = open(f'/proc/{pid}/mem', 'rb'); pm = open(f'/proc/{pid}/pagemap', 'rb')
depths = []; pages = collections.Counter()
for a, b in regs:
    n = (b - a) // page
    pm.seek(a // page * 8); raw = pm.read(n * 8)
    present = [(struct.unpack_from('<Q', raw, i * 8)[0] >> 63) & 1 for i in range(n)]
    per = slot // page
    for s in range(0, n - per + 1, per):
        k = sum(present[s:s + per])
        if not k:
            continue
        pages[k] += 1
        for pg in range(s + 1, s + per):
            if present[pg]:
                mem.seek(a + pg * page); d = mem.read(page)
                nz = next((i for i, c in enumerate(d) if c), None)
                if nz is not None:
                    depths.append(a + (s + per) * page - (a + pg * page + nz))
                    break
print('stacks by pages present:', ', '.join(f'{k} page(s): {v}' for k, v in sorted(pages.items())))
h = collections.Counter(d // 256 * 256 for d in depths)
print('deepest point (bytes below the top, 256-byte buckets):')
for k in sorted(h):
    print(f'  {k:6d}-{k + 255:<6d} {h[k]} stacks')
PY
