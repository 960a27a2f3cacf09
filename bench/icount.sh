#!/usr/bin/env bash
# bench/icount.sh BUILD_DIR - instructions per operation of the runtime and
# csp hot paths, under callgrind, on one P: each figure runs at N and 2N
# operations and prints (ir(2N) - ir(N)) / N, so start-up and tear-down
# cancel out.  Instruction counts repeat exactly for the same binary and
# input, whatever else the machine is doing: the way to compare two builds
# when wall time cannot see the difference (/work/shared/BENCH.md).
# BUILD_DIR is a Release build with the bench targets built
# (cmake --build BUILD_DIR --target tern_bench).
#   bench/icount.sh build-a > a.tsv; bench/icount.sh build-b > b.tsv; paste a.tsv b.tsv
# (kit_bench counter_inc is left out: it needs two Ps, and its retries make
# its count vary from run to run.)
set -u
B=${1:?usage: bench/icount.sh BUILD_DIR}
command -v valgrind >/dev/null || { echo "icount.sh: valgrind is not installed" >&2; exit 1; }
ir() {
    local f; f=$(mktemp)
    TERN_PROCS=1 valgrind --tool=callgrind --callgrind-out-file="$f" "$@" >/dev/null 2>&1
    grep -m1 "^summary:" "$f" | awk '{print $2}'
    rm -f "$f"
}
fig() { # name N cmd... (@N in cmd becomes N, then 2N)
    local name=$1 n=$2; shift 2
    local a b
    a=$(ir $(echo "$@" | sed "s/@N/$n/"))
    b=$(ir $(echo "$@" | sed "s/@N/$((2 * n))/"))
    printf '%s\t%.1f\tinstructions/op\n' "$name" "$(echo "($b - $a) / $n" | bc -l)"
}
fig yield 100000 "$B/bench/rt_yield" @N
fig spawn_join 20000 "$B/bench/rt_spawn_join" waves @N 1000
fig pingpong_1p 50000 "$B/bench/csp_bench" pingpong-1p @N
fig buffered 200000 "$B/bench/csp_bench" buffered @N
fig select4 50000 "$B/bench/csp_bench" select4 @N
fig mutex 200000 "$B/bench/csp_bench" mutex @N
fig waitgroup_round 1000 "$B/bench/csp_bench" waitgroup @N 10
