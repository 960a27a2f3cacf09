#!/usr/bin/env bash
# shop_tour: `shop all` with its gateway on free
# ports, and shop/tour.sh --run against it: sign up, log in (a JWT), browse,
# order with an Idempotency-Key (the same order twice), the order PAID in
# the aggregated view; then a request without a token is 401, and SIGTERM
# stops the shop with exit status 0.
#   shop_tour.sh <shop binary> <shop source dir>
set -euo pipefail
shop=$1 src=$2
dir=$(mktemp -d /tmp/shop-tour-XXXXXX)
pid=
cleanup() { [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT

ports=($(/usr/bin/python3 - <<'PY'
import socket
ss = [socket.socket() for _ in range(6)]
for s in ss: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))
PY
))
# the shop's routes with the upstreams on this test's ports
sed -e "s/127.0.0.1:7001/127.0.0.1:${ports[0]}/; s/127.0.0.1:7002/127.0.0.1:${ports[1]}/g" \
    -e "s/127.0.0.1:7003/127.0.0.1:${ports[2]}/; s/127.0.0.1:7004/127.0.0.1:${ports[3]}/" \
    -e "s/127.0.0.1:7005/127.0.0.1:${ports[4]}/" "$src/config/gateway.yaml" > "$dir/gateway.yaml"
export SHOP_DATA_DIR=$dir/data SHOP_GATEWAY_CONFIG=$dir/gateway.yaml SHOP_PAYMENTS_LATENCY=5ms
export SHOP_USERS_ADDR=127.0.0.1:${ports[0]} SHOP_CATALOG_ADDR=127.0.0.1:${ports[1]}
export SHOP_INVENTORY_ADDR=127.0.0.1:${ports[2]} SHOP_ORDERS_ADDR=127.0.0.1:${ports[3]}
export SHOP_PAYMENTS_ADDR=127.0.0.1:${ports[4]} SHOP_GATEWAY_ADDR=127.0.0.1:${ports[5]}
for r in USERS CATALOG INVENTORY ORDERS PAYMENTS GATEWAY; do export SHOP_${r}_ADMIN=; done
"$shop" all > "$dir/shop.log" 2>&1 &
pid=$!
gw=http://127.0.0.1:${ports[5]}
for _ in $(seq 100); do
  grep -q '"shop: serving","role":"gateway"' "$dir/shop.log" && break
  sleep 0.1
done
GATEWAY=$gw "$src/tour.sh" --run > "$dir/tour.out" 2>&1 || { cat "$dir/tour.out" "$dir/shop.log"; exit 1; }
cat "$dir/tour.out"
grep -q ORDER_STATUS_PAID "$dir/tour.out"
grep -q '"payment":{' "$dir/tour.out"
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$gw/api/orders" -d '{}')
[ "$code" = 401 ] || { echo "an order without a token: $code, expected 401"; exit 1; }
kill -TERM "$pid"
status=0
wait "$pid" || status=$?
pid=
[ "$status" = 0 ] || { echo "shop exited $status"; cat "$dir/shop.log"; exit 1; }
grep -q '"shop: stopped"' "$dir/shop.log"
echo "shop_tour: ok"
