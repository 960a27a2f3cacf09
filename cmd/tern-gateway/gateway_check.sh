#!/usr/bin/env bash
# gateway_check.sh TERN_GATEWAY - the program end to end: a bad
# configuration exits 2 naming the key; routes reach a real upstream
# (python3's http.server); /metrics on the admin port counts them, per
# route and per endpoint; a WebSocket passes through the whole kit chain
# (python3-websockets at both ends; skipped without it); a SIGHUP and a
# rewritten file reload; SIGTERM drains and exits 0.
set -u
GW=$1
tmp=$(mktemp -d) up= gp= wsp=
fail() { echo "FAIL: $*"; echo "--- gateway stderr:"; tail -20 "$tmp/gw.err"; kill -9 $up $gp $wsp 2>/dev/null; rm -rf "$tmp"; exit 1; }
ws_peer="$(cd "$(dirname "$0")/../../tests" && pwd)/ws_peer.py"
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_up() { for _ in $(seq 1 100); do curl -s -o /dev/null "$1" && return 0; sleep 0.1; done; return 1; }

printf 'routes: [{match: {path: /a}, upstream: nope}]\n' > "$tmp/bad.yaml"
timeout 10 "$GW" -config "$tmp/bad.yaml" -listen 127.0.0.1:0 > /dev/null 2> "$tmp/gw.err"; rc=$?
[ $rc = 2 ] || fail "bad config: exit status $rc, expected 2"
grep -q 'routes\[0\]: upstream: no upstream called "nope"' "$tmp/gw.err" || fail "bad config: no sentence naming the key"
echo "ok  bad config -> exit 2, the key named"

uport=$(port) gport=$(port) aport=$(port)
mkdir -p "$tmp/www/v1" "$tmp/www/v2"
echo one > "$tmp/www/v1/x.txt"
echo two > "$tmp/www/v2/x.txt"
(cd "$tmp/www" && exec python3 -m http.server $uport --bind 127.0.0.1 > "$tmp/up.log" 2>&1) & up=$!
wsport=1
if /usr/bin/python3 -c 'import websockets' 2>/dev/null; then
  /usr/bin/python3 "$ws_peer" serve > "$tmp/ws.port" 2> "$tmp/ws.err" & wsp=$!
  for _ in $(seq 1 100); do [ -s "$tmp/ws.port" ] && break; sleep 0.05; done
  wsport=$(head -1 "$tmp/ws.port")
fi
conf() {   # conf VERSION: /files/ -> /VERSION/ on the upstream
cat > "$tmp/gw.yaml.new" <<YAML
upstreams:
  www: {endpoints: ["127.0.0.1:$uport"], timeout: 2s}
  ws: {endpoints: ["127.0.0.1:$wsport"], timeout: 2s}
routes:
  - name: chat
    match: {path: /chat}
    upstream: ws
  - name: files
    match: {prefix: /files/, methods: [GET]}
    upstream: www
    rewrite: {path: "/$1/*rest"}
YAML
mv "$tmp/gw.yaml.new" "$tmp/gw.yaml"
}
conf v1
"$GW" -config "$tmp/gw.yaml" -listen 127.0.0.1:$gport -admin 127.0.0.1:$aport > "$tmp/gw.out" 2> "$tmp/gw.err" & gp=$!
wait_up "http://127.0.0.1:$uport/v1/x.txt" || fail "the upstream did not start"
wait_up "http://127.0.0.1:$gport/livez" || fail "the gateway did not start"
body=$(curl -s "http://127.0.0.1:$gport/files/x.txt")
[ "$body" = one ] || fail "GET /files/x.txt: '$body', expected 'one'"
echo "ok  GET /files/x.txt -> the upstream's /v1/x.txt"
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$gport/other")
[ "$code" = 404 ] || fail "GET /other: $code, expected 404"
curl -s "http://127.0.0.1:$aport/metrics" > "$tmp/metrics"
grep -q 'tern_gateway_requests_total{route="files",upstream="www",code="200"} 1' "$tmp/metrics" || fail "no gateway metric"
grep -q 'http_server_requests_total' "$tmp/metrics" || fail "no server metric"
grep -q "tern_gateway_endpoint_requests_total{upstream=\"www\",endpoint=\"127.0.0.1:$uport\"} 1" "$tmp/metrics" ||
  fail "no per-endpoint metric"
echo "ok  /metrics on the admin port (per route and per endpoint)"
if [ -n "$wsp" ]; then
  timeout 20 /usr/bin/python3 "$ws_peer" client "ws://127.0.0.1:$gport/chat" 2> "$tmp/wsc.err" ||
    { cat "$tmp/wsc.err"; fail "a WebSocket exchange through the program failed"; }
  echo "ok  a WebSocket through the program (access log, metrics, tracing on)"
else
  echo "skip WebSocket: python3-websockets is not installed"
fi

conf v2
kill -HUP $gp
for _ in $(seq 1 50); do body=$(curl -s "http://127.0.0.1:$gport/files/x.txt"); [ "$body" = two ] && break; sleep 0.1; done
[ "$body" = two ] || fail "after the new file and SIGHUP: '$body', expected 'two'"
echo "ok  reloaded (file + SIGHUP)"
printf 'routes: [\n' > "$tmp/gw.yaml"
kill -HUP $gp
sleep 0.3
body=$(curl -s "http://127.0.0.1:$gport/files/x.txt")
[ "$body" = two ] || fail "after a broken file: '$body', expected the running config's 'two'"
grep -q 'gateway reload failed' "$tmp/gw.err" || fail "the failed reload was not logged"
echo "ok  a broken file is refused and logged; the running config stays"

kill -TERM $gp
wait $gp; rc=$?
[ $rc = 0 ] || fail "SIGTERM: exit status $rc, expected 0"
echo "ok  SIGTERM -> exit 0"

# -kit=false: the same proxying without the per-request middleware.
conf v1
"$GW" -config "$tmp/gw.yaml" -listen 127.0.0.1:$gport -admin 127.0.0.1:$aport -kit=false > "$tmp/gw.out" 2> "$tmp/gw.err" & gp=$!
wait_up "http://127.0.0.1:$gport/livez" || fail "the gateway (-kit=false) did not start"
body=$(curl -s "http://127.0.0.1:$gport/files/x.txt")
[ "$body" = one ] || fail "-kit=false: GET /files/x.txt: '$body', expected 'one'"
curl -s "http://127.0.0.1:$aport/metrics" > "$tmp/metrics"
grep -q 'tern_gateway_requests_total{route="files",upstream="www",code="200"} 1' "$tmp/metrics" || fail "-kit=false: no gateway metric"
grep -q 'http_server_requests_total{' "$tmp/metrics" && fail "-kit=false: the request metrics middleware ran"
grep -q '"/files/x.txt"' "$tmp/gw.out" "$tmp/gw.err" && fail "-kit=false: an access log line was written"
kill -TERM $gp
wait $gp
echo "ok  -kit=false proxies without the access log and request metrics"
kill $up $wsp 2>/dev/null
rm -rf "$tmp"
