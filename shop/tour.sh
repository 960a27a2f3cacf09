#!/usr/bin/env bash
# The shop's curl tour: sign up, log in, browse, order, watch the order
# become paid.  Written for the gateway's REST routes (shop/config/gateway.yaml).
#
#   shop/tour.sh            print the tour (make run does, before starting the shop)
#   shop/tour.sh --run      run it against a running shop with its gateway
#
# GATEWAY=http://host:port for another gateway (default http://127.0.0.1:8080).
set -euo pipefail
GW=${GATEWAY:-http://127.0.0.1:8080}

if [ "${1:-}" != "--run" ]; then
  cat <<TOUR

The shop is starting: users, catalog, inventory, orders and payments on
127.0.0.1:7001-7005 (gRPC, /readyz, /metrics on each port), the gateway on
$GW (REST/JSON), data in \${SHOP_DATA_DIR:-./.shop-data}.
Ctrl-C stops it; a second 'make run' finds the data.

A tour through the gateway's REST routes ($GW; shop/tour.sh --run does it all):

  # sign up and log in (the token is a JWT the gateway checks)
  curl -s -X POST $GW/api/users -d '{"email":"ann@example.org","password":"correct horse","name":"Ann"}'
  TOKEN=\$(curl -s -X POST $GW/api/login -d '{"email":"ann@example.org","password":"correct horse"}' \\
          | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')

  # browse and search
  curl -s "$GW/api/categories"
  curl -s "$GW/api/products?category=brewing&pageSize=3"
  curl -s "$GW/api/products?query=beans"
  curl -s "$GW/api/products/moka-pot"
  curl -s "$GW/api/stock/moka-pot"

  # order (the same Idempotency-Key again returns the same order)
  curl -s -X POST $GW/api/orders -H "Authorization: Bearer \$TOKEN" -H 'Idempotency-Key: tour-1' \\
       -d '{"items":[{"productId":"moka-pot","quantity":1},{"productId":"filters","quantity":2}]}'

  # watch it become PAID (the order and its payment, fetched together)
  curl -s $GW/api/orders -H "Authorization: Bearer \$TOKEN"
  curl -s $GW/api/orders/ORDER_ID -H "Authorization: Bearer \$TOKEN"

  # the services' own ports: probes and metrics
  curl -s http://127.0.0.1:7004/readyz; curl -s http://127.0.0.1:7004/metrics | grep grpc_server_handled

TOUR
  exit 0
fi

say() { printf '\n$ %s\n' "$*"; }
json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
EMAIL="tour-$RANDOM@example.org"

say "sign up $EMAIL"
curl -sf -X POST "$GW/api/users" -d "{\"email\":\"$EMAIL\",\"password\":\"correct horse\",\"name\":\"Tour\"}"; echo
say "log in"
TOKEN=$(curl -sf -X POST "$GW/api/login" -d "{\"email\":\"$EMAIL\",\"password\":\"correct horse\"}" | json '["token"]')
echo "token: ${TOKEN:0:24}..."
say "categories";              curl -sf "$GW/api/categories"; echo
say "brewing, 3 to a page";    curl -sf "$GW/api/products?category=brewing&pageSize=3"; echo
say "search: beans";           curl -sf "$GW/api/products?query=beans"; echo
say "order a moka pot and filters"
KEY="tour-$RANDOM"
ORDER=$(curl -sf -X POST "$GW/api/orders" -H "Authorization: Bearer $TOKEN" -H "Idempotency-Key: $KEY" \
        -d '{"items":[{"productId":"moka-pot","quantity":1},{"productId":"filters","quantity":2}]}')
echo "$ORDER"
ID=$(echo "$ORDER" | json '["id"]')
say "the same Idempotency-Key: the same order"
curl -sf -X POST "$GW/api/orders" -H "Authorization: Bearer $TOKEN" -H "Idempotency-Key: $KEY" \
     -d '{"items":[{"productId":"moka-pot","quantity":1},{"productId":"filters","quantity":2}]}' | json '["id"]'
say "watch $ID become PAID"
for _ in $(seq 50); do
  STATUS=$(curl -sf "$GW/api/orders/$ID" -H "Authorization: Bearer $TOKEN" | json '["order"]["status"]')
  echo "$STATUS"
  [ "$STATUS" = ORDER_STATUS_PAID ] || [ "$STATUS" = ORDER_STATUS_CANCELLED ] && break
  sleep 0.2
done
say "the order and its payment"; curl -sf "$GW/api/orders/$ID" -H "Authorization: Bearer $TOKEN"; echo
