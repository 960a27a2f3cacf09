#!/usr/bin/env bash
# faults-test.sh - the production-mode shop of compose.yaml under load from
# shop-load (through both gateways, the host's binary), with one fault
# injected by Docker per scenario, and what must hold afterwards (issue 20,
# item 6).  Every scenario ends with shop-load's books: every order it
# placed settled (PAID, compensated or REJECTED), stock sold = the paid
# quantities, nothing left reserved, no unit made or lost.
#
#   payments-kill     `docker kill` payments, started again 8 s later:
#                     orders are taken all the while (no failed request,
#                     checkouts answered while it is down); after its
#                     restart every order is settled; no order has two
#                     payments, none was charged twice (payments' log),
#                     every PAID order has one succeeded payment
#   inventory-kill    `docker kill` one of the two inventory replicas:
#                     etcd drops its key within its lease (5 s); requests
#                     fail at most until then; no oversell (books, and no
#                     stock row below zero)
#   nats-disconnect   both orders replicas cut off from NATS (`docker
#                     network disconnect` from the events network) for
#                     8 s: orders are taken meanwhile and their events
#                     wait in orders' outbox (rows not sent, counted in
#                     PostgreSQL); after the network heals the outbox
#                     empties and every order is paid
#   rolling-restart   `docker restart` of every shop container, one after
#                     the other, each waited for (ready, registered in
#                     etcd) before the next: zero failed requests
#                     (readiness goes false first, a pre-stop delay while
#                     the gateways' etcd watches and shop-load's probes
#                     notice, then the drain)
#
#   shop/deploy/build-image.sh amd64 && shop/deploy/faults-test.sh build/shop/load/shop-load
#
# Called by test.sh after compose-test.sh (ctest label `deploy`).  Brings
# the shop up once; containers, networks and volumes go on exit.  One
# scenario alone: FAULTS=rolling-restart.  Figures: a line per scenario
# (shop-load's requests, errors, checkout and overall p99) and the wall time.
set -euo pipefail
load=$(realpath -m "${1:-$(dirname "$0")/../../build/shop/load/shop-load}")
cd "$(dirname "$0")"
[ -x "$load" ] || { echo "faults-test.sh: no shop-load at $load (build it: cmake --build build --target shop-load)" >&2; exit 2; }
command -v docker-compose >/dev/null || { echo "skip faults: no docker-compose (scripts/deps.sh)"; exit 0; }
scenarios=${FAULTS:-payments-kill inventory-kill nats-disconnect rolling-restart}

project=tern-shop-faults-$$
tmp=$(mktemp -d /tmp/shop-faults-XXXXXX)
read -r SHOP_GATEWAY_PORT SHOP_GATEWAY2_PORT < <(/usr/bin/python3 -c '
import socket
ss = [socket.socket() for _ in range(2)]
for s in ss: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))')
export SHOP_GATEWAY_PORT SHOP_GATEWAY2_PORT
gateways=http://127.0.0.1:$SHOP_GATEWAY_PORT,http://127.0.0.1:$SHOP_GATEWAY2_PORT
dc() { docker-compose -f compose.yaml -p "$project" "$@"; }
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  dc down -v --remove-orphans >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT
ms() { echo $(( $(date +%s%N) / 1000000 )); }
t0=$(ms)
fail() {
  echo "FAIL $*" >&2
  [ -f "$tmp/load.out" ] && cat "$tmp/load.out" >&2
  dc logs --tail 15 >&2 2>/dev/null || true
  exit 1
}
ok() { echo "ok   $*"; }

