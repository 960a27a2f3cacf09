#!/usr/bin/env bash
# svc_check.sh HELLO SVC - the example service end to end: every endpoint
# answers as the README says, /debug only on the admin port, a change of
# the config file and a SIGHUP reload it, a downstream URL's password
# never shows, SIGTERM drains and exits 0.  TERN_TEST_WRAP runs the binaries under an emulator.
set -u
HELLO=$1 SVC=$2
WRAP=${TERN_TEST_WRAP:-}
tmp=$(mktemp -d) hp= sp=
fail() { echo "FAIL: $*"; echo "--- svc stderr:"; tail -20 "$tmp/svc.err"; kill -9 $hp $sp 2>/dev/null; rm -rf "$tmp"; exit 1; }
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_up() { for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$1/$2" && return 0; sleep 0.1; done; return 1; }

# an enumeration is validated: a bad log.level is a config error naming the allowed values
# (issue 15: "shouting" was accepted and logged at info)
timeout 10 $WRAP "$SVC" --log.level shouting --listen 127.0.0.1:0 > "$tmp/bad.out" 2> "$tmp/svc.err"; rc=$?
[ $rc = 2 ] || fail "--log.level shouting: exit status $rc, expected 2"
grep -q 'config: log.level: "shouting" is not one of debug, info, warn, error, off (from flag --log.level)' \
    "$tmp/svc.err" || fail "--log.level shouting: no error naming the levels"
echo "ok  --log.level shouting -> exit 2, the levels named"

hport=$(port) sport=$(port) aport=$(port)
$WRAP "$HELLO" --listen 127.0.0.1:$hport > "$tmp/hello.out" 2>&1 & hp=$!
echo '{"log": {"level": "info"}, "call": {"timeout": "2s"}, "downstream": "http://127.0.0.1:'$hport'/plaintext"}' \
    > "$tmp/svc.json"
$WRAP "$SVC" --config "$tmp/svc.json" --listen 127.0.0.1:$sport --admin.listen 127.0.0.1:$aport \
    > "$tmp/svc.out" 2> "$tmp/svc.err" & sp=$!
wait_up $hport plaintext || fail "hello did not start"
wait_up $sport livez || fail "svc did not start"
base=http://127.0.0.1:$sport admin=http://127.0.0.1:$aport

check() {   # check PATH STATUS [TEXT]: the status, and TEXT in the body
    local code
    code=$(curl -s -o "$tmp/body" -w '%{http_code}' --max-time 10 "$base$1")
    [ "$code" = "$2" ] || fail "GET $1: status $code, expected $2"
    [ -z "${3:-}" ] || grep -q -- "$3" "$tmp/body" || fail "GET $1: no '$3' in: $(head -c 300 "$tmp/body")"
    echo "ok  GET $1 -> $2${3:+ ($3)}"
}
check /hello 200 "Hello, World!"
check /call 200 "downstream answered 200: Hello, World!"
check /livez 200 ok
check /readyz 200 ok
check "/healthz?verbose" 200 "\[+\]ready ok"
check /nope 404
check /metrics 200 'http_server_requests_total{route="/hello",method="GET",code="200"} 1'
check /metrics 200 "tern_coroutines"
# issue 15: /debug (internals, a CPU profile anyone could start) was on the
# public port; it is on the admin listener only
check /debug/vars 404
check /debug/coroutines 404
check "/debug/pprof/profile?seconds=1" 404
grep -q "^svc: admin on http://127.0.0.1:$aport/" "$tmp/svc.out" || fail "svc did not print the admin address"
base=$admin
check /debug/vars 200 '"config"'
check /debug/coroutines 200 "http-accept"
check /readyz 200 ok
check /hello 404
curl -s --max-time 10 -o "$tmp/prof" "$base/debug/pprof/profile?seconds=1"
[ "$(od -An -tx1 -N2 "$tmp/prof" | tr -d ' ')" = "1f8b" ] || fail "profile is not gzip"
echo "ok  GET /debug/pprof/profile?seconds=1 -> gzip"
base=http://127.0.0.1:$sport
grep -q '"request_id"' "$tmp/svc.err" || fail "no access log line with a request id"
echo "ok  access log with request ids"

# the downstream goes away: /call fails fast with a clear error, svc stays up
kill -TERM $hp; wait $hp
check /call 502 "downstream:"
check /hello 200

# a change of the file is seen without a signal (as a ConfigMap update is)
echo '{"log": {"level": "info"}, "call": {"timeout": "3s"}, "downstream": "http://127.0.0.1:'$hport'/plaintext"}' \
    > "$tmp/svc.json.tmp"
mv "$tmp/svc.json.tmp" "$tmp/svc.json"
for _ in $(seq 1 50); do grep -q '"msg":"config changed","key":"call.timeout"' "$tmp/svc.err" && break; sleep 0.1; done
grep -q '"msg":"config changed","key":"call.timeout"' "$tmp/svc.err" || fail "the file watcher did not reload call.timeout"
echo "ok  a change of --config FILE reloads it"

# SIGHUP reloads the file (the watcher sees the write too; one of them applies it)
echo '{"log": {"level": "debug"}, "call": {"timeout": "3s"}, "downstream": "http://127.0.0.1:'$hport'/plaintext"}' \
    > "$tmp/svc.json"
kill -HUP $sp
for _ in $(seq 1 50); do grep -q '"msg":"config changed","key":"log.level"' "$tmp/svc.err" && break; sleep 0.1; done
grep -q '"msg":"config changed","key":"log.level"' "$tmp/svc.err" || fail "SIGHUP did not reload log.level"
echo "ok  SIGHUP reloads the config"

# issue 15: a downstream URL's password showed in /debug/vars and in the
# log lines (the config change, the failed call); only "xxxxx" may
secret="http://admin:s3cret@127.0.0.1:$hport/plaintext"
echo '{"log": {"level": "debug"}, "call": {"timeout": "3s"}, "downstream": "'$secret'"}' > "$tmp/svc.json.tmp"
mv "$tmp/svc.json.tmp" "$tmp/svc.json"
for _ in $(seq 1 50); do grep -q '"msg":"config changed","key":"downstream"' "$tmp/svc.err" && break; sleep 0.1; done
grep -q '"msg":"config changed","key":"downstream".*"new":"http://admin:xxxxx@127.0.0.1' "$tmp/svc.err" ||
    fail "no redacted 'config changed' line for downstream"
check /call 502 "downstream:"
for _ in $(seq 1 50); do grep -q '"msg":"downstream failed".*"url":"http://admin:xxxxx@' "$tmp/svc.err" && break; sleep 0.1; done
grep -q '"msg":"downstream failed".*"url":"http://admin:xxxxx@127.0.0.1' "$tmp/svc.err" ||
    fail "no redacted 'downstream failed' line"
base=$admin
check /debug/vars 200 '"downstream":"http://admin:xxxxx@127.0.0.1'
grep -q s3cret "$tmp/body" && fail "/debug/vars shows the password"
grep -q s3cret "$tmp/svc.err" "$tmp/svc.out" && fail "the log shows the password: $(grep s3cret "$tmp/svc.err" | head -2)"
echo "ok  the downstream's password is redacted everywhere"

# SIGTERM: not ready, drain, exit 0
kill -TERM $sp
wait $sp; rc=$?
[ $rc -eq 0 ] || fail "svc exited $rc after SIGTERM"
grep -q '"msg":"service stopped"' "$tmp/svc.err" || fail "no 'service stopped' line"
grep -q s3cret "$tmp/svc.err" && fail "the log shows the password (after the flush)"
echo "ok  SIGTERM: exit 0"
rm -rf "$tmp"
