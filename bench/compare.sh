#!/usr/bin/env bash
# bench/compare.sh <suite> - run a benchmark suite of tern against its anchor.
#
#   bench/compare.sh runtime    spawn+join, yield switch, parked RSS, wake latency vs Go
#   bench/compare.sh csp        channels, select, contended mutex, WaitGroup vs Go
#   bench/compare.sh all        every suite this script knows
#
# Rules (/work/shared/BENCH.md): per metric, one warm-up run of each side,
# then ROUNDS rounds alternating tern and the anchor (A B A B ...); the
# median of each side and the ratio tern/anchor (lower is better for every
# figure here) go to stdout, one tab-separated line per metric:
#   metric<TAB>tern<TAB>anchor<TAB>ratio<TAB>unit<TAB>anchor-name
# Everything else (build output, progress, per-run notes) goes to stderr.
#
# Environment:
#   ROUNDS=5          measured rounds per metric (>= 5 for a figure you quote)
#   BUILD_DIR=build   the CMake build directory (configured as Release if absent;
#                     TERN_BENCH is switched on there if it is off)
#   NO_BUILD=1        skip building, use what is in BUILD_DIR
#   RUN_TIMEOUT=300   seconds before one run is killed and counted as NA
#
# The runtime suite takes about 2-3 minutes on 2 cores, the csp suite about
# as long.  Nothing is pinned;
# tern and Go both use all CPUs unless a metric says otherwise (yield: one
# P / GOMAXPROCS=1; wake: two Ps / GOMAXPROCS=2).
set -u -o pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$ROOT/build}
case $BUILD_DIR in /*) ;; *) BUILD_DIR=$ROOT/$BUILD_DIR ;; esac
ROUNDS=${ROUNDS:-5}
RUN_TIMEOUT=${RUN_TIMEOUT:-300}
CBIN=$BUILD_DIR/bench
GOBIN=$BUILD_DIR/bench-go

log() { printf '%s\n' "$*" >&2; }
die() { log "compare.sh: $*"; exit 1; }

usage() {
    log "usage: bench/compare.sh runtime|csp|all"
    exit 2
}

# ---- building --------------------------------------------------------------

C_BUILT=0
build_c() {
    [ "${NO_BUILD:-0}" = 1 ] && return 0
    [ "$C_BUILT" = 1 ] && return 0
    if [ ! -f "$BUILD_DIR/CMakeCache.txt" ]; then
        log "== configuring $BUILD_DIR (Release)"
        cmake -S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DTERN_BENCH=ON >&2 ||
            die "cmake configure failed"
    elif grep -q '^TERN_BENCH:BOOL=OFF' "$BUILD_DIR/CMakeCache.txt"; then
        # The bench targets are EXCLUDE_FROM_ALL: turning them on costs the
        # normal build nothing.
        log "== $BUILD_DIR has TERN_BENCH=OFF: reconfiguring with -DTERN_BENCH=ON"
        cmake -S "$ROOT" -B "$BUILD_DIR" -DTERN_BENCH=ON >&2 || die "cmake configure failed"
    fi
    if grep -q '^TERN_SANITIZE:STRING=..*' "$BUILD_DIR/CMakeCache.txt"; then
        log "warning: $BUILD_DIR is a sanitizer build; its figures mean little"
    fi
    log "== building C benchmarks (target tern_bench)"
    cmake --build "$BUILD_DIR" --target tern_bench -j "$(nproc)" >&2 ||
        die "building tern_bench failed"
    local flags=$BUILD_DIR/bench/CMakeFiles/rt_yield.dir/flags.make
    if [ -f "$flags" ] && ! grep -Eq '^C_FLAGS = .*-O[23s]' "$flags"; then
        log "warning: the benchmarks in $BUILD_DIR are built without -O2/-O3 ($(grep '^C_FLAGS' "$flags")); figures from an unoptimised build mean little"
    fi
    C_BUILT=1
}

build_go() { # build_go <dir under bench/go>
    [ "${NO_BUILD:-0}" = 1 ] && return 0
    command -v go >/dev/null || die "go not found"
    mkdir -p "$GOBIN"
    log "== building bench/go/$1"
    (cd "$ROOT/bench/go/$1" && go build -o "$GOBIN/$1" .) >&2 ||
        die "go build bench/go/$1 failed"
}

go_name() { go version 2>/dev/null | awk '{print $3}'; }

# ---- running and summarising ----------------------------------------------

# run_one <cmd...>: run once, print its one number or NA.
run_one() {
    local out rc
    out=$(timeout "$RUN_TIMEOUT" "$@")
    rc=$?
    out=$(printf '%s' "$out" | tr -d '[:space:]')
    if [ $rc -ne 0 ]; then
        log "  ! '$*' exited with status $rc"
        echo NA
    elif ! [[ $out =~ ^-?[0-9]+(\.[0-9]+)?$ ]]; then
        log "  ! '$*' printed '$out', not a number"
        echo NA
    else
        echo "$out"
    fi
}

# run_two <side file> <cmd...>: for a program that prints two numbers on
# stdout: print the first like run_one and append the second (or NA) to the
# side file, one line per call.  measure() runs each function in a subshell,
# so the second figure cannot go to RES directly; the caller reads the side
# file afterwards with load_side (which drops the warm-up line).
run_two() {
    local side=$1
    shift
    local out rc a b rest
    out=$(timeout "$RUN_TIMEOUT" "$@")
    rc=$?
    read -r a b rest <<<"$out"
    local num='^-?[0-9]+(\.[0-9]+)?$'
    if [ $rc -ne 0 ]; then
        log "  ! '$*' exited with status $rc"
        echo NA
        echo NA >>"$side"
    elif ! [[ ${a:-} =~ $num && ${b:-} =~ $num && -z ${rest:-} ]]; then
        log "  ! '$*' printed '$(printf '%s' "$out" | tr '\n' ' ')', not two numbers"
        echo NA
        echo NA >>"$side"
    else
        echo "$a"
        echo "$b" >>"$side"
    fi
}

declare -A RES   # key -> space-separated results

# load_side <key> <side file>: RES[key] = the side file's figures without
# its first line (the warm-up run: measure() calls every function once to
# warm up before the rounds).
load_side() {
    RES[$1]=" $(tail -n +2 "$2" 2>/dev/null | tr '\n' ' ')"
}

TMPD=
tmpdir() {
    [ -n "$TMPD" ] && return 0
    TMPD=$(mktemp -d "${TMPDIR:-/tmp}/tern-bench.XXXXXX") || die "mktemp failed"
    trap 'rm -rf "$TMPD"' EXIT
}

# busy_note [label]: a note (stderr) when a test suite (ctest) or a compiler
# (cc1) runs beside us: the figures measured meanwhile are noisy.
busy_note() {
    local p
    p=$(pgrep -x 'ctest|cc1' | paste -sd' ')
    [ -n "$p" ] && log "note: ${1:+$1: }ctest or a compiler is running (pid $p): figures will be noisy"
    return 0
}

# noise_note: busy_note plus the load average, at the start of a suite.
noise_note() {
    busy_note
    log "note: load average $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null)"
}

# measure <label> <key1> <fn1> [<key2> <fn2> ...]
# One warm-up of every fn, then ROUNDS rounds calling them in the given
# order (tern, anchor, tern, anchor, ...); results collect in RES[key].
measure() {
    local label=$1
    shift
    local -a keys=() fns=()
    while [ $# -gt 0 ]; do
        keys+=("$1")
        fns+=("$2")
        shift 2
    done
    local i r v
    busy_note "$label"
    log "== $label: warm-up"
    for i in "${!fns[@]}"; do
        v=$(${fns[$i]})
        log "  warm-up ${keys[$i]}: $v"
    done
    for ((r = 1; r <= ROUNDS; r++)); do
        for i in "${!fns[@]}"; do
            v=$(${fns[$i]})
            RES[${keys[$i]}]="${RES[${keys[$i]}]:-} $v"
            log "  round $r/$ROUNDS ${keys[$i]}: $v"
        done
    done
}

median() { # median of the numbers in $*, ignoring NA; NA if none
    printf '%s\n' "$@" | grep -v '^NA$' | grep -v '^$' | sort -g | awk '
        { v[NR] = $1 }
        END {
            if (NR == 0) { print "NA"; exit }
            if (NR % 2) print v[(NR + 1) / 2]
            else printf "%.1f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2
        }'
}

# emit <metric> <unit> <tern key> <anchor key> <anchor name>
emit() {
    local mt ma ratio
    # shellcheck disable=SC2086
    mt=$(median ${RES[$3]:-})
    # shellcheck disable=SC2086
    ma=$(median ${RES[$4]:-})
    ratio=$(awk -v t="$mt" -v a="$ma" 'BEGIN {
        if (t == "NA" || a == "NA" || a + 0 == 0) print "NA"
        else if (t / a >= 0.1) printf "%.2f\n", t / a
        else printf "%.3g\n", t / a }')
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$mt" "$ma" "$ratio" "$2" "$5"
    log "   -> $1: tern [${RES[$3]:-} ] anchor [${RES[$4]:-} ]"
}

# ---- suite: runtime --------------------------------------------------------
# Go anchor: bench/go/runtime (one binary, a subcommand per figure).
#   spawn_join_ns        start+join 1M empty coroutines in waves of 10,000
#                        (never more than 10k alive), ns each; default procs.
#                        Go: sync.WaitGroup per wave.
#   spawn_join_all_ns    the same with all 1M started before any is joined
#                        (Go's figure is then dominated by GC scanning 1M stacks).
#   yield_switch_ns      two coroutines yielding to each other on one P, 10M
#                        yields; ns per switch.  Go: GOMAXPROCS=1, Gosched.
#   parked_rss_bytes     1M coroutines parked at once, TERN_STACK_SHARED, each
#                        in tern_sleep(60 s); (peak RSS - RSS before) / 1M.
#                        Go: 1M goroutines blocked on a channel receive (Go's
#                        cheapest parking), same formula.
#   parked_rss_bytes_own the same with tern's default stack mode (TERN_STACK_OWN);
#                        the Go figure is the same runs'.
#   wake_cross_thread_ns A sleeps 50 us (both workers asleep), wakes parked B
#                        and busy-spins 200 us so B must run on the other P;
#                        median of t(B runs) - t(wake), 2000 rounds, 2 Ps.
#                        Go: cap-1 channel, GOMAXPROCS=2, time.Sleep.  Other
#                        load on the machine shows up here first: a woken
#                        worker that gets no CPU makes a round cost the whole
#                        200 us (the programs count rounds over 150 us on stderr).

t_spawn_waves() { run_one "$CBIN/rt_spawn_join" waves 1000000 10000; }
g_spawn_waves() { run_one "$GOBIN/runtime" spawn-waves 1000000 10000; }
t_spawn_all() { run_one "$CBIN/rt_spawn_join" all 1000000; }
g_spawn_all() { run_one "$GOBIN/runtime" spawn-all 1000000; }
t_yield() { run_one "$CBIN/rt_yield" 10000000; }
g_yield() { run_one "$GOBIN/runtime" yield 10000000; }
t_parked_shared() { run_one "$CBIN/rt_parked_rss" shared 1000000; }
t_parked_own() { run_one "$CBIN/rt_parked_rss" own 1000000; }
g_parked() { run_one "$GOBIN/runtime" parked 1000000; }
t_wake() { run_one "$CBIN/rt_wake" 2000 sleep; }
g_wake() { run_one "$GOBIN/runtime" wake 2000 sleep; }

suite_runtime() {
    build_c
    build_go runtime
    local b
    for b in rt_spawn_join rt_yield rt_parked_rss rt_wake; do
        [ -x "$CBIN/$b" ] || die "$CBIN/$b missing (build target tern_bench)"
    done
    [ -x "$GOBIN/runtime" ] || die "$GOBIN/runtime missing"
    local anchor
    anchor=$(go_name)
    [ -n "$anchor" ] || anchor=go
    log "== runtime suite: $ROUNDS rounds, anchor $anchor, $(nproc) CPUs"

    measure spawn_join tern.spawn t_spawn_waves go.spawn g_spawn_waves
    measure spawn_join_all tern.spawn_all t_spawn_all go.spawn_all g_spawn_all
    measure yield_switch tern.yield t_yield go.yield g_yield
    measure parked_rss tern.parked_shared t_parked_shared go.parked g_parked \
        tern.parked_own t_parked_own
    measure wake_cross_thread tern.wake t_wake go.wake g_wake

    emit spawn_join_ns ns/op tern.spawn go.spawn "$anchor"
    emit spawn_join_all_ns ns/op tern.spawn_all go.spawn_all "$anchor"
    emit yield_switch_ns ns/switch tern.yield go.yield "$anchor"
    emit parked_rss_bytes B/coroutine tern.parked_shared go.parked "$anchor"
    emit parked_rss_bytes_own B/coroutine tern.parked_own go.parked "$anchor"
    emit wake_cross_thread_ns ns tern.wake go.wake "$anchor"
}

# ---- suite: csp ------------------------------------------------------------
# C: bench/csp_bench.c (one program, a subcommand per figure); Go anchor:
# bench/go/csp (same subcommands).  Each run checks what it received.
#   chan_pingpong_1p_ns  unbuffered ping-pong between two coroutines, one P
#                        (procs=1 / GOMAXPROCS=1), 2M one-way messages; ns
#                        per one-way message.
#   chan_pingpong_ns     the same with the default Ps (tern: the CPUs it may
#                        use; Go: default GOMAXPROCS).
#   chan_buffered_ns     cap-1024 channel, one producer, one consumer, 10M
#                        ints (long / int), producer closes; ns per item;
#                        default Ps.
#   select4_ns           4 producers each feeding its own cap-64 channel with
#                        500k values; the consumer selects over the 4 receives
#                        2M times (which are ready at a select is up to the
#                        scheduler); ns per select; default Ps.
#   mutex_contended_ns   two coroutines, 2 Ps (procs=2 / GOMAXPROCS=2), 10M
#                        lock/unlock pairs in total on one tern_mutex /
#                        sync.Mutex, started together; ns per pair.  tern has
#                        no pinning API: the scheduler decides where the two
#                        run, as Go's does (csp_bench says on stderr how often
#                        it saw both on one worker thread).
#   mutex_handoffs_pct   INFORMATIONAL, from the same runs: the percentage of
#                        acquisitions that changed hands (the lock passed
#                        from one contender to the other).  Neither lower nor
#                        higher is "better": few hand-offs means barging
#                        (throughput), many means fairness.  Ratio tern/go.
#   waitgroup_fanout_ns  start 100k coroutines that each call Done on a
#                        WaitGroup (tern_waitgroup / sync.WaitGroup), then
#                        Wait; one untimed wave, then 10 timed waves per run;
#                        mean ns per worker; default Ps.

CSP_PP=2000000
CSP_BUF=10000000
CSP_SEL=2000000
CSP_MUTEX=10000000
CSP_WG=100000
CSP_WG_REPS=10

t_pp1() { run_one "$CBIN/csp_bench" pingpong-1p $CSP_PP; }
g_pp1() { run_one "$GOBIN/csp" pingpong-1p $CSP_PP; }
t_pp() { run_one "$CBIN/csp_bench" pingpong $CSP_PP; }
g_pp() { run_one "$GOBIN/csp" pingpong $CSP_PP; }
t_buf() { run_one "$CBIN/csp_bench" buffered $CSP_BUF; }
g_buf() { run_one "$GOBIN/csp" buffered $CSP_BUF; }
t_sel() { run_one "$CBIN/csp_bench" select4 $CSP_SEL; }
g_sel() { run_one "$GOBIN/csp" select4 $CSP_SEL; }
t_mutex() { run_two "$TMPD/tern.handoffs" "$CBIN/csp_bench" mutex $CSP_MUTEX; }
g_mutex() { run_two "$TMPD/go.handoffs" "$GOBIN/csp" mutex $CSP_MUTEX; }
t_wg() { run_one "$CBIN/csp_bench" waitgroup $CSP_WG $CSP_WG_REPS; }
g_wg() { run_one "$GOBIN/csp" waitgroup $CSP_WG $CSP_WG_REPS; }

suite_csp() {
    build_c
    build_go csp
    [ -x "$CBIN/csp_bench" ] ||
        die "$CBIN/csp_bench missing (build target tern_bench; it is only built once the tern library has its src/csp sources)"
    [ -x "$GOBIN/csp" ] || die "$GOBIN/csp missing"
    tmpdir
    : >"$TMPD/tern.handoffs"
    : >"$TMPD/go.handoffs"
    local anchor
    anchor=$(go_name)
    [ -n "$anchor" ] || anchor=go
    log "== csp suite: $ROUNDS rounds, anchor $anchor, $(nproc) CPUs"
    noise_note

    measure chan_pingpong_1p tern.pp1 t_pp1 go.pp1 g_pp1
    measure chan_pingpong tern.pp t_pp go.pp g_pp
    measure chan_buffered tern.buf t_buf go.buf g_buf
    measure select4 tern.sel t_sel go.sel g_sel
    measure mutex_contended tern.mutex t_mutex go.mutex g_mutex
    load_side tern.handoffs "$TMPD/tern.handoffs"
    load_side go.handoffs "$TMPD/go.handoffs"
    measure waitgroup_fanout tern.wg t_wg go.wg g_wg

    emit chan_pingpong_1p_ns ns/msg tern.pp1 go.pp1 "$anchor"
    emit chan_pingpong_ns ns/msg tern.pp go.pp "$anchor"
    emit chan_buffered_ns ns/item tern.buf go.buf "$anchor"
    emit select4_ns ns/select tern.sel go.sel "$anchor"
    emit mutex_contended_ns ns/pair tern.mutex go.mutex "$anchor"
    # Informational (see above): not a lower-is-better figure.
    emit mutex_handoffs_pct % tern.handoffs go.handoffs "$anchor"
    emit waitgroup_fanout_ns ns/worker tern.wg go.wg "$anchor"
}

# ---- main ------------------------------------------------------------------

[ $# -eq 1 ] || usage
if ! [[ $ROUNDS =~ ^[0-9]+$ ]] || [ "$ROUNDS" -lt 1 ]; then
    die "ROUNDS must be a positive integer"
fi
[ "$ROUNDS" -ge 5 ] || log "note: ROUNDS=$ROUNDS; BENCH.md asks for at least 5"
start=$(date +%s)
case $1 in
    runtime) suite_runtime ;;
    csp) suite_csp ;;
    all)
        # Suites are added here as they are written (http, startup).
        suite_runtime
        suite_csp
        ;;
    *) usage ;;
esac
log "== done in $(($(date +%s) - start)) s"
