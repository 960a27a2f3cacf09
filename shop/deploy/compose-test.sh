#!/usr/bin/env bash
# compose-test.sh - the production-mode shop of compose.yaml, up on this
# machine's Docker engine: the backends' images built from Debian packages
# and healthy, every role replica in its own hardened container, ready and
# registered in etcd; gRPC from the host reaching each role's first
# replica; an order placed in orders' container through the whole saga
# across containers (catalog and inventory found through etcd, OrderCreated
# to payments and its outcome back through NATS JetStream, the rows in
# PostgreSQL) to PAID, its idempotency key; and the gateways' REST routes
# on their 127.0.0.1 ports.  Called by test.sh after it built
# tern-shop:amd64; on its own:
#
#   shop/deploy/build-image.sh amd64 && shop/deploy/compose-test.sh
set -euo pipefail
cd "$(dirname "$0")"
command -v docker-compose >/dev/null || { echo "skip compose: no docker-compose (scripts/deps.sh)"; exit 0; }
project=tern-shop-compose-$$
read -r SHOP_GATEWAY_PORT SHOP_GATEWAY2_PORT < <(/usr/bin/python3 -c '
import socket
ss = [socket.socket() for _ in range(2)]
for s in ss: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))')
export SHOP_GATEWAY_PORT SHOP_GATEWAY2_PORT
dc() { docker-compose -f compose.yaml -p "$project" "$@"; }
cleanup() { dc down -v --remove-orphans >/dev/null 2>&1 || true; }
trap cleanup EXIT
fail() { echo "FAIL $*" >&2; dc logs --tail 20 >&2 || true; exit 1; }
ms() { echo $(( $(date +%s%N) / 1000000 )); }

t=$(ms)
dc build -q >/dev/null 2>&1 || { dc build; fail "building the backends' images"; }
echo "ok   backends' images built from Debian packages ($(( $(ms) - t )) ms)"
t=$(ms)
# up waits for the backends' health checks before it starts the roles
dc up -d >/dev/null 2>&1 || fail "docker-compose up"
roles=(users catalog inventory orders payments)
args=()
deadline=$(( $(date +%s) + 60 ))
wait_200() {
  until [ "$(curl -s -o /dev/null -w '%{http_code}' "$1" || true)" = 200 ]; do
    [ "$(date +%s)" -lt "$deadline" ] || fail "$1 not 200 in 60 s"
    sleep 0.2
  done
}
for i in "${!roles[@]}"; do
  r=${roles[$i]}
  a=$(dc port "$r" "700$((i + 1))")
  wait_200 "http://$a/readyz"
  args+=("--$r" "$a")
done
for g in "$SHOP_GATEWAY_PORT" "$SHOP_GATEWAY2_PORT"; do wait_200 "http://127.0.0.1:$g/readyz"; done
echo "ok   compose: backends healthy, every role ready in its own container, both gateways ($(( $(ms) - t )) ms from up)"
for b in postgres redis nats etcd; do
  [ "$(docker inspect -f '{{.State.Health.Status}}' "$(dc ps -q "$b")")" = healthy ] || fail "$b not healthy"
done
echo "ok   postgres, redis, nats, etcd healthy"
# every replica registers <service>:<port> in etcd once ready (read
# through etcd's JSON gateway at its address on the shop network)
etcd_ip=$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$(dc ps -q etcd)")
etcd_keys() {
  /usr/bin/python3 - "$etcd_ip" <<'PY'
import base64, json, sys, urllib.request
b = lambda s: base64.b64encode(s.encode()).decode()
req = {"key": b("/shop/"), "range_end": b("/shop0"), "keys_only": True}
r = json.load(urllib.request.urlopen("http://%s:2379/v3/kv/range" % sys.argv[1], json.dumps(req).encode(), timeout=3))
for kv in r.get("kvs", []):
    print(base64.b64decode(kv["key"]).decode())
PY
}
deadline=$(( $(date +%s) + 30 ))
for k in users users-2 catalog catalog-2 inventory inventory-2 orders orders-2 payments; do
  until etcd_keys | grep -x >/dev/null "/shop/${k%-2}/$k:[0-9]*"; do
    [ "$(date +%s)" -lt "$deadline" ] || fail "$k not registered in etcd: $(etcd_keys)"
    sleep 0.2
  done
done
echo "ok   every replica registered in etcd: $(etcd_keys | tr '\n' ' ')"
/usr/bin/python3 shop_client.py "${args[@]}" --order || fail "gRPC from the host to the compose shop"
paid=$(docker exec "$(dc ps -q postgres)" psql -U shop -d shop -Atc \
         "SELECT count(*) FROM orders o JOIN payments p ON p.order_id = o.id WHERE o.status = 3 AND p.status = 1")
[ "$paid" -ge 1 ] || fail "no PAID order with its payment in PostgreSQL"
echo "ok   PostgreSQL holds the PAID order and its payment"
for g in "$SHOP_GATEWAY_PORT" "$SHOP_GATEWAY2_PORT"; do
  n=$(curl -sf "http://127.0.0.1:$g/api/products?pageSize=100" | /usr/bin/python3 -c 'import json, sys; print(len(json.load(sys.stdin)["products"]))') ||
    fail "the gateway at 127.0.0.1:$g: GET /api/products"
  [ "$n" -ge 10 ] || fail "the gateway at 127.0.0.1:$g lists $n products"
done
echo "ok   both gateways answer REST on 127.0.0.1 (the catalog through etcd)"
