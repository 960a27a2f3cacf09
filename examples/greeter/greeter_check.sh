#!/usr/bin/env bash
# greeter_check.sh SERVER CLIENT: the README's greeter session, checked.
# The server on a free port; the client's unary and streaming calls; then
# SIGTERM, after which the server drains and exits 0.
set -euo pipefail
server=${1:?usage: greeter_check.sh SERVER CLIENT}
client=${2:?}
tmp=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null; rm -rf "$tmp"' EXIT

"$server" 127.0.0.1:0 > "$tmp/out" 2> "$tmp/err" &
pid=$!
for _ in $(seq 100); do
  grep -q '^listening on' "$tmp/out" && break
  sleep 0.1
done
port=$(sed -n 's/^listening on \([0-9]*\)$/\1/p' "$tmp/out")
[ -n "$port" ] || { echo "the server did not start:"; cat "$tmp/err"; exit 1; }

got=$("$client" "127.0.0.1:$port" tern 2)
want=$'Hello, tern!\nHello, tern! (1 of 2)\nHello, tern! (2 of 2)'
if [ "$got" != "$want" ]; then
  printf 'client printed:\n%s\nwanted:\n%s\n' "$got" "$want"
  exit 1
fi
# a server that is gone: the client reports UNAVAILABLE and exits 1
kill -TERM "$pid"
wait "$pid" || { echo "the server exited $? after SIGTERM"; cat "$tmp/err"; exit 1; }
pid=
if "$client" "127.0.0.1:$port" tern 2> "$tmp/cerr"; then
  echo "the client succeeded against a stopped server"; exit 1
fi
grep -q UNAVAILABLE "$tmp/cerr" || { echo "client error:"; cat "$tmp/cerr"; exit 1; }
echo "greeter: ok"