# ---- the compose shop, its containers and backends ------------------------------
shop_services=(users users-2 catalog catalog-2 inventory inventory-2 orders orders-2 payments gateway gateway-2)
declare -A port=([users]=7001 [catalog]=7002 [inventory]=7003 [orders]=7004 [payments]=7005 [gateway]=8080)
role() { echo "${1%-2}"; }
# cid SERVICE: its container, the same across restarts (asked once after
# up: docker-compose takes half a second to start)
declare -A cids=()
cid() { echo "${cids[$1]}"; }
# ip SERVICE: its address on the shop network (the host reaches it)
ip() {
  docker inspect -f '{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{$v.IPAddress}}{{"\n"}}{{end}}' "$(cid "$1")" |
    awk '$1 ~ /_shop$/ {print $2}'
}
psql() { docker exec "$(cid postgres)" psql -U shop -d shop -Atc "$1"; }
# etcd_keys ROLE: the addresses registered under /shop/ROLE/
etcd_keys() {
  /usr/bin/python3 - "$(ip etcd)" "$1" <<'PY'
import base64, json, sys, urllib.request
ip, role = sys.argv[1], sys.argv[2]
b = lambda s: base64.b64encode(s.encode()).decode()
req = {"key": b("/shop/%s/" % role), "range_end": b("/shop/%s0" % role), "keys_only": True}
r = json.load(urllib.request.urlopen("http://%s:2379/v3/kv/range" % ip, json.dumps(req).encode(), timeout=3))
for kv in r.get("kvs", []):
    print(base64.b64decode(kv["key"]).decode().rsplit("/", 1)[1])
PY
}
# ready SERVICE [SECONDS]: its /readyz answers 200, and (a gRPC role) its
# key is in etcd, within SECONDS (30)
ready() {
  local s=$1 r a
  r=$(role "$1")
  local deadline=$(( $(date +%s) + ${2:-30} ))
  until a=$(ip "$s") && [ -n "$a" ] &&
        [ "$(curl -s -o /dev/null -m 1 -w '%{http_code}' "http://$a:${port[$r]}/readyz" || true)" = 200 ] &&
        { [ "$r" = gateway ] || etcd_keys "$r" | grep -x >/dev/null "$s:${port[$r]}"; }; do
    [ "$(date +%s)" -lt "$deadline" ] || return 1
    sleep 0.1
  done
}

t=$(ms)
dc build -q >/dev/null 2>&1 || { dc build; fail "building the backends' images"; }
dc up -d >/dev/null 2>&1 || fail "docker-compose up"
for s in "${shop_services[@]}" postgres nats etcd; do
  cids[$s]=$(dc ps -q "$s")
  [ -n "${cids[$s]}" ] || fail "no container for $s"
done
for s in "${shop_services[@]}"; do ready "$s" 60 || fail "$s not ready (and registered) in 60 s"; done
up_ms=$(( $(ms) - t ))
ok "compose: ${#shop_services[@]} shop containers ready and registered in etcd (${up_ms} ms from up)"

# ---- shop-load --------------------------------------------------------------------
# load_start NAME DURATION: shop-load in the background through both gateways
load_start() {
  scenario=$1
  "$load" -gateway "$gateways" -rate 30 -duration "$2" -users 8 -settle 60s -procs 1 \
    -json "$tmp/$1.json" >"$tmp/load.out" 2>&1 &
  load_pid=$!
  pids+=("$load_pid")
  # the fault's clock starts with the run's, after sign-up and login
  local deadline=$(( $(date +%s) + 60 ))
  until grep -q 'the run starts' "$tmp/load.out" 2>/dev/null; do
    kill -0 "$load_pid" 2>/dev/null || fail "$1: shop-load ended before its run: $(cat "$tmp/load.out")"
    [ "$(date +%s)" -lt "$deadline" ] || fail "$1: shop-load did not start its run in 60 s"
    sleep 0.1
  done
  run_start=$(ms)
}
# at SECONDS: sleep until that long after the run started
at() {
  local left=$(( run_start + $1 * 1000 - $(ms) ))
  [ "$left" -le 0 ] || sleep "$(printf '%d.%03d' $(( left / 1000 )) $(( left % 1000 )))"
}
# load_end: shop-load's exit status 0 (the books balance); its figures
load_end() {
  local rc=0
  wait "$load_pid" || rc=$?
  [ "$rc" = 0 ] || fail "$scenario: shop-load exit status $rc (1: the books do not balance)"
  grep -q 'books: balanced' "$tmp/load.out" || fail "$scenario: no 'books: balanced'"
  figures+=("$(/usr/bin/python3 - "$tmp/$scenario.json" "$scenario" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
a, c, b = j["all"], j["routes"]["checkout"], j["books"]
print("%s: %d requests, %d errors, p99 %.1f ms (checkout p99 %.1f ms); orders %d paid %d compensated %d rejected %d"
      % (sys.argv[2], j["requests"], a["errors"], a["p99_ms"], c["p99_ms"], b["placed"], b["paid"],
         b["compensated"], b["rejected"]))
PY
)")
  ok "${figures[-1]}"
}
# timeline FIELD FROM TO: the sum of the JSON timeline's FIELD over seconds [FROM, TO)
timeline() {
  /usr/bin/python3 -c 'import json, sys; t = json.load(open(sys.argv[1]))["timeline"]
print(sum(s[sys.argv[2]] for s in t[int(sys.argv[3]):int(sys.argv[4])]))' "$tmp/$scenario.json" "$1" "$2" "$3"
}
errors() { /usr/bin/python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["all"]["errors"])' "$tmp/$scenario.json"; }
figures=()

# ---- the scenarios ----------------------------------------------------------------
payments_kill() {
  local charged_before
  charged_before=$(docker logs "$(cid payments)" 2>&1 | grep -c '"payments: charged"' || true)
  load_start payments-kill 20s
  at 4
  docker kill "$(cid payments)" >/dev/null
  at 12
  docker start "$(cid payments)" >/dev/null
  ready payments 30 || fail "payments-kill: payments not ready again in 30 s"
  load_end
  [ "$(errors)" = 0 ] || fail "payments-kill: $(errors) requests failed while payments was down"
  local during
  during=$(timeline checkouts_ok 5 12)
  [ "$during" -gt 0 ] || fail "payments-kill: no checkout answered while payments was down"
  ok "payments-kill: $during orders taken while payments was down, none failed; all settled after its restart"
  local twice unpaid
  twice=$(psql "SELECT count(*) FROM (SELECT order_id FROM payments GROUP BY order_id HAVING count(*) > 1) d")
  unpaid=$(psql "SELECT count(*) FROM orders o LEFT JOIN payments p ON p.order_id = o.id
                 WHERE o.status = 3 AND (p.status IS NULL OR p.status <> 1)")
  [ "$twice" = 0 ] && [ "$unpaid" = 0 ] || fail "payments-kill: $twice orders with two payments, $unpaid PAID without one"
  # the processor is called once per order: a charge logged twice for one
  # order would be a customer charged twice (the table keeps one row)
  local charged dup
  charged=$(docker logs "$(cid payments)" 2>&1 | grep '"payments: charged"' | tail -n +$(( charged_before + 1 )) |
              sed -E 's/.*"order":"([^"]*)".*/\1/')
  dup=$(sort <<<"$charged" | uniq -d | wc -l)
  [ "$dup" = 0 ] || fail "payments-kill: $dup orders charged twice (payments' log)"
  [ "$(grep -c . <<<"$charged")" -gt 0 ] || fail "payments-kill: payments logged no charge"
  ok "payments-kill: no order paid twice ($(grep -c . <<<"$charged") charges, one per order; one payment row each), every PAID order has its payment"
}

inventory_kill() {
  load_start inventory-kill 20s
  at 5
  docker kill "$(cid inventory-2)" >/dev/null
  local killed dropped
  killed=$(ms)
  until ! etcd_keys inventory | grep -x >/dev/null 'inventory-2:7003'; do
    [ $(( $(ms) - killed )) -lt 10000 ] || fail "inventory-kill: inventory-2 still in etcd 10 s after it died"
    sleep 0.1
  done
  dropped=$(( ($(ms) - killed) ))
  ok "inventory-kill: etcd dropped inventory-2 ${dropped} ms after it was killed (its lease: 5 s)"
  load_end
  # requests may fail while callers still hold the dead replica's address,
  # not after discovery dropped it (a second of margin for calls under way)
  local after=$(( 5 + dropped / 1000 + 2 ))
  local late
  late=$(timeline errors "$after" 20)
  [ "$late" = 0 ] || fail "inventory-kill: $late requests failed after etcd dropped inventory-2 (seconds $after-20)"
  local neg
  neg=$(psql "SELECT count(*) FROM stock WHERE available < 0 OR reserved < 0")
  [ "$neg" = 0 ] || fail "inventory-kill: $neg products oversold"
  ok "inventory-kill: $(errors) requests failed, none after second $after; no oversell"
  docker start "$(cid inventory-2)" >/dev/null
  ready inventory-2 30 || fail "inventory-kill: inventory-2 not back in 30 s"
}

nats_disconnect() {
  local net
  net=$(docker inspect -f '{{range $k, $v := .NetworkSettings.Networks}}{{$k}}{{"\n"}}{{end}}' "$(cid nats)" | grep '_events$')
  load_start nats-disconnect 20s
  at 4
  docker network disconnect "$net" "$(cid orders)"
  docker network disconnect "$net" "$(cid orders-2)"
  at 12
  local held
  held=$(psql "SELECT count(*) FROM orders_outbox WHERE sent_ns IS NULL")
  docker network connect "$net" "$(cid orders)"
  docker network connect "$net" "$(cid orders-2)"
  local healed
  healed=$(ms)
  [ "$held" -gt 0 ] || fail "nats-disconnect: orders' outbox held no event while cut off from NATS"
  ok "nats-disconnect: $held events held in orders' outbox after 8 s cut off from NATS"
  until [ "$(psql "SELECT count(*) FROM orders_outbox WHERE sent_ns IS NULL")" = 0 ]; do
    [ $(( $(ms) - healed )) -lt 30000 ] || fail "nats-disconnect: orders' outbox not empty 30 s after the network healed"
    sleep 0.2
  done
  ok "nats-disconnect: the outbox delivered them $(( $(ms) - healed )) ms after the network healed"
  load_end
  [ "$(errors)" = 0 ] || fail "nats-disconnect: $(errors) requests failed"
  local during
  during=$(timeline checkouts_ok 5 12)
  [ "$during" -gt 0 ] || fail "nats-disconnect: no checkout answered while orders was cut off"
  ok "nats-disconnect: $during orders taken while cut off from NATS, none failed, every one settled"
}

rolling_restart() {
  load_start rolling-restart 45s
  at 2
  local s t
  for s in "${shop_services[@]}"; do
    t=$(ms)
    docker restart -t 20 "$(cid "$s")" >/dev/null
    ready "$s" 30 || fail "rolling-restart: $s not ready again in 30 s"
    echo "     restarted $s: $(( $(ms) - t )) ms to ready again"
  done
  local done_at=$(( ($(ms) - run_start) / 1000 ))
  [ "$done_at" -lt 44 ] || fail "rolling-restart: the restarts took ${done_at} s, longer than the load"
  load_end
  [ "$(errors)" = 0 ] || fail "rolling-restart: $(errors) requests failed ($(grep 'errors by second' "$tmp/load.out"))"
  ok "rolling-restart: every shop container restarted under load (in ${done_at} s), zero failed requests"
}

for sc in $scenarios; do
  case $sc in
    payments-kill) payments_kill ;;
    inventory-kill) inventory_kill ;;
    nats-disconnect) nats_disconnect ;;
    rolling-restart) rolling_restart ;;
    *) fail "unknown scenario $sc (payments-kill, inventory-kill, nats-disconnect, rolling-restart)" ;;
  esac
done

echo
for f in "${figures[@]}"; do echo "figures: $f"; done
echo "figures: faults_up_ms=$up_ms faults_test_ms=$(( $(ms) - t0 ))"
