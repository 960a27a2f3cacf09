#!/usr/bin/env bash
# shop_load: shop-load against `shop all` on free ports (payments declining
# a third of the orders, so the saga both pays and compensates): a short
# open-loop run at a low rate whose every route answers, whose report
# (text and JSON) names the four routes, and whose books balance (exit
# status 0); bad flags and a gateway that does not answer: exit status 2;
# two gateways of which one is dead: it is left out (its readiness probe
# fails), no request fails, the per-second timeline adds up.
#   test_shop_load.sh <shop binary> <shop-load binary> <shop source dir>
set -euo pipefail
shop=$1 load=$2 src=$3
dir=$(mktemp -d /tmp/shop-load-XXXXXX)
pid=
cleanup() { [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT
fail() { echo "FAIL: $*"; cat "$dir/load.out" 2>/dev/null; tail -20 "$dir/shop.log" 2>/dev/null; exit 1; }

ports=($(/usr/bin/python3 - <<'PY'
import socket
ss = [socket.socket() for _ in range(7)]
for s in ss: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))
PY
))
sed -e "s/127.0.0.1:7001/127.0.0.1:${ports[0]}/; s/127.0.0.1:7002/127.0.0.1:${ports[1]}/g" \
    -e "s/127.0.0.1:7003/127.0.0.1:${ports[2]}/; s/127.0.0.1:7004/127.0.0.1:${ports[3]}/" \
    -e "s/127.0.0.1:7005/127.0.0.1:${ports[4]}/" "$src/config/gateway.yaml" > "$dir/gateway.yaml"
export SHOP_DATA_DIR=$dir/data SHOP_GATEWAY_CONFIG=$dir/gateway.yaml
export SHOP_PAYMENTS_LATENCY=5ms SHOP_PAYMENTS_FAILURE_RATE=0.3 SHOP_USERS_SCRYPT_N=1024
export SHOP_USERS_ADDR=127.0.0.1:${ports[0]} SHOP_CATALOG_ADDR=127.0.0.1:${ports[1]}
export SHOP_INVENTORY_ADDR=127.0.0.1:${ports[2]} SHOP_ORDERS_ADDR=127.0.0.1:${ports[3]}
export SHOP_PAYMENTS_ADDR=127.0.0.1:${ports[4]} SHOP_GATEWAY_ADDR=127.0.0.1:${ports[5]}
for r in USERS CATALOG INVENTORY ORDERS PAYMENTS GATEWAY; do export SHOP_${r}_ADMIN=; done
gw=http://127.0.0.1:${ports[5]}

# before the shop runs: nothing answers, so exit status 2
set +e
"$load" -gateway "$gw" -rate 10 -duration 1s -quiet > "$dir/load.out" 2>&1
[ $? -eq 2 ] || fail "shop-load without a shop: exit status 2 expected"
"$load" -rate zero > /dev/null 2>&1
[ $? -eq 2 ] || fail "shop-load -rate zero: exit status 2 expected"
"$load" -duration 1s -nonsense 1 > /dev/null 2>&1
[ $? -eq 2 ] || fail "shop-load -nonsense: exit status 2 expected"
"$load" -gateway "$gw,ftp://x" > /dev/null 2>&1
[ $? -eq 2 ] || fail "shop-load -gateway with an ftp:// URL: exit status 2 expected"
"$load" -gateway "$gw,$gw,$gw,$gw,$gw,$gw,$gw,$gw,$gw" > /dev/null 2>&1
[ $? -eq 2 ] || fail "shop-load -gateway with 9 URLs: exit status 2 expected"
set -e

"$shop" all > "$dir/shop.log" 2>&1 &
pid=$!
for _ in $(seq 100); do
  grep -q '"shop: serving","role":"gateway"' "$dir/shop.log" && break
  sleep 0.1
done

# 2 s at 25 req/s: about 50 requests, 5 checkouts, over 3 users
"$load" -gateway "$gw" -rate 25 -duration 2s -users 3 -settle 20s -seed 7 -json "$dir/load.json" \
  > "$dir/load.out" 2>&1 || fail "shop-load exited with status $? (books not balanced?)"
cat "$dir/load.out"
grep -q 'books: balanced' "$dir/load.out" || fail "no 'books: balanced' line"
for r in browse product checkout login all; do
  grep -q "^$r " "$dir/load.out" || fail "the report has no $r row"
done
/usr/bin/python3 - "$dir/load.json" <<'PY' || fail "the JSON report"
import json, sys
j = json.load(open(sys.argv[1]))
r = j["routes"]
assert j["requests"] == 50, j["requests"]
assert sum(r[k]["count"] for k in r) == 50
for k in ("browse", "product", "checkout", "login"):
    assert r[k]["p99_ms"] >= r[k]["p50_ms"] >= 0, k
assert r["browse"]["count"] > r["product"]["count"] > 0
assert r["browse"]["errors"] == 0 and r["product"]["errors"] == 0, r
b = j["books"]
assert b["balanced"] is True and b["pending"] == 0 and b["unknown"] == 0, b
assert b["placed"] == b["paid"] + b["compensated"], b
assert b["placed"] >= 1 and b["stock_sold"] == b["paid_quantity"], b
print("json ok:", b)
PY
# two gateways, one of them nothing at all (a port nobody listens on):
# every request goes to the ready one, none fails, the timeline counts them
"$load" -gateway "$gw,http://127.0.0.1:${ports[6]}" -rate 25 -duration 2s -users 2 -settle 20s -seed 8 \
  -json "$dir/load2.json" > "$dir/load.out" 2>&1 || fail "shop-load over two gateways: exit status $?"
grep -q "127.0.0.1:${ports[6]} not ready: left out" "$dir/load.out" || fail "the dead gateway was not left out"
/usr/bin/python3 - "$dir/load2.json" <<'PY' || fail "the JSON report over two gateways"
import json, sys
j = json.load(open(sys.argv[1]))
assert j["all"]["errors"] == 0, j["all"]
t = j["timeline"]
assert len(t) == 2 and sum(s["sent"] for s in t) == j["requests"] == 50, t
assert sum(s["errors"] for s in t) == 0, t
assert sum(s["checkouts_ok"] for s in t) == j["routes"]["checkout"]["status"].get("2xx", 0), t
assert j["books"]["balanced"] is True, j["books"]
print("two gateways ok:", t)
PY
kill -TERM "$pid"
wait "$pid" || fail "shop all exited with status $?"
pid=
