#!/usr/bin/env bash
# compose-test.sh - the production-mode shop of compose.yaml, up on this
# machine's Docker engine: the backends' images built from Debian packages
# and healthy, every role in its own hardened container and ready, and
# gRPC from the host reaching each one, and an order placed in orders'
# container reserving stock in inventory's (orders finds catalog and
# inventory by name: DNS from a static binary in a FROM scratch image).
# Called by test.sh after it built tern-shop:amd64; on its own:
#
#   shop/deploy/build-image.sh amd64 && shop/deploy/compose-test.sh
#
# Not yet: the rest of the saga across containers (OrderCreated reaching
# payments needs the NATS event transport, production mode), so the order
# stays AWAITING_PAYMENT here.
set -euo pipefail
cd "$(dirname "$0")"
command -v docker-compose >/dev/null || { echo "skip compose: no docker-compose (scripts/deps.sh)"; exit 0; }
project=tern-shop-compose-$$
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
for i in "${!roles[@]}"; do
  r=${roles[$i]}
  a=$(dc port "$r" "700$((i + 1))")
  until [ "$(curl -s -o /dev/null -w '%{http_code}' "http://$a/readyz" || true)" = 200 ]; do
    [ "$(date +%s)" -lt "$deadline" ] || fail "$r not ready in 60 s"
    sleep 0.2
  done
  args+=("--$r" "$a")
done
echo "ok   compose: backends healthy, every role ready in its own container ($(( $(ms) - t )) ms from up)"
for b in postgres redis nats etcd; do
  [ "$(docker inspect -f '{{.State.Health.Status}}' "$(dc ps -q "$b")")" = healthy ] || fail "$b not healthy"
done
echo "ok   postgres, redis, nats, etcd healthy"
/usr/bin/python3 shop_client.py "${args[@]}" --reserve || fail "gRPC from the host to the compose shop"
