#!/usr/bin/env bash
# roles.sh - every role of the shop alone: exec to /readyz 200 and the idle
# RSS, as bench/compare.sh's shop suite measures them (t_shop_roles:
# ready.py --idle 1, on SQLite, each role's data made by a warm-up round),
# without the suite's checkout search, the Go anchor or the build.
#
#   bench/shop/roles.sh BIN [ROUNDS]
#
# BIN is the shop binary (the static one, shop/deploy/build-static.sh's
# build-static-amd64/shop-amd64, is what shop_idle_rss_bytes reads).
# Prints per role the median idle RSS (kB, min and max beside it) and the
# median ready time (ms, and each round's).  ROUNDS default 5.
set -euo pipefail
bin=$(realpath "$1")
rounds=${2:-5}
root=$(cd "$(dirname "$0")/../.." && pwd)
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
p=()
for i in 0 1 2 3 4 5; do p+=("$(free_port)"); done
sed -e "s/127.0.0.1:7001/127.0.0.1:${p[0]}/; s/127.0.0.1:7002/127.0.0.1:${p[1]}/g" \
    -e "s/127.0.0.1:7003/127.0.0.1:${p[2]}/; s/127.0.0.1:7004/127.0.0.1:${p[3]}/" \
    -e "s/127.0.0.1:7005/127.0.0.1:${p[4]}/" -e '/^ *ratelimit:/d' \
    "$root/shop/config/gateway.yaml" >"$dir/gateway.yaml"
env=(SHOP_GATEWAY_CONFIG="$dir/gateway.yaml" SHOP_LOG_LEVEL=warn)
declare -A addr
i=0
for r in USERS CATALOG INVENTORY ORDERS PAYMENTS GATEWAY; do
    env+=("SHOP_${r}_ADDR=127.0.0.1:${p[$i]}" "SHOP_${r}_ADMIN=")
    addr[$r]=127.0.0.1:${p[$i]}
    i=$((i + 1))
done
: >"$dir/raw"
for round in $(seq 0 "$rounds"); do
    for r in users catalog inventory orders payments gateway; do
        out=$(env "${env[@]}" SHOP_DATA_DIR="$dir/data-$r" python3 "$root/bench/shop/ready.py" --idle 1 \
              "http://${addr[${r^^}]}/readyz" -- "$bin" "$r" 2>>"$dir/ready.log") || out="NA NA"
        [ "$round" = 0 ] || echo "$r $out" >>"$dir/raw"     # round 0: the warm-up
    done
done
python3 - "$dir/raw" <<'PY'
import statistics as st, sys
d = {}
for line in open(sys.argv[1]):
    r, ms, rss = line.split()
    if ms != "NA":
        d.setdefault(r, []).append((float(ms), int(rss) // 1024))
print("%-10s %8s %8s %8s %9s" % ("role", "RSS kB", "min", "max", "ready ms"))
for r, v in d.items():
    rss = [x[1] for x in v]
    ms = [x[0] for x in v]
    print("%-10s %8d %8d %8d %9.1f  (%s)" % (r, st.median(rss), min(rss), max(rss), st.median(ms),
                                            " ".join("%.1f" % m for m in ms)))
PY
