#!/usr/bin/env bash
# kit_prom_scrape.sh <svc> - a real Prometheus server scrapes the example
# service's /metrics and ingests what it served.  svc answers HELLO_N
# requests to /hello; then Prometheus scrapes it every second; once the
# target is healthy the query API must give back, for job "svc": up == 1,
# the /hello request counter and its histogram's count == HELLO_N, the
# runtime gauges as svc serves them, one ingested sample per sample line
# served, and no sample Prometheus refused.  No more /hello requests are
# sent after Prometheus starts, so every scrape sees the same counts.
# Exits 77 (skipped) when prometheus is not installed (Debian: package
# prometheus).
set -u
PROMETHEUS=${PROMETHEUS:-prometheus}
HELLO_N=7
command -v "$PROMETHEUS" >/dev/null 2>&1 || {
    echo "prometheus not found (apt-get install prometheus): skipped"
    exit 77
}
SVC=${1:-}
[ -x "$SVC" ] || { echo "usage: $0 <svc binary>"; exit 2; }

tmp=$(mktemp -d) || exit 1
sp='' pp=''
stop() {    # stop PID: TERM, a bounded wait, then KILL
    [ -n "$1" ] || return 0
    kill -TERM "$1" 2>/dev/null || return 0
    for _ in $(seq 1 50); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$1" 2>/dev/null
    wait "$1" 2>/dev/null
}
cleanup() { stop "$sp"; stop "$pp"; rm -rf "$tmp"; }
trap cleanup EXIT
trap 'exit 1' INT TERM HUP
fail() {
    echo "FAIL: $*"
    echo "--- svc stderr (tail):"; tail -n 10 "$tmp/svc.err" 2>/dev/null
    echo "--- prometheus log (tail):"; tail -n 30 "$tmp/prom.log" 2>/dev/null
    exit 1
}
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
deadline=$((SECONDS + 30))  # the bound on every wait below
in_time() { [ "$SECONDS" -lt "$deadline" ]; }

# svc on a port of its choosing, which it prints
"$SVC" --listen 127.0.0.1:0 --admin.listen 127.0.0.1:0 >"$tmp/svc.out" 2>"$tmp/svc.err" & sp=$!
saddr=''
while [ -z "$saddr" ] && in_time; do
    kill -0 "$sp" 2>/dev/null || fail "svc exited: $(cat "$tmp/svc.out")"
    saddr=$(sed -n 's|^svc: listening on http://\([0-9.:]*\)/.*|\1|p' "$tmp/svc.out")
    [ -n "$saddr" ] || sleep 0.1
done
[ -n "$saddr" ] || fail "svc did not say where it listens"
for _ in $(seq 1 "$HELLO_N"); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 "http://$saddr/hello")" = 200 ] ||
        fail "GET /hello did not answer 200"
done
curl -s --max-time 10 "http://$saddr/metrics" >/dev/null || fail "GET /metrics failed"
echo "ok  svc on $saddr answered $HELLO_N x GET /hello"

pport=$(port)
papi=http://127.0.0.1:$pport/api/v1
cat >"$tmp/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: svc
    static_configs:
      - targets: ['$saddr']
EOF
"$PROMETHEUS" --config.file="$tmp/prometheus.yml" --storage.tsdb.path="$tmp/tsdb" \
    --web.listen-address="127.0.0.1:$pport" >"$tmp/prom.log" 2>&1 & pp=$!

# json PROGRAM: run PROGRAM (Python, with d = the JSON document on stdin)
json() { python3 -c "import json,sys; d=json.load(sys.stdin); $1"; }
# query PROMQL: one line per series of the instant vector, its value
query() {
    curl -s --max-time 5 --get --data-urlencode "query=$1" "$papi/query" |
        json 'assert d["status"] == "success", d
for r in d["data"]["result"]: print(r["value"][1])' 2>/dev/null
}
# served NAME: the value of the sample line NAME (name and labels) of svc's /metrics
served() { curl -s --max-time 10 "http://$saddr/metrics" | awk -v s="$1" '$1 == s { print $2 }'; }

# the target is up: scraped, parsed and ingested without an error.  Most
# of the test's time is spent here: Prometheus hands discovered targets to
# its scrape manager at most every 5 s, so the first scrape comes ~5 s in.
health=''
while in_time; do
    kill -0 "$pp" 2>/dev/null || fail "prometheus exited"
    health=$(curl -s --max-time 5 "$papi/targets" | json 'print("\n".join(
        t["health"] + " " + repr(t["lastError"]) for t in d["data"]["activeTargets"]
        if t["labels"].get("job") == "svc"))' 2>/dev/null)
    [ "$health" = "up ''" ] && break
    sleep 0.2
done
[ "$health" = "up ''" ] || fail "target svc not healthy after 30 s: ${health:-no such target}"
echo "ok  /api/v1/targets: svc up, no lastError"

# expect PROMQL VALUE: the query gives one series whose value is VALUE.
# Polled: a target reports up as soon as its scrape is read, which may be
# a moment before the scrape's samples are committed.
expect() {
    local got=''
    while in_time; do
        got=$(query "$1")
        [ -n "$got" ] && break
        sleep 0.2
    done
    [ "$got" = "$2" ] || fail "$1: got '${got:-no series}', expected '$2'"
    echo "ok  $1 == $2"
}
expect 'up{job="svc"}' 1
hello='route="/hello",method="GET",code="200"'
[ "$(served "http_server_requests_total{$hello}")" = "$HELLO_N" ] ||
    fail "svc does not serve http_server_requests_total{$hello} $HELLO_N"
expect "http_server_requests_total{job=\"svc\",$hello}" "$HELLO_N"
expect 'http_server_request_duration_seconds_count{job="svc",route="/hello",method="GET"}' "$HELLO_N"
expect 'http_server_request_duration_seconds_bucket{job="svc",route="/hello",method="GET",le="+Inf"}' "$HELLO_N"
procs=$(served tern_sched_procs)
[ -n "$procs" ] || fail "svc serves no tern_sched_procs"
expect 'tern_sched_procs{job="svc"}' "$procs"
expect 'count(tern_coroutines{job="svc"} > 0)' 1
expect 'count(process_start_time_seconds{job="svc"} > 0)' 1
# every sample line svc serves was ingested (its set of series is fixed by now)
lines=$(curl -s --max-time 10 "http://$saddr/metrics" | grep -c '^[^#]')
expect 'scrape_samples_scraped{job="svc"}' "$lines"
expect 'scrape_samples_post_metric_relabeling{job="svc"}' "$lines"

# nothing refused: no duplicate, out-of-order or out-of-bounds samples
refused=$(curl -s --max-time 5 "http://127.0.0.1:$pport/metrics" |
    awk '/^prometheus_target_scrapes_(sample_|exceeded_)[a-z_]*_total / && $2 != 0')
[ -z "$refused" ] || fail "prometheus refused samples: $refused"
echo "ok  no samples refused"
