#!/usr/bin/env bash
# Redis GET with 256 concurrent callers: tern's client (bench/data_redis_get)
# and, for scale, redis-benchmark (C, 256 connections, no pipelining, and
# with -P 16), against one redis-server started here on a Unix socket.
#   bench/data_redis.sh [build-dir=build] [seconds=5]
# The go-redis v9 anchor of issue 18 (bench/compare.sh data) is not here yet.
set -euo pipefail
build=${1:-build}
secs=${2:-5}
dir=$(mktemp -d /tmp/tern-redis-bench-XXXXXX)
sock=$dir/r.sock
redis-server --port 0 --unixsocket "$sock" --save '' --appendonly no --daemonize no \
  --dir "$dir" --loglevel warning >/dev/null 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.05; done
echo "== tern (256 coroutines, pool 2)"
"$build/bench/data_redis_get" "$sock" 256 "$secs" 2
echo "== redis-benchmark GET (256 connections, one command in flight each)"
redis-benchmark -s "$sock" -c 256 -n 400000 -t get -d 32 -r 1000 -q | tr "\r" "\n" | grep "requests per second"
echo "== redis-benchmark GET (256 connections, -P 16)"
redis-benchmark -s "$sock" -c 256 -n 2000000 -t get -d 32 -r 1000 -P 16 -q | tr "\r" "\n" | grep "requests per second"
