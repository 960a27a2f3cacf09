#!/usr/bin/env bash
# bench/compare.sh <suite> - run a benchmark suite of tern against its anchor.
#
#   bench/compare.sh runtime    spawn+join, yield switch, parked RSS, wake latency vs Go
#   bench/compare.sh csp        channels, select, contended mutex, WaitGroup vs Go
#   bench/compare.sh http       HTTP/1.1 req/s, CPU/request, p99, idle RSS/connection
#                               vs Go net/http, nginx, h2o (wrk; see the suite)
#   bench/compare.sh kit        kit hot paths (metrics counter increment) vs their goals
#   bench/compare.sh h2         HTTP/2 req/s and CPU/request (h2c and over TLS, h2load
#                               -c64 -m32), idle RSS/connection vs h2o, Go, nginx
#   bench/compare.sh tls        HTTPS keep-alive req/s and CPU/request (wrk), full and
#                               resumed handshakes/s and CPU/handshake vs nginx, Go
#   bench/compare.sh data       NATS msgs/s (publish, subscribe) vs nats.go, Redis GET
#                               ops/s and client CPU/op vs go-redis v9, PostgreSQL
#                               queries/s and client CPU/query vs pgx v5 (servers started here)
#   bench/compare.sh grpc       gRPC unary RPC/s and server CPU/RPC (h2load -c16 -m64, a
#                               framed HelloRequest), server RSS under load and idle,
#                               server and bidi streaming msgs/s and CPU/msg, unary
#                               p99 at a fixed rate, idle RSS/connection vs grpc-go
#                               (and gRPC C++ where built)
#   bench/compare.sh gateway    proxy req/s, proxy CPU/request, added p99 through tern-gateway
#                               vs nginx proxy_pass and Go httputil.ReverseProxy (upstream:
#                               examples/hello); the full gateway's cost against bare proxying
#   bench/compare.sh shop       the shop: checkout orders/s at checkout p99 <= 50 ms (shop-load),
#                               idle RSS per role, start-to-ready vs a Go hello, binary and
#                               image size; anchors are goals (issue 20's Measure table)
#   bench/compare.sh all        every suite this script knows
#
# Rules (/work/shared/BENCH.md): per metric, one warm-up run of each side,
# then ROUNDS rounds alternating tern and the anchor (A B A B ...); the
# median of each side and the ratio tern/anchor (anchor/tern for a
# throughput, so lower is better for every figure) go to stdout, one
# tab-separated line per metric (per anchor):
#   metric<TAB>tern<TAB>anchor<TAB>ratio<TAB>unit<TAB>anchor-name
# Everything else (build output, progress, per-run notes) goes to stderr.
#
# Environment:
#   ROUNDS=5          measured rounds per metric (>= 5 for a figure you quote)
#   BUILD_DIR=build   the CMake build directory (configured as Release if absent;
#                     TERN_BENCH is switched on there if it is off)
#   NO_BUILD=1        skip building, use what is in BUILD_DIR
#   RUN_TIMEOUT=300   seconds before one run is killed and counted as NA
#   http, h2 and tls suites:
#   DURATION=5        seconds per wrk/h2load/tls_hs run; WARMUP=2 for the warm-up runs
#   METRICS=a,b       only these metrics (and the runs they need)
#   IDLE_CONNS=10000  connections for idle_conn_rss_bytes, h2_idle_conn_rss_bytes
#   TERN_TLS_ARGS     h2, tls: the flags that make examples/hello serve HTTPS on
#                     @PORT@ (default "--listen 127.0.0.1:@PORT2@ --tls-cert @CERT@
#                     --tls-key @KEY@ --tls-addr 127.0.0.1:@PORT@")
#   HELLO_BIN         h2, tls: tern's server (default BUILD_DIR/examples/hello),
#                     e.g. another branch's build
#   kit suite only:
#   KIT_ROUNDS=3*ROUNDS  rounds for kit_overhead_rps; KIT_DURATION=2 s per wrk run
#
# The runtime suite takes about 2-3 minutes on 2 cores, the csp suite about
# as long, the http suite about 7, the h2 suite about 5, the tls suite
# about 4.5 (ROUNDS=5, DURATION=5; each round more adds about 50 s to each).  Nothing is pinned;
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
    log "usage: bench/compare.sh runtime|csp|http|kit|h2|tls|data|grpc|gateway|shop|all"
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
    # The http suite's server under test, examples/hello: built here once
    # its target exists; a failure only costs the http suite its tern column.
    # (Makefile generators list it under "help"; any generator makes its
    # CMakeFiles directory.)
    if [ -d "$BUILD_DIR/examples/CMakeFiles/hello.dir" ] ||
        cmake --build "$BUILD_DIR" --target help 2>/dev/null | grep -q '^\.\.\. hello$'; then
        log "== building examples/hello (target hello)"
        cmake --build "$BUILD_DIR" --target hello svc -j "$(nproc)" >&2 ||
            log "warning: building targets hello and svc failed; the http suite's tern column will be NA"
    fi
    C_BUILT=1
}

# The anchor is the machine's newest Go (../shared/BENCH.md): /usr/local/go
# where present, whatever PATH says; Debian's golang-go only as a fallback.
# GO=/path/to/go overrides.
if [ -z "${GO:-}" ]; then
    if [ -x /usr/local/go/bin/go ]; then GO=/usr/local/go/bin/go; else GO=go; fi
fi

build_go() { # build_go <dir under bench/go> [<output name> [VAR=value...]]
    local dir=$1 out=${2:-$1}
    shift $(($# < 2 ? $# : 2))
    [ "${NO_BUILD:-0}" = 1 ] && return 0
    command -v "$GO" >/dev/null || die "go not found"
    mkdir -p "$GOBIN"
    log "== building bench/go/$dir${*:+ ($*)} with $("$GO" version)"
    (cd "$ROOT/bench/go/$dir" && env "$@" "$GO" build -o "$GOBIN/$out" .) >&2 ||
        die "go build bench/go/$dir failed"
}

go_name() { "$GO" version 2>/dev/null | awk '{print $3}'; }

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
        # MEASURE_WARMUP=1 tells a function that this is the warm-up run
        # (the http suite makes it shorter); the others ignore it.
        v=$(MEASURE_WARMUP=1 ${fns[$i]})
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

# emit <metric> <unit> <tern key> <anchor key> <anchor name> [tp]
# With "tp" (a throughput: higher is better) the ratio is anchor/tern, so
# that lower is better for it too; otherwise tern/anchor.
emit() {
    local mt ma ratio
    # shellcheck disable=SC2086
    mt=$(median ${RES[$3]:-})
    # shellcheck disable=SC2086
    ma=$(median ${RES[$4]:-})
    ratio=$(awk -v t="$mt" -v a="$ma" -v tp="${6:-}" 'BEGIN {
        if (tp == "tp" && t != "NA" && a != "NA") { x = t; t = a; a = x }
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
#   parked_rss_bytes_own the same with tern's default stack mode (TERN_STACK_OWN)
#                        and default options: where guard markers work, the
#                        monitor gives a stack's pages back once it has been
#                        parked 1 s (runtime/release.c, "any" mode), so the
#                        last second's spawns are still resident at the peak;
#                        the Go figure is the same runs'.
#   parked_rss_bytes_release the default mode with tern_go_options.release_stack
#                        (the coroutine's promise): pages back after 20 ms.
#   parked_rss_bytes_own_settled the default mode again, but (RSS 3 s after all
#                        are parked - RSS before) / 1M, on both sides: what a
#                        coroutine costs once parked a while, not the storm's
#                        peak (which holds the last second's spawns resident,
#                        so it depends on how fast the storm ran).
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
t_parked_release() { run_one "$CBIN/rt_parked_rss" release 1000000; }
g_parked() { run_one "$GOBIN/runtime" parked 1000000; }
t_parked_own_settled() { run_one "$CBIN/rt_parked_rss" own 1000000 3000; }
g_parked_settled() { run_one "$GOBIN/runtime" parked 1000000 3000; }
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

    # METRICS=a,b runs only those (the parked_rss_bytes* three run together)
    want spawn_join_ns && measure spawn_join tern.spawn t_spawn_waves go.spawn g_spawn_waves
    want spawn_join_all_ns && measure spawn_join_all tern.spawn_all t_spawn_all go.spawn_all g_spawn_all
    want yield_switch_ns && measure yield_switch tern.yield t_yield go.yield g_yield
    if want parked_rss_bytes || want parked_rss_bytes_own || want parked_rss_bytes_release; then
        measure parked_rss tern.parked_shared t_parked_shared go.parked g_parked \
            tern.parked_own t_parked_own tern.parked_release t_parked_release
    fi
    want parked_rss_bytes_own_settled && measure parked_rss_settled \
        tern.parked_own_settled t_parked_own_settled go.parked_settled g_parked_settled
    want wake_cross_thread_ns && measure wake_cross_thread tern.wake t_wake go.wake g_wake

    want spawn_join_ns && emit spawn_join_ns ns/op tern.spawn go.spawn "$anchor"
    want spawn_join_all_ns && emit spawn_join_all_ns ns/op tern.spawn_all go.spawn_all "$anchor"
    want yield_switch_ns && emit yield_switch_ns ns/switch tern.yield go.yield "$anchor"
    if want parked_rss_bytes || want parked_rss_bytes_own || want parked_rss_bytes_release; then
        emit parked_rss_bytes B/coroutine tern.parked_shared go.parked "$anchor"
        emit parked_rss_bytes_own B/coroutine tern.parked_own go.parked "$anchor"
        emit parked_rss_bytes_release B/coroutine tern.parked_release go.parked "$anchor"
    fi
    want parked_rss_bytes_own_settled &&
        emit parked_rss_bytes_own_settled B/coroutine tern.parked_own_settled go.parked_settled "$anchor"
    want wake_cross_thread_ns && emit wake_cross_thread_ns ns tern.wake go.wake "$anchor"
    return 0
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
#   pool_get_put_1p_ns   tern_pool / sync.Pool Get+Put of a 64-byte object
#   pool_get_put_2p_ns   from one goroutine per P, 1 P and 2 Ps, 20M pairs in
#                        all; ns per pair (wall / pairs, as RunParallel).

CSP_PP=2000000
CSP_BUF=10000000
CSP_SEL=2000000
CSP_MUTEX=10000000
CSP_WG=100000
CSP_WG_REPS=10
CSP_POOL=20000000

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
t_pool1() { run_one "$CBIN/csp_bench" pool-1p $CSP_POOL; }
g_pool1() { run_one "$GOBIN/csp" pool-1p $CSP_POOL; }
t_pool2() { run_one "$CBIN/csp_bench" pool-2p $CSP_POOL; }
g_pool2() { run_one "$GOBIN/csp" pool-2p $CSP_POOL; }

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
    measure pool_get_put_1p tern.pool1 t_pool1 go.pool1 g_pool1
    measure pool_get_put_2p tern.pool2 t_pool2 go.pool2 g_pool2

    emit chan_pingpong_1p_ns ns/msg tern.pp1 go.pp1 "$anchor"
    emit chan_pingpong_ns ns/msg tern.pp go.pp "$anchor"
    emit chan_buffered_ns ns/item tern.buf go.buf "$anchor"
    emit select4_ns ns/select tern.sel go.sel "$anchor"
    emit mutex_contended_ns ns/pair tern.mutex go.mutex "$anchor"
    # Informational (see above): not a lower-is-better figure.
    emit mutex_handoffs_pct % tern.handoffs go.handoffs "$anchor"
    emit waitgroup_fanout_ns ns/worker tern.wg go.wg "$anchor"
    emit pool_get_put_1p_ns ns/pair tern.pool1 go.pool1 "$anchor"
    emit pool_get_put_2p_ns ns/pair tern.pool2 go.pool2 "$anchor"
}

# ---- suite: http -----------------------------------------------------------
# Servers (all on 127.0.0.1, each on a free port, started when a group of
# metrics first needs it, checked with curl, stopped with SIGTERM (then
# SIGKILL) after the last group that uses it):
#   tern   $BUILD_DIR/examples/hello --listen 127.0.0.1:PORT (target hello;
#          if it is absent the tern column is NA and the anchors still run)
#   go     bench/go/http (net/http, the same endpoints), default GOMAXPROCS
#   nginx  bench/http/nginx.conf.in: return 200 "Hello, World!" text/plain,
#          worker_processes = CPUs, keepalive_requests 1e8, access_log off
#   h2o    bench/http/h2o.conf.in: a 13-byte file for /plaintext (Debian's
#          h2o 2.2 has no fixed body without mruby), etag off, num-threads = CPUs
# nginx and h2o run from a temporary prefix directory, as the current user.
#
# Load: wrk -t2 (HTTP_THREADS), DURATION=5 s per run (WARMUP=2 s for the
# warm-up run of each server), --latency.  Nothing is pinned: the 2 CPUs
# are shared by wrk and the server, so every figure is "server + wrk on the
# same 2 cores"; wrk's own CPU is noted on stderr.  Per group of metrics,
# one warm-up run per server, then ROUNDS rounds alternating tern, go,
# nginx, h2o; medians.
#   plaintext_c64_rps        GET /plaintext, keep-alive, 64 connections; req/s
#                            (anchors go, nginx; ratio anchor/tern)
#   plaintext_cpu_ns_per_req the same runs: server CPU (utime+stime from
#                            /proc/PID/stat of the server and its child
#                            processes, e.g. all nginx workers, before and
#                            after the wrk run) / requests served; ns
#                            (anchors nginx, go)
#   plaintext_c256_rps       the same with 256 connections (go, nginx)
#   p99_c256_us              the same runs: wrk's p99 latency; us (go)
#   plaintext_pipelined_rps  64 connections, 16 requests pipelined per
#                            connection (bench/http/pipeline.lua); req/s
#                            (nginx, h2o, and go for information)
#   pipelined_cpu_ns_per_req the same runs, CPU per request (h2o, nginx)
#   json_c64_rps             GET /json, 64 connections; req/s (go)
#   idle_conn_rss_bytes      a fresh server per run: VmRSS, then
#                            bench/http_idle opens IDLE_CONNS=10000
#                            connections that each make one request and
#                            stay open; VmRSS IDLE_SETTLE=3 s after they
#                            are all idle (servers may return an idle
#                            connection's buffers after a while: nginx at
#                            once, tern after 1 s; Go keeps them);
#                            (after - before) / N; bytes per connection (go)
# METRICS=name,name,... runs a subset (the groups that contain them).
# Response sizes differ between servers (curl -si | wc -c, on stderr).
# About 7 minutes with the defaults.

HTTP_THREADS=2
HTTP_PIPE_CONNS=64
HTTP_PIPE_DEPTH=16
HTTP_METRICS="plaintext_c64_rps plaintext_c256_rps plaintext_pipelined_rps json_c64_rps
plaintext_cpu_ns_per_req pipelined_cpu_ns_per_req p99_c256_us idle_conn_rss_bytes"
HTTP_BODY='Hello, World!'
HTTP_JSON='{"message":"Hello, World!"}'

declare -A SRV_PID SRV_PORT
TERN_HELLO=
TERN_OK=0

# tern_down <server key>: is it tern's (tern, tern.h2c, tern.tls) and known
# not to be up (no examples/hello, or it failed its start or check)?
declare -A SRV_DOWN
tern_down() {
    [ "${1%%.*}" = tern ] && { [ "$TERN_OK" != 1 ] || [ -n "${SRV_DOWN[$1]:-}" ]; }
}

want() { # want <metric>: is it in METRICS (or is METRICS unset)?
    [ -z "${METRICS:-}" ] && return 0
    [[ ,$METRICS, == *,$1,* ]]
}

free_port() {
    python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

# child_pids <pid>: the pid's descendants (nginx workers, h2o's helper).
child_pids() {
    local c
    for c in $(pgrep -P "$1"); do
        echo "$c"
        child_pids "$c"
    done
}

# cpu_ticks <pid>: utime+stime of the pid and its descendants, clock ticks.
cpu_ticks() {
    local p st total=0
    local -a f
    for p in "$1" $(child_pids "$1"); do
        st=$(cat "/proc/$p/stat" 2>/dev/null) || continue
        read -r -a f <<<"${st##*) }" # f[0] is field 3 (state)
        total=$((total + f[11] + f[12]))
    done
    echo "$total"
}

vmrss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null; }

# start_server <name>: start it on a free port, wait until /plaintext
# answers 200 (10 s at most); sets SRV_PID[name] and SRV_PORT[name].
# Returns 1 (after a note) if it does not come up.
start_server() {
    local name=$1 port dir pid i code user_line=
    port=$(free_port) || return 1
    dir=$(mktemp -d "$TMPD/$name.XXXXXX") || return 1
    [ "$(id -u)" = 0 ] && user_line=1
    case $name in
        tern) "$TERN_HELLO" --listen "127.0.0.1:$port" </dev/null >"$dir/out.log" 2>&1 & ;;
        go) "$GOBIN/http" --listen "127.0.0.1:$port" </dev/null >"$dir/out.log" 2>&1 & ;;
        nginx)
            sed -e "s|@PREFIX@|$dir|g" -e "s|@PORT@|$port|g" -e "s|@WORKERS@|$(nproc)|g" \
                -e "s|@USER_LINE@|${user_line:+user root;}|" \
                "$ROOT/bench/http/nginx.conf.in" >"$dir/nginx.conf"
            /usr/sbin/nginx -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf" \
                </dev/null >"$dir/out.log" 2>&1 &
            ;;
        h2o)
            printf '%s' "$HTTP_BODY" >"$dir/plaintext.txt"
            sed -e "s|@PREFIX@|$dir|g" -e "s|@PORT@|$port|g" -e "s|@WORKERS@|$(nproc)|g" \
                -e "s|@USER_LINE@|${user_line:+user: root}|" \
                "$ROOT/bench/http/h2o.conf.in" >"$dir/h2o.conf"
            /usr/bin/h2o -c "$dir/h2o.conf" </dev/null >"$dir/out.log" 2>&1 &
            ;;
        *) die "start_server: unknown server $name" ;;
    esac
    pid=$!
    echo "$pid" >>"$TMPD/http.pids"
    SRV_PID[$name]=$pid
    SRV_PORT[$name]=$port
    for ((i = 0; i < 100; i++)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            wait "$pid" 2>/dev/null
            log "  ! $name exited with status $? during start-up; its output:"
            tail -n 5 "$dir"/*.log >&2
            unset 'SRV_PID[$name]'
            return 1
        fi
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 \
            "http://127.0.0.1:$port/plaintext" 2>/dev/null)
        [ "$code" = 200 ] && return 0
        sleep 0.1
    done
    log "  ! $name did not answer 200 on /plaintext within 10 s (last status '$code')"
    stop_server "$name"
    return 1
}

# stop_server <name>: SIGTERM, up to 5 s, then SIGKILL (the pid and its
# descendants: nginx's workers must not outlive a killed master).
stop_server() {
    local name=$1 pid kids i rc
    pid=${SRV_PID[$name]:-}
    [ -n "$pid" ] || return 0
    kids=$(child_pids "$pid")
    kill -TERM "$pid" 2>/dev/null
    for ((i = 0; i < 50; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "  ! $name (pid $pid) still running 5 s after SIGTERM: SIGKILL"
        kill -KILL "$pid" $kids 2>/dev/null
    fi
    wait "$pid" 2>/dev/null
    rc=$?
    [ "${name%%.*}" = tern ] && [ $rc -ne 0 ] && log "  note: tern's server ($name) exited with status $rc after SIGTERM"
    for i in $kids; do
        kill -0 "$i" 2>/dev/null && kill -KILL "$i" 2>/dev/null
    done
    unset 'SRV_PID[$name]'
    return 0
}

# http_cleanup: at exit, end every server this script started and that
# still runs (including those started inside measure()'s subshells).
http_cleanup() {
    local name p
    for name in "${!SRV_PID[@]}"; do
        stop_server "$name"
    done
    [ -f "$TMPD/http.pids" ] || return 0
    for p in $(cat "$TMPD/http.pids"); do
        if kill -0 "$p" 2>/dev/null; then
            # shellcheck disable=SC2046
            kill -KILL "$p" $(child_pids "$p") 2>/dev/null
        fi
    done
}

# check_server <name>: is /plaintext (and /json for tern and go) what it
# must be?  Notes the response sizes.  Returns 1 if not.
check_server() {
    local name=$1 u="http://127.0.0.1:${SRV_PORT[$1]}" ok=0 got ct size
    got=$(curl -s --max-time 5 "$u/plaintext")
    ct=$(curl -s -o /dev/null --max-time 5 -w '%{http_code} %{content_type}' "$u/plaintext")
    if [ "$got" != "$HTTP_BODY" ] || [[ $ct != "200 text/plain"* ]]; then
        log "  ! $name: GET /plaintext answered '$ct' '$got'"
        ok=1
    fi
    size=$(curl -si --max-time 5 "$u/plaintext" | wc -c)
    log "  $name: GET /plaintext response is $size bytes (status line, headers and body)"
    [ "$name" = tern ] || [ "$name" = go ] || return $ok
    got=$(curl -s --max-time 5 "$u/json")
    ct=$(curl -s -o /dev/null --max-time 5 -w '%{http_code} %{content_type}' "$u/json")
    if [ "$got" != "$HTTP_JSON" ] || [[ $ct != "200 application/json"* ]]; then
        log "  ! $name: GET /json answered '$ct' '$got'"
        ok=1
    fi
    size=$(curl -si --max-time 5 "$u/json" | wc -c)
    log "  $name: GET /json response is $size bytes"
    # The other endpoints: notes only (no metric uses them).
    got=$(curl -s --max-time 5 -w ' %{http_code} %{content_type}' -H 'Content-Type: text/x-bench' \
        --data-binary 'ping' "$u/echo")
    [ "$got" = "ping 200 text/x-bench" ] || log "  note: $name: POST /echo answered '$got'"
    got=$(head -c $((8 << 20)) /dev/zero | curl -s -o /dev/null --max-time 20 \
        -w '%{http_code} %{size_download}' --data-binary @- "$u/echo")
    [ "$got" = "200 $((8 << 20))" ] || log "  note: $name: POST /echo with 8 MiB answered '$got'"
    got=$(head -c $(((8 << 20) + 1)) /dev/zero | curl -s -o /dev/null --max-time 20 \
        -w '%{http_code}' --data-binary @- "$u/echo")
    [ "$got" = 413 ] || log "  note: $name: POST /echo with 8 MiB + 1 answered '$got', not 413"
    got=$(curl -s -o /dev/null --max-time 5 -w '%{http_code} %{time_total}' "$u/sleep?ms=100")
    awk -v g="$got" 'BEGIN { split(g, a, " "); exit !(a[1] == 200 && a[2] >= 0.1) }' ||
        log "  note: $name: GET /sleep?ms=100 answered '$got' (status, seconds)"
    got=$(curl -s --max-time 5 "$u/users/42")
    [ "$got" = '{"id":"42"}' ] || log "  note: $name: GET /users/42 answered '$got'"
    return $ok
}

# ensure_server <name>: start and check it unless it runs; for tern a
# failure only turns its column to NA, for an anchor it is fatal.
ensure_server() {
    local name=$1
    [ "$name" = tern ] && [ "$TERN_OK" != 1 ] && return 0
    [ -n "${SRV_PID[$name]:-}" ] && return 0
    log "== starting $name"
    if start_server "$name" && check_server "$name"; then
        log "  $name: pid ${SRV_PID[$name]}, port ${SRV_PORT[$name]}"
        return 0
    fi
    stop_server "$name"
    if [ "$name" = tern ]; then
        log "warning: tern's server did not come up right: its column is NA"
        TERN_OK=0
        return 0
    fi
    die "the $name anchor did not come up right (see above)"
}

# lat_us <wrk latency, e.g. 1.23ms>: microseconds.
lat_us() {
    awk -v v="$1" 'BEGIN {
        if (match(v, /^[0-9.]+/)) { n = substr(v, 1, RLENGTH); u = substr(v, RLENGTH + 1) }
        else { print "NA"; exit }
        if (u == "us") f = 1; else if (u == "ms") f = 1000; else if (u == "s") f = 1e6;
        else if (u == "m") f = 6e7; else { print "NA"; exit }
        printf "%.1f\n", n * f }'
}

# http_run <server> <group>: one wrk run; prints req/s (or NA); appends
# one line each (a figure or NA) to $TMPD/http.<server>.<group>.cpu (server
# CPU ns per request) and .p99 (us).
http_run() {
    local s=$1 g=$2 conns path=/plaintext dur=$DURATION scheme=http
    local cpuf=$TMPD/http.$s.$g.cpu p99f=$TMPD/http.$s.$g.p99
    local -a extra=()
    case $g in
        c64) conns=64 ;;
        c256) conns=256 ;;
        json) conns=64 path=/json ;;
        tls) conns=$TLS_CONNS scheme=https ;; # the tls suite: <server>.tls
        pipe)
            conns=$HTTP_PIPE_CONNS
            extra=(-s "$ROOT/bench/http/pipeline.lua")
            ;;
    esac
    [ "${MEASURE_WARMUP:-0}" = 1 ] && dur=$WARMUP
    local pid=${SRV_PID[$s]:-}
    if tern_down "$s" || [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then
        tern_down "$s" || log "  ! $s is not running"
        echo NA
        echo NA >>"$cpuf"
        echo NA >>"$p99f"
        return
    fi
    local out=$TMPD/wrk.$s.$g.out c0 c1 rc
    local -a args=(-t"$HTTP_THREADS" -c"$conns" -d"${dur}s" --latency "${extra[@]}"
        "$scheme://127.0.0.1:${SRV_PORT[$s]}$path")
    [ "$g" = pipe ] && args+=(-- "$HTTP_PIPE_DEPTH")
    c0=$(cpu_ticks "$pid")
    # wrk under a shell that notes its own CPU after waiting for it (the
    # shell's cutime+cstime in /proc/PID/stat are then wrk's).
    timeout $((dur + 60)) bash -c 'wrk "$@" >"$0"; rc=$?; cat /proc/$$/stat >"$0.stat"; exit $rc' \
        "$out" "${args[@]}" 2>"$out.err"
    rc=$?
    c1=$(cpu_ticks "$pid")
    local rps reqs non2xx sockerr p50 p90 p99 wcpu
    rps=$(awk '/^Requests\/sec:/ {print $2}' "$out")
    reqs=$(awk '/ requests in / {print $1}' "$out")
    non2xx=$(awk '/Non-2xx or 3xx responses:/ {print $NF}' "$out")
    sockerr=$(grep 'Socket errors:' "$out" | sed 's/^ *//')
    p50=$(awk '$1 == "50%" {print $2}' "$out")
    p90=$(awk '$1 == "90%" {print $2}' "$out")
    p99=$(awk '$1 == "99%" {print $2}' "$out")
    wcpu=$(awk -v tck="$(getconf CLK_TCK)" -v d="$dur" '{ sub(/^.*\) /, "");
        printf "%.0f", ($14 + $15) / tck / d * 100 }' "$out.stat" 2>/dev/null)
    if [ $rc -ne 0 ] || ! [[ ${rps:-} =~ ^[0-9.]+$ && ${reqs:-} =~ ^[0-9]+$ ]] || [ "$reqs" = 0 ]; then
        log "  ! wrk against $s ($g) exited with status $rc: $(tr '\n' ' ' <"$out.err") $(tr '\n' ' ' <"$out" | tail -c 300)"
        echo NA
        echo NA >>"$cpuf"
        echo NA >>"$p99f"
        return
    fi
    if [ -n "$non2xx" ] && [ "$non2xx" != 0 ]; then
        log "  ! $s ($g): $non2xx responses were not 2xx/3xx: run counted as NA"
        echo NA
        echo NA >>"$cpuf"
        echo NA >>"$p99f"
        return
    fi
    [ -n "$sockerr" ] && log "  note: $s ($g): $sockerr"
    local cpu_ns
    cpu_ns=$(awk -v d=$((c1 - c0)) -v tck="$(getconf CLK_TCK)" -v n="$reqs" \
        'BEGIN { printf "%.0f\n", d / tck * 1e9 / n }')
    echo "$cpu_ns" >>"$cpuf"
    # wrk 4.1 can print a 0.00us percentile in pipelined runs: missing.
    local p99us
    p99us=$(lat_us "${p99:-}")
    [[ ${p99:-} == 0.00* ]] && p99us=NA
    echo "$p99us" >>"$p99f"
    log "    $s $g: $rps req/s, $reqs requests; p50 ${p50:-?} p90 ${p90:-?} p99 ${p99:-?};" \
        "server CPU $cpu_ns ns/req ($(awk -v d=$((c1 - c0)) -v t="$(getconf CLK_TCK)" -v s="$dur" \
            'BEGIN { printf "%.0f", d / t / s * 100 }')% of a core), wrk CPU ${wcpu:-?}% of a core"
    echo "$rps"
}

# http_idle_run <server>: a fresh server; prints bytes per idle connection.
http_idle_run() { idle_run "$1" start_server "$CBIN/http_idle"; }

# idle_run <server key> <start function> <client> [curl option]: a fresh
# server (started by the function, given the key), one request with curl,
# VmRSS, then the client (http_idle, h2_idle) holds IDLE_CONNS connections;
# prints bytes per idle connection.
idle_run() {
    local s=$1 startf=$2 client=$3 copt=${4:-} n=$IDLE_CONNS
    if tern_down "$s"; then
        echo NA
        return
    fi
    if ! "$startf" "$s"; then
        log "  ! $s did not start for the idle-connection run"
        echo NA
        return
    fi
    local pid=${SRV_PID[$s]} port=${SRV_PORT[$s]}
    curl -s -o /dev/null --max-time 5 $copt "http://127.0.0.1:$port/plaintext"
    sleep 0.5
    local before after fifo=$TMPD/idle.$BASHPID.fifo out=$TMPD/idle.$BASHPID.out ip i rc
    before=$(vmrss_kb "$pid")
    rm -f "$fifo"
    mkfifo "$fifo" || die "mkfifo failed"
    "$client" 127.0.0.1 "$port" "$n" <"$fifo" >"$out" &
    ip=$!
    exec 9>"$fifo"
    for ((i = 0; i < 600; i++)); do
        grep -q '^ready$' "$out" 2>/dev/null && break
        kill -0 "$ip" 2>/dev/null || break
        sleep 0.1
    done
    if ! grep -q '^ready$' "$out" 2>/dev/null; then
        log "  ! ${client##*/} against $s did not get ready"
        exec 9>&-
        kill "$ip" 2>/dev/null
        wait "$ip" 2>/dev/null
        stop_server "$s"
        echo NA
        return
    fi
    sleep "${IDLE_SETTLE:-3}"
    after=$(vmrss_kb "$pid")
    exec 9>&-
    wait "$ip"
    rc=$?
    rm -f "$fifo" "$out"
    stop_server "$s"
    if [ $rc -ne 0 ] || [ -z "$before" ] || [ -z "$after" ]; then
        log "  ! $s idle run: ${client##*/} status $rc, VmRSS before '$before' after '$after' kB"
        echo NA
        return
    fi
    log "    $s idle: VmRSS $before kB -> $after kB with $n idle connections"
    awk -v b="$before" -v a="$after" -v n="$n" 'BEGIN { printf "%.0f\n", (a - b) * 1024 / n }'
}

for _s in tern go nginx h2o; do
    for _g in c64 c256 pipe json; do
        eval "hr_${_g}_$_s() { http_run $_s $_g; }"
    done
    eval "hi_$_s() { http_idle_run $_s; }"
done
unset _s _g

# http_group <group> <servers...>: run the group's wrk runs (measure), with
# the servers started before and, if this is their last group, stopped after.
http_group() {
    local g=$1 s
    shift
    local -a args=()
    for s in "$@"; do
        ensure_server "$s"
        args+=("$s.$g" "hr_${g}_$s")
    done
    measure "http $g ($*)" "${args[@]}"
    for s in "$@"; do
        load_side "$s.$g.cpu" "$TMPD/http.$s.$g.cpu"
        load_side "$s.$g.p99" "$TMPD/http.$s.$g.p99"
    done
}

suite_http() {
    local m s
    if [ -n "${METRICS:-}" ]; then
        for m in ${METRICS//,/ }; do
            [[ " ${HTTP_METRICS//$'\n'/ } " == *" $m "* ]] || die "METRICS: unknown http metric '$m' (known: $(echo $HTTP_METRICS))"
        done
    fi
    DURATION=${DURATION:-5}
    WARMUP=${WARMUP:-2}
    IDLE_CONNS=${IDLE_CONNS:-10000}
    [[ $DURATION =~ ^[1-9][0-9]*$ ]] || die "DURATION must be a positive number of seconds"
    [[ $WARMUP =~ ^[1-9][0-9]*$ ]] || die "WARMUP must be a positive number of seconds"
    [ "$WARMUP" -gt "$DURATION" ] && WARMUP=$DURATION
    command -v wrk >/dev/null || die "wrk not found"
    command -v curl >/dev/null || die "curl not found"
    command -v python3 >/dev/null || die "python3 not found (free ports)"
    build_c
    build_go http
    [ -x "$GOBIN/http" ] || die "$GOBIN/http missing"
    TERN_HELLO=$BUILD_DIR/examples/hello
    if [ -x "$TERN_HELLO" ]; then
        TERN_OK=1
    else
        log "note: $TERN_HELLO does not exist (target hello): the tern column is NA"
        TERN_OK=0
    fi
    tmpdir
    trap 'http_cleanup; rm -rf "$TMPD"' EXIT
    trap 'exit 130' INT TERM

    # Every process started from here (servers included) may open this many.
    ulimit -n "$(ulimit -Hn)" 2>/dev/null
    if want idle_conn_rss_bytes; then
        [ -x "$CBIN/http_idle" ] || die "$CBIN/http_idle missing (build target tern_bench)"
        [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((IDLE_CONNS + 100)) ] &&
            die "ulimit -n is $(ulimit -n) (hard limit $(ulimit -Hn)); idle_conn_rss_bytes needs IDLE_CONNS+100 = $((IDLE_CONNS + 100))"
    fi
    local ago ang ah2o
    ago=$(go_name)
    [ -n "$ago" ] || ago=go
    ang=nginx$(/usr/sbin/nginx -v 2>&1 | sed -n 's|.*nginx/\([0-9.]*\).*|\1|p')
    ah2o=h2o$(/usr/bin/h2o --version 2>/dev/null | awk 'NR == 1 {print $3}')
    log "== http suite: $ROUNDS rounds, wrk -t$HTTP_THREADS, ${DURATION} s per run (${WARMUP} s warm-up), $(nproc) CPUs shared by wrk and the servers, nothing pinned"
    log "   anchors $ago, $ang, $ah2o; tern: $([ "$TERN_OK" = 1 ] && echo "$TERN_HELLO" || echo NA)"
    noise_note

    # Which servers each group needs, for the metrics wanted (read through
    # the nameref grp below).
    # shellcheck disable=SC2034
    local -a c64=() c256=() pipe=() json=()
    # shellcheck disable=SC2034
    want plaintext_c64_rps || want plaintext_cpu_ns_per_req && c64=(tern go nginx)
    want plaintext_c256_rps && c256=(tern go nginx)
    want p99_c256_us && [ ${#c256[@]} -eq 0 ] && c256=(tern go)
    want plaintext_pipelined_rps && pipe=(tern go nginx h2o)
    want pipelined_cpu_ns_per_req && [ ${#pipe[@]} -eq 0 ] && pipe=(tern nginx h2o)
    # shellcheck disable=SC2034
    want json_c64_rps && json=(tern go)

    # A server stops after the last group that needs it.
    local -A last=()
    local g
    for g in c64 c256 json pipe; do
        local -n grp=$g
        for s in "${grp[@]}"; do last[$s]=$g; done
        unset -n grp
    done
    for g in c64 c256 json pipe; do
        local -n grp=$g
        if [ ${#grp[@]} -gt 0 ]; then
            http_group "$g" "${grp[@]}"
            for s in "${grp[@]}"; do
                [ "${last[$s]}" = "$g" ] && stop_server "$s"
            done
        fi
        unset -n grp
    done
    if want idle_conn_rss_bytes; then
        measure "idle_conn_rss ($IDLE_CONNS connections, a fresh server per run)" \
            tern.idle hi_tern go.idle hi_go
    fi

    want plaintext_c64_rps && {
        emit plaintext_c64_rps req/s tern.c64 go.c64 "$ago" tp
        emit plaintext_c64_rps req/s tern.c64 nginx.c64 "$ang" tp
    }
    want plaintext_c256_rps && {
        emit plaintext_c256_rps req/s tern.c256 go.c256 "$ago" tp
        emit plaintext_c256_rps req/s tern.c256 nginx.c256 "$ang" tp
    }
    want plaintext_pipelined_rps && {
        emit plaintext_pipelined_rps req/s tern.pipe nginx.pipe "$ang" tp
        emit plaintext_pipelined_rps req/s tern.pipe h2o.pipe "$ah2o" tp
        emit plaintext_pipelined_rps req/s tern.pipe go.pipe "$ago" tp
    }
    want json_c64_rps && emit json_c64_rps req/s tern.json go.json "$ago" tp
    want plaintext_cpu_ns_per_req && {
        emit plaintext_cpu_ns_per_req ns/req tern.c64.cpu nginx.c64.cpu "$ang"
        emit plaintext_cpu_ns_per_req ns/req tern.c64.cpu go.c64.cpu "$ago"
    }
    want pipelined_cpu_ns_per_req && {
        emit pipelined_cpu_ns_per_req ns/req tern.pipe.cpu h2o.pipe.cpu "$ah2o"
        emit pipelined_cpu_ns_per_req ns/req tern.pipe.cpu nginx.pipe.cpu "$ang"
    }
    want p99_c256_us && emit p99_c256_us us tern.c256.p99 go.c256.p99 "$ago"
    want idle_conn_rss_bytes && emit idle_conn_rss_bytes B/conn tern.idle go.idle "$ago"
    return 0
}

# ---- suites: h2 and tls ----------------------------------------------------
# Servers: as in the http suite (127.0.0.1, free ports, started when a group
# first needs them, stopped with SIGTERM after their last group), but one
# process per port and mode, named <server>.<mode>:
#   <server>.h2c  cleartext; h2c with prior knowledge (checked with
#                 curl --http2-prior-knowledge: 200, HTTP/2)
#   <server>.tls  HTTPS with h2 and http/1.1 by ALPN (checked with
#                 curl --http2 -k: 200, HTTP/2)
# A certificate for both suites is made at run time in the temporary
# directory: `openssl req -x509`, ECDSA P-256, SAN IP:127.0.0.1 and
# DNS:localhost, the same for every server.
#   tern   $BUILD_DIR/examples/hello (or HELLO_BIN): h2c: --listen
#          127.0.0.1:PORT, which serves HTTP/1.1 and h2c on one port; tls:
#          --listen 127.0.0.1:PORT2 --tls-cert C --tls-key K --tls-addr
#          127.0.0.1:PORT, HTTPS (ALPN h2 and http/1.1) on PORT, the
#          cleartext PORT2 idle (TERN_TLS_ARGS overrides these flags).  A
#          mode that does not come up (no h2c or TLS in this tern yet) is NA;
#          the anchors still run.
#   go     bench/go/h2: net/http, h2c through http.Server.Protocols (the
#          documented way since Go 1.24; x/net's h2c package is deprecated),
#          HTTPS through ListenAndServeTLS; defaults otherwise
#   nginx  bench/h2/nginx.conf.in: `listen ... http2` (h2c only: nginx 1.22
#          speaks no HTTP/1.1 on such a port) or `listen ... ssl http2`;
#          return 200 "Hello, World!"; ssl_protocols TLSv1.2 TLSv1.3 (1.22's
#          default has no TLS 1.3), TLS defaults otherwise (tickets on, no
#          session cache); keepalive_requests 1e8 (it also ends h2
#          connections); worker_processes = CPUs
#   h2o    bench/h2/h2o.conf.in: the 13-byte file (BENCH.md), num-threads =
#          CPUs, h2o's TLS defaults
# Responses differ in header size: each h2load run notes its header bytes
# per response on stderr.
#
# suite h2 (about 5 minutes): per group one warm-up run per server, then
# ROUNDS rounds alternating tern, h2o, go, nginx; medians.
#   h2_rps                 h2load -c H2_CONNS=64 -m H2_STREAMS=32 -t
#                          H2_THREADS=2 -D DURATION=5 (WARMUP=2 for the
#                          warm-up run), GET /plaintext over h2c; req/s
#                          (anchors h2o, go, nginx; ratio anchor/tern)
#   h2_cpu_ns_per_req      the same runs: the server's CPU (utime+stime of
#                          its processes, /proc) / requests; ns
#   h2_tls_rps             the same over TLS (h2 by ALPN; h2load's TLS
#                          defaults: TLS 1.3, X25519); req/s
#   h2_tls_cpu_ns_per_req  the same runs, CPU per request
#   h2_idle_conn_rss_bytes a fresh h2c server per run: VmRSS, then
#                          bench/h2_idle opens IDLE_CONNS=10000 connections
#                          that each exchange the preface and SETTINGS and
#                          make one GET, then stay open; VmRSS IDLE_SETTLE=3
#                          s later; (after - before) / N; bytes per
#                          connection (go)
# suite tls (about 4.5 minutes): servers in their .tls mode; ROUNDS rounds
# alternating tern, nginx, go.
#   tls_rps_c64            wrk -t2 -c TLS_CONNS=64 -d DURATION, HTTPS
#                          keep-alive (HTTP/1.1: wrk offers no ALPN), GET
#                          /plaintext; req/s (nginx, go)
#   tls_cpu_ns_per_req     the same runs, the server's CPU per request
#   tls_handshakes_per_s   bench/tls_hs: HS_CONNS=16 connections in
#                          progress for DURATION s, each a full handshake
#                          (OpenSSL 3 client defaults: TLS 1.3, X25519; the
#                          server signs with its P-256 key), one GET with
#                          Connection: close, read to the end; new
#                          connections per second (nginx, go)
#   tls_handshake_cpu_ns   the same runs: the server's CPU per connection
#   tls_resumed_handshakes_per_s, tls_resumed_cpu_ns  the same with each
#                          connection resuming the session (ticket) of the
#                          previous one on its slot (tls_hs fails the run
#                          if under 90% resumed)
# The client and the server share the 2 CPUs: a full handshake costs the
# client about as much as the server, so compare the CPU figures.
# METRICS=name,... runs a subset, as in the http suite.

H2_CONNS=64
H2_STREAMS=32
H2_THREADS=2
TLS_CONNS=64
HS_CONNS=16
H2_METRICS="h2_rps h2_cpu_ns_per_req h2_tls_rps h2_tls_cpu_ns_per_req h2_idle_conn_rss_bytes"
TLS_METRICS="tls_rps_c64 tls_cpu_ns_per_req tls_handshakes_per_s tls_handshake_cpu_ns
tls_resumed_handshakes_per_s tls_resumed_cpu_ns"
TLS_CERT=
TLS_KEY=
: "${TERN_TLS_ARGS:=--listen 127.0.0.1:@PORT2@ --tls-cert @CERT@ --tls-key @KEY@ --tls-addr 127.0.0.1:@PORT@}"

# check_metrics <known list>: every name in METRICS must be known.
check_metrics() {
    local m
    [ -n "${METRICS:-}" ] || return 0
    for m in ${METRICS//,/ }; do
        [[ " ${1//$'\n'/ } " == *" $m "* ]] || die "METRICS: unknown metric '$m' (known: $(echo $1))"
    done
}

# make_cert: an ECDSA P-256 self-signed certificate in $TMPD (once).
make_cert() {
    [ -n "$TLS_CERT" ] && return 0
    TLS_CERT=$TMPD/cert.pem
    TLS_KEY=$TMPD/key.pem
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -keyout "$TLS_KEY" -out "$TLS_CERT" -days 2 -subj /CN=localhost \
        -addext 'subjectAltName=IP:127.0.0.1,DNS:localhost' >/dev/null 2>&1 ||
        die "openssl req (making the test certificate) failed"
    chmod 644 "$TLS_KEY"
}

# curl_h2 <server key> [curl args...]: curl at the server's /plaintext the
# way its mode needs (h2c prior knowledge or HTTPS offering h2).
curl_h2() {
    local key=$1
    shift
    case ${key##*.} in
        h2c) curl -s --max-time 5 --http2-prior-knowledge "$@" "http://127.0.0.1:${SRV_PORT[$key]}/plaintext" ;;
        tls) curl -sk --max-time 5 --http2 "$@" "https://127.0.0.1:${SRV_PORT[$key]}/plaintext" ;;
    esac
}

# start_tserver <name>.<h2c|tls>: start it on a free port, wait until
# /plaintext answers 200 (h2c: over HTTP/2; tls: over HTTP/2 or HTTP/1.1,
# ensure_tserver checks which) within 10 s; sets SRV_PID[key] and
# SRV_PORT[key].  Returns 1 (after a note) if it does not come up.
start_tserver() {
    local key=$1 name=${1%%.*} mode=${1##*.} port dir pid i code user_line=
    port=$(free_port) || return 1
    dir=$(mktemp -d "$TMPD/$key.XXXXXX") || return 1
    [ "$(id -u)" = 0 ] && user_line=1
    local -a targs=(--listen "127.0.0.1:$port")
    if [ "$name" = tern ] && [ "$mode" = tls ]; then
        # hello serves HTTPS on --tls-addr beside its cleartext --listen
        # port (which gets a free port of its own and idles).
        local port2 a
        port2=$(free_port) || return 1
        read -r -a targs <<<"$TERN_TLS_ARGS"
        for a in "${!targs[@]}"; do
            targs[a]=${targs[a]//@CERT@/$TLS_CERT}
            targs[a]=${targs[a]//@KEY@/$TLS_KEY}
            targs[a]=${targs[a]//@PORT2@/$port2}
            targs[a]=${targs[a]//@PORT@/$port}
        done
    elif [ "$mode" = tls ]; then
        targs+=(--tls-cert "$TLS_CERT" --tls-key "$TLS_KEY")
    fi
    case $name in
        tern) "$TERN_HELLO" "${targs[@]}" </dev/null >"$dir/out.log" 2>&1 & ;;
        go) "$GOBIN/h2" "${targs[@]}" </dev/null >"$dir/out.log" 2>&1 & ;;
        nginx)
            local lo=http2
            [ "$mode" = tls ] && lo='ssl http2'
            sed -e "s|@PREFIX@|$dir|g" -e "s|@PORT@|$port|g" -e "s|@WORKERS@|$(nproc)|g" \
                -e "s|@USER_LINE@|${user_line:+user root;}|" -e "s|@LISTEN_OPTS@|$lo|" \
                -e "s|@CERT@|$TLS_CERT|" -e "s|@KEY@|$TLS_KEY|" \
                "$ROOT/bench/h2/nginx.conf.in" >"$dir/nginx.conf"
            /usr/sbin/nginx -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf" \
                </dev/null >"$dir/out.log" 2>&1 &
            ;;
        h2o)
            local ssl=
            [ "$mode" = tls ] &&
                ssl="  ssl:\n    certificate-file: $TLS_CERT\n    key-file: $TLS_KEY"
            printf '%s' "$HTTP_BODY" >"$dir/plaintext.txt"
            sed -e "s|@PREFIX@|$dir|g" -e "s|@PORT@|$port|g" -e "s|@WORKERS@|$(nproc)|g" \
                -e "s|@USER_LINE@|${user_line:+user: root}|" -e "s|@SSL@|$ssl|" \
                "$ROOT/bench/h2/h2o.conf.in" >"$dir/h2o.conf"
            /usr/bin/h2o -c "$dir/h2o.conf" </dev/null >"$dir/out.log" 2>&1 &
            ;;
        *) die "start_tserver: unknown server $name" ;;
    esac
    pid=$!
    echo "$pid" >>"$TMPD/http.pids"
    SRV_PID[$key]=$pid
    SRV_PORT[$key]=$port
    for ((i = 0; i < 100; i++)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            wait "$pid" 2>/dev/null
            log "  ! $key exited with status $? during start-up; its output:"
            tail -n 5 "$dir"/*.log >&2
            unset 'SRV_PID[$key]'
            return 1
        fi
        code=$(curl_h2 "$key" -o /dev/null -w '%{http_code} %{http_version}' 2>/dev/null)
        [ "$code" = "200 2" ] && return 0
        [ "$mode" = tls ] && [[ $code == "200 1"* ]] && return 0
        sleep 0.1
    done
    log "  ! $key did not answer 200 on /plaintext within 10 s (last status and HTTP version: '$code')"
    stop_server "$key"
    return 1
}

# ensure_tserver <name>.<mode> [h2]: start and check it unless it runs
# (with "h2": it must answer over HTTP/2, as the h2 suite needs; the tls
# suite takes HTTPS over HTTP/1.1 too); for tern a failure only turns that
# mode's column to NA, for an anchor it is fatal.
ensure_tserver() {
    local key=$1 need=${2:-} got ver
    tern_down "$key" && return 0
    [ -n "${SRV_PID[$key]:-}" ] && return 0
    log "== starting $key"
    if start_tserver "$key"; then
        got=$(curl_h2 "$key")
        ver=$(curl_h2 "$key" -o /dev/null -w '%{http_version}')
        if [ "$need" = h2 ] && [ "$ver" != 2 ]; then
            log "  ! $key: GET /plaintext was answered over HTTP/$ver, not HTTP/2"
        elif [ "$got" = "$HTTP_BODY" ]; then
            log "  $key: pid ${SRV_PID[$key]}, port ${SRV_PORT[$key]}; HTTP/$ver; response headers:" \
                "$(curl_h2 "$key" -o /dev/null -D - | tr -d '\r' | sed 1d | awk 'NF' | paste -sd'|')"
            return 0
        else
            log "  ! $key: GET /plaintext answered '$got'"
        fi
    fi
    stop_server "$key"
    if [ "${key%%.*}" = tern ]; then
        log "warning: $key did not come up right: its column is NA"
        SRV_DOWN[$key]=1
        return 0
    fi
    die "the $key anchor did not come up right (see above)"
}

# h2_run <name>.<mode>: one h2load run; prints req/s (or NA); appends the
# server's CPU ns per request (or NA) to $TMPD/h2.<key>.cpu.
h2_run() {
    local s=$1 dur=$DURATION cpuf=$TMPD/h2.$1.cpu url
    [ "${MEASURE_WARMUP:-0}" = 1 ] && dur=$WARMUP
    local pid=${SRV_PID[$s]:-}
    if tern_down "$s" || [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then
        tern_down "$s" || log "  ! $s is not running"
        echo NA
        echo NA >>"$cpuf"
        return
    fi
    case ${s##*.} in
        h2c) url=http://127.0.0.1:${SRV_PORT[$s]}/plaintext ;;
        tls) url=https://127.0.0.1:${SRV_PORT[$s]}/plaintext ;;
    esac
    local out=$TMPD/h2load.$s.out c0 c1 rc
    c0=$(cpu_ticks "$pid")
    timeout $((dur + 60)) h2load -c"$H2_CONNS" -m"$H2_STREAMS" -t"$H2_THREADS" -D"$dur" "$url" \
        >"$out" 2>&1
    rc=$?
    c1=$(cpu_ticks "$pid")
    local rps ok bad non2xx hdr
    rps=$(awk '/^finished in/ {sub(/,/, "", $4); print $4}' "$out")
    # requests: T total, S started, D done, OK succeeded, F failed, E errored, TO timeout
    ok=$(awk '/^requests:/ {print $8}' "$out")
    bad=$(awk '/^requests:/ {print $10 + $12 + $14}' "$out")
    non2xx=$(awk '/^status codes:/ {print $5 + $7 + $9}' "$out")
    hdr=$(awk '/^traffic:/ { for (i = 1; i <= NF; i++) if ($i == "headers") { h = $(i - 1); gsub(/[()]/, "", h) } }
        /^requests:/ { d = $6 } END { if (d > 0) printf "%.1f", h / d }' "$out")
    if [ $rc -ne 0 ] || ! [[ ${rps:-} =~ ^[0-9.]+$ && ${ok:-} =~ ^[0-9]+$ ]] || [ "$ok" = 0 ]; then
        log "  ! h2load against $s exited with status $rc: $(tail -c 400 "$out" | tr '\n' ' ')"
        echo NA
        echo NA >>"$cpuf"
        return
    fi
    if [ "${bad:-0}" != 0 ] || [ "${non2xx:-0}" != 0 ]; then
        log "  ! $s: $bad requests failed/errored/timed out, $non2xx not 2xx: run counted as NA"
        echo NA
        echo NA >>"$cpuf"
        echo NA >>"$TMPD/grpc.$s.hwm"
        return
    fi
    local cpu_ns
    cpu_ns=$(awk -v d=$((c1 - c0)) -v tck="$(getconf CLK_TCK)" -v n="$ok" \
        'BEGIN { printf "%.0f\n", d / tck * 1e9 / n }')
    echo "$cpu_ns" >>"$cpuf"
    log "    $s: $rps req/s, $ok requests; server CPU $cpu_ns ns/req ($(awk -v d=$((c1 - c0)) \
        -v t="$(getconf CLK_TCK)" -v s="$dur" 'BEGIN { printf "%.0f", d / t / s * 100 }')% of a core);" \
        "${hdr:-?} header bytes/response"
    echo "$rps"
}

# hs_run <name> <full|resumed>: one bench/tls_hs run against <name>.tls;
# prints connections/s (or NA); appends the server's CPU ns per connection
# to $TMPD/hs.<name>.<kind>.cpu.
hs_run() {
    local s=$1.tls kind=$2 dur=$DURATION cpuf=$TMPD/hs.$1.$2.cpu
    [ "${MEASURE_WARMUP:-0}" = 1 ] && dur=$WARMUP
    local pid=${SRV_PID[$s]:-}
    if tern_down "$s" || [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then
        tern_down "$s" || log "  ! $s is not running"
        echo NA
        echo NA >>"$cpuf"
        return
    fi
    local out=$TMPD/hs.$s.out err=$TMPD/hs.$s.err c0 c1 rc rate n
    c0=$(cpu_ticks "$pid")
    timeout $((dur + 60)) "$CBIN/tls_hs" 127.0.0.1 "${SRV_PORT[$s]}" "$HS_CONNS" "$dur" "$kind" \
        >"$out" 2>"$err"
    rc=$?
    c1=$(cpu_ticks "$pid")
    rate=$(tr -d '[:space:]' <"$out")
    n=$(sed -n 's/^tls_hs: [a-z]*: \([0-9]*\) connections completed.*/\1/p' "$err")
    if [ $rc -ne 0 ] || ! [[ $rate =~ ^[0-9.]+$ && ${n:-} =~ ^[0-9]+$ ]] || [ "$n" = 0 ]; then
        log "  ! tls_hs $kind against $s exited with status $rc: $(tail -c 400 "$err" | tr '\n' ' ')"
        echo NA
        echo NA >>"$cpuf"
        return
    fi
    local cpu_ns
    cpu_ns=$(awk -v d=$((c1 - c0)) -v tck="$(getconf CLK_TCK)" -v n="$n" \
        'BEGIN { printf "%.0f\n", d / tck * 1e9 / n }')
    echo "$cpu_ns" >>"$cpuf"
    log "    $s $kind: $rate conn/s, $n connections; server CPU $cpu_ns ns/conn;" \
        "$(grep -m1 'TLS' "$err" | sed 's/^tls_hs: //')"
    echo "$rate"
}

for _s in tern go nginx h2o; do
    eval "h2c_$_s() { h2_run $_s.h2c; }"
    eval "h2tls_$_s() { h2_run $_s.tls; }"
    eval "h2i_$_s() { idle_run $_s.h2c start_tserver \"\$CBIN/h2_idle\" --http2-prior-knowledge; }"
    eval "tw_$_s() { http_run $_s.tls tls; }"
    eval "hsf_$_s() { hs_run $_s full; }"
    eval "hsr_$_s() { hs_run $_s resumed; }"
done
unset _s

# tserver_setup <suite>: what both suites need before their first server.
tserver_setup() {
    DURATION=${DURATION:-5}
    WARMUP=${WARMUP:-2}
    IDLE_CONNS=${IDLE_CONNS:-10000}
    [[ $DURATION =~ ^[1-9][0-9]*$ ]] || die "DURATION must be a positive number of seconds"
    [[ $WARMUP =~ ^[1-9][0-9]*$ ]] || die "WARMUP must be a positive number of seconds"
    [ "$WARMUP" -gt "$DURATION" ] && WARMUP=$DURATION
    local t
    for t in curl python3 openssl; do
        command -v $t >/dev/null || die "$t not found"
    done
    [ -x /usr/sbin/nginx ] || die "/usr/sbin/nginx not found (scripts/deps.sh bench)"
    build_c
    build_go h2
    [ -x "$GOBIN/h2" ] || die "$GOBIN/h2 missing"
    TERN_HELLO=${HELLO_BIN:-$BUILD_DIR/examples/hello}
    if [ -x "$TERN_HELLO" ]; then
        TERN_OK=1
    else
        log "note: $TERN_HELLO does not exist (target hello): the tern column is NA"
        TERN_OK=0
    fi
    tmpdir
    trap 'http_cleanup; rm -rf "$TMPD"' EXIT
    trap 'exit 130' INT TERM
    ulimit -n "$(ulimit -Hn)" 2>/dev/null
    make_cert
    AGO=$(go_name)
    [ -n "$AGO" ] || AGO=go
    ANG=nginx$(/usr/sbin/nginx -v 2>&1 | sed -n 's|.*nginx/\([0-9.]*\).*|\1|p')
    AH2O=h2o$(/usr/bin/h2o --version 2>/dev/null | awk 'NR == 1 {print $3}')
    log "== $1 suite: $ROUNDS rounds, ${DURATION} s per run (${WARMUP} s warm-up), $(nproc) CPUs shared by the load generator and the servers, nothing pinned"
    log "   anchors $AGO, $ANG, $AH2O; tern: $([ "$TERN_OK" = 1 ] && echo "$TERN_HELLO" || echo NA); $(openssl version)"
    noise_note
}

# tgroup <label> <fn prefix> <key suffix> <need> <servers...>: start the
# servers' keys (<server>.<suffix>; need: "h2" or "") and measure the group;
# results in RES[<server>.<prefix>].
tgroup() {
    local label=$1 fp=$2 suf=$3 need=$4 s
    shift 4
    local -a args=()
    for s in "$@"; do
        ensure_tserver "$s.$suf" "$need"
        args+=("$s.$fp" "${fp}_$s")
    done
    measure "$label ($*)" "${args[@]}"
}

suite_h2() {
    check_metrics "$H2_METRICS"
    command -v h2load >/dev/null || die "h2load not found (nghttp2-client)"
    [ -x /usr/bin/h2o ] || die "/usr/bin/h2o not found (scripts/deps.sh bench)"
    tserver_setup h2
    local s
    if want h2_rps || want h2_cpu_ns_per_req; then
        tgroup "h2 h2c" h2c h2c h2 tern h2o go nginx
        for s in tern h2o go nginx; do
            load_side "$s.h2c.cpu" "$TMPD/h2.$s.h2c.cpu"
            stop_server "$s.h2c"
        done
    fi
    if want h2_tls_rps || want h2_tls_cpu_ns_per_req; then
        tgroup "h2 over TLS" h2tls tls h2 tern h2o go nginx
        for s in tern h2o go nginx; do
            load_side "$s.h2tls.cpu" "$TMPD/h2.$s.tls.cpu"
            stop_server "$s.tls"
        done
    fi
    if want h2_idle_conn_rss_bytes; then
        [ -x "$CBIN/h2_idle" ] || die "$CBIN/h2_idle missing (build target tern_bench)"
        [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((IDLE_CONNS + 100)) ] &&
            die "ulimit -n is $(ulimit -n); h2_idle_conn_rss_bytes needs IDLE_CONNS+100"
        # A tern without h2c would cost every run a 10 s start-up wait: try once.
        ensure_tserver tern.h2c h2
        stop_server tern.h2c
        measure "h2_idle_conn_rss ($IDLE_CONNS h2c connections, a fresh server per run)" \
            tern.h2i h2i_tern go.h2i h2i_go
    fi

    local m k
    for m in h2_rps:h2c h2_tls_rps:h2tls; do
        k=${m#*:}
        want "${m%%:*}" || continue
        emit "${m%%:*}" req/s "tern.$k" "h2o.$k" "$AH2O" tp
        emit "${m%%:*}" req/s "tern.$k" "go.$k" "$AGO" tp
        emit "${m%%:*}" req/s "tern.$k" "nginx.$k" "$ANG" tp
    done
    for m in h2_cpu_ns_per_req:h2c h2_tls_cpu_ns_per_req:h2tls; do
        k=${m#*:}
        want "${m%%:*}" || continue
        emit "${m%%:*}" ns/req "tern.$k.cpu" "h2o.$k.cpu" "$AH2O"
        emit "${m%%:*}" ns/req "tern.$k.cpu" "go.$k.cpu" "$AGO"
        emit "${m%%:*}" ns/req "tern.$k.cpu" "nginx.$k.cpu" "$ANG"
    done
    want h2_idle_conn_rss_bytes && emit h2_idle_conn_rss_bytes B/conn tern.h2i go.h2i "$AGO"
    return 0
}

suite_tls() {
    check_metrics "$TLS_METRICS"
    command -v wrk >/dev/null || die "wrk not found"
    tserver_setup tls
    [ -x "$CBIN/tls_hs" ] || die "$CBIN/tls_hs missing (build target tern_bench; needs libssl-dev)"
    local s
    local -a srv=(tern nginx go)
    # The servers run through all three groups.
    if want tls_rps_c64 || want tls_cpu_ns_per_req; then
        tgroup "tls keep-alive wrk -c$TLS_CONNS" tw tls "" "${srv[@]}"
        for s in "${srv[@]}"; do load_side "$s.tw.cpu" "$TMPD/http.$s.tls.tls.cpu"; done
    fi
    if want tls_handshakes_per_s || want tls_handshake_cpu_ns; then
        tgroup "tls full handshakes, $HS_CONNS concurrent" hsf tls "" "${srv[@]}"
        for s in "${srv[@]}"; do load_side "$s.hsf.cpu" "$TMPD/hs.$s.full.cpu"; done
    fi
    if want tls_resumed_handshakes_per_s || want tls_resumed_cpu_ns; then
        tgroup "tls resumed handshakes, $HS_CONNS concurrent" hsr tls "" "${srv[@]}"
        for s in "${srv[@]}"; do load_side "$s.hsr.cpu" "$TMPD/hs.$s.resumed.cpu"; done
    fi
    for s in "${srv[@]}"; do stop_server "$s.tls"; done

    local m k u a
    for m in tls_rps_c64:tw:req/s:tp tls_cpu_ns_per_req:tw.cpu:ns/req: \
        tls_handshakes_per_s:hsf:conn/s:tp tls_handshake_cpu_ns:hsf.cpu:ns/conn: \
        tls_resumed_handshakes_per_s:hsr:conn/s:tp tls_resumed_cpu_ns:hsr.cpu:ns/conn:; do
        IFS=: read -r m k u a <<<"$m"
        want "$m" || continue
        emit "$m" "$u" "tern.$k" "nginx.$k" "$ANG" $a
        emit "$m" "$u" "tern.$k" "go.$k" "$AGO" $a
    done
    return 0
}

# ---- suite: kit ------------------------------------------------------------
# C: bench/kit_bench.c (one program, a subcommand per figure).  Nothing
# outside measures these, so the anchor column holds the goal and the
# anchor name is `goal` (BENCH.md): a ratio at or under 1 meets it.
# Each metric is a self-contained block in suite_kit: a measure, a goal,
# an emit.
#   counter_inc_ns   2 Ps, two coroutines each adding 1 KIT_COUNTER_N=50M
#                    times to the same labelled counter (tern/metrics.h,
#                    tern_metrics_counter_inc on a cached handle); ns per increment
#                    in CPU time of the worker running each loop (the wall
#                    figure, stretched by whatever else runs on the 2
#                    cores, is on stderr).  Goal: 10 ns.
#   log_line_ns      one coroutine (procs=1) logs KIT_LOG_N=500k lines of five
#                    typed fields (tern/log.h, tern_log_info: 2 strings, 2 ints,
#                    1 double) into the log ring, the writer thread draining
#                    to /dev/null; ns per line in CPU time of the logging
#                    worker (wall on stderr, with lines dropped, which must
#                    be 0).  Goal: 200 ns.
#   kit_overhead_rps examples/svc, GET /hello, wrk -t2 -c64 for KIT_DURATION=2 s:
#                    the kit on (request id, tracing sampled at 1% and exported
#                    to a port that refuses, metrics, the access log to a file,
#                    health and debug routes mounted) against the same server
#                    with --kit=false (anchor "all-off"); the ratio is
#                    all-off/all-on req/s.  Goal: 1.11.  2 cores shared with wrk.
#                    KIT_ROUNDS=3*ROUNDS rounds, not ROUNDS: one run's req/s
#                    varies by 10-13% (coefficient of variation of 60 runs of
#                    one server here), so 9 rounds of 5 s put the same binary's
#                    ratio anywhere in 1.02-1.17.  27 rounds of 2 s (about as
#                    long in all) narrow that; the machine's drift between
#                    runs remains (such runs read 1.04-1.16, bench/RESULTS.md).
#                    svc's CPU per request, on and off (BENCH.md: the server's
#                    CPU), goes to stderr.

KIT_COUNTER_N=50000000
KIT_LOG_N=500000

t_counter_inc() { run_one "$CBIN/kit_bench" counter_inc $KIT_COUNTER_N; }
t_log_line() { run_one "$CBIN/kit_log_bench" $KIT_LOG_N; }

# kit_svc <on|off>: start examples/svc with the kit on or off; sets
# KIT_PID[<on|off>] and KIT_PORT[<on|off>].
declare -A KIT_PID KIT_PORT
kit_svc() {
    local mode=$1 port i
    port=$(free_port) || die "no free port"
    local flag=true
    [ "$mode" = off ] && flag=false
    OTEL_TRACES_SAMPLER=parentbased_traceidratio OTEL_TRACES_SAMPLER_ARG=0.01 \
        OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:9 OTEL_SERVICE_NAME=bench \
        "$BUILD_DIR/examples/svc" --listen "127.0.0.1:$port" --admin.listen 127.0.0.1:0 --kit="$flag" \
        </dev/null >"$TMPD/svc.$mode.out" 2>"$TMPD/svc.$mode.log" &
    KIT_PID[$mode]=$!
    KIT_PORT[$mode]=$port
    for ((i = 0; i < 100; i++)); do
        [ "$(curl -s --max-time 1 "http://127.0.0.1:$port/hello")" = "Hello, World!" ] && return 0
        sleep 0.1
    done
    die "examples/svc --kit=$flag did not answer GET /hello"
}

kit_stop() {
    local m
    for m in "${!KIT_PID[@]}"; do
        kill -TERM "${KIT_PID[$m]}" 2>/dev/null
        wait "${KIT_PID[$m]}" 2>/dev/null
    done
}

# kit_cpu <on|off>: svc's CPU time so far (user + system), in clock ticks.
kit_cpu() { awk '{print $14 + $15}' "/proc/${KIT_PID[$1]}/stat" 2>/dev/null || echo 0; }

# kit_rps <on|off>: one wrk run against /hello; req/s.  Outside the
# warm-up, svc's CPU per request (ns) is appended to $TMPD/cpu.<on|off>.
kit_rps() {
    local dur=${KIT_DURATION:-2} out c0 c1
    c0=$(kit_cpu "$1")
    out=$(wrk -t2 -c64 -d"${dur}s" "http://127.0.0.1:${KIT_PORT[$1]}/hello" 2>/dev/null)
    c1=$(kit_cpu "$1")
    [ "${MEASURE_WARMUP:-0}" = 1 ] ||
        awk -v c=$((c1 - c0)) -v hz="$(getconf CLK_TCK)" \
            '/ requests in / && $1 > 0 {printf "%.0f\n", c / hz * 1e9 / $1}' <<<"$out" >>"$TMPD/cpu.$1"
    awk '/^Requests\/sec:/ {print $2; found = 1} END { if (!found) print "NA" }' <<<"$out"
}
t_kit_on() { kit_rps on; }
t_kit_off() { kit_rps off; }

# kit_goal <key> <goal>: the anchor column of a goal metric.
kit_goal() { RES[$1]=" $2"; }

suite_kit() {
    build_c
    log "== kit suite: $ROUNDS rounds, $(nproc) CPUs, anchors are goals"
    noise_note

    # counter_inc_ns: metrics (tern/metrics.h)
    [ -x "$CBIN/kit_bench" ] || die "$CBIN/kit_bench missing (build target tern_bench)"
    measure counter_inc tern.counter_inc t_counter_inc
    kit_goal goal.counter_inc 10
    emit counter_inc_ns ns/op tern.counter_inc goal.counter_inc goal

    # log_line_ns: structured logs (tern/log.h)
    [ -x "$CBIN/kit_log_bench" ] || die "$CBIN/kit_log_bench missing (build target tern_bench)"
    measure log_line tern.log_line t_log_line
    kit_goal goal.log_line 200
    emit log_line_ns ns/line tern.log_line goal.log_line goal

    # kit_overhead_rps: the whole kit on a request path (examples/svc)
    if [ -x "$BUILD_DIR/examples/svc" ] && command -v wrk >/dev/null; then
        tmpdir
        trap 'kit_stop; rm -rf "$TMPD"' EXIT
        kit_svc on
        kit_svc off
        ROUNDS=${KIT_ROUNDS:-$((3 * ROUNDS))} \
            measure kit_overhead tern.kit_on t_kit_on anchor.kit_off t_kit_off
        emit kit_overhead_rps req/s tern.kit_on anchor.kit_off all-off tp
        log "   (goal: all-off/all-on <= 1.11)"
        local -a cpu_on cpu_off
        mapfile -t cpu_on <"$TMPD/cpu.on"
        mapfile -t cpu_off <"$TMPD/cpu.off"
        local on off
        on=$(median "${cpu_on[@]}")
        off=$(median "${cpu_off[@]}")
        log "   svc CPU per request (user + system, median of the rounds): kit on $on ns, off $off ns ($(awk -v a="$on" -v b="$off" 'BEGIN {printf "%.2f", a / b}')x)"
        log "   -> svc CPU ns/request: on [ ${cpu_on[*]} ] off [ ${cpu_off[*]} ]"
        log "   svc --kit true wrote $(wc -l <"$TMPD/svc.on.log") log lines; its /metrics counted $(curl -s "http://127.0.0.1:${KIT_PORT[on]}/metrics" | awk '/^http_server_requests_total\{route="\/hello"/ {s += $2} END {print s + 0}') /hello requests"
        kit_stop
    else
        log "note: $BUILD_DIR/examples/svc or wrk missing: kit_overhead_rps skipped"
    fi

    # More kit metrics go here, each a block as above.
    return 0
}

# ---- suite: data -----------------------------------------------------------
# The data clients against servers started here (the same for both sides);
# anchors from the Go module proxy, pinned in bench/go/<x>/go.mod + go.sum.
#   nats_pub_msgs_per_s  one connection publishes NATS_PUB_N messages of 128
#                        bytes from one coroutine/goroutine to a subject nobody
#                        subscribes, then flushes.  bench/events_nats_bench
#                        vs nats.go (bench/go/nats), one nats-server.
#   nats_sub_msgs_per_s  one connection publishes NATS_SUB_N messages, another
#                        receives them in a callback (queue bounds off:
#                        nothing dropped); first to last message received.
#   redis_get_ops_per_s  256 callers GET one of 1000 keys for DATA_SECS s
#                        (bench/data_redis_get, pool 2, automatic pipelining)
#                        vs go-redis v9 (bench/go/redis, its default pool),
#                        one redis-server on a Unix socket; also
#                        redis_client_cpu_ns_per_op (client process CPU).
#   pg_select_pk_qps     64 callers, pool of 16, `SELECT v FROM bench_kv WHERE
#                        id = $1` over 10,000 rows for DATA_SECS s
#                        (bench/data_pg_bench) vs pgx v5's pgxpool
#                        (bench/go/pg), one PostgreSQL (initdb in a temporary
#                        directory, fsync off) over TCP; also
#                        pg_client_cpu_ns_per_query (client process CPU).
NATS_PUB_N=${NATS_PUB_N:-2000000}
NATS_SUB_N=${NATS_SUB_N:-1000000}
DATA_SECS=${DATA_SECS:-3}

t_nats_pub() { run_one "$CBIN/events_nats_bench" pub "$NATS_ADDR" "$NATS_PUB_N" 128 2>>"$TMPD/tern.err"; }
g_nats_pub() { run_one "$GOBIN/nats" pub "$NATS_ADDR" "$NATS_PUB_N" 128; }
t_nats_sub() { run_one "$CBIN/events_nats_bench" sub "$NATS_ADDR" "$NATS_SUB_N" 128 2>>"$TMPD/tern.err"; }
g_nats_sub() { run_one "$GOBIN/nats" sub "$NATS_ADDR" "$NATS_SUB_N" 128; }
# Two figures on one line for run_two.
redis_line() { "$@" | awk '{printf "%s ", $2} END {print ""}'; }
t_redis() {
    run_two "$TMPD/tern.redis_cpu" bash -c 'redis_line "$@"' _ "$CBIN/data_redis_get" "$REDIS_SOCK" 256 "$DATA_SECS" 2
}
g_redis() { run_two "$TMPD/go.redis_cpu" bash -c 'redis_line "$@"' _ "$GOBIN/redis" "$REDIS_SOCK" 256 "$DATA_SECS"; }
# data_pg_bench's first two lines (its third, batched inserts, has no anchor here).
pg_line() { "$@" | head -2 | awk '{printf "%s ", $2} END {print ""}'; }
t_pg() { run_two "$TMPD/tern.pg_cpu" bash -c 'pg_line "$@"' _ "$CBIN/data_pg_bench" "$PG_CONN" "$DATA_SECS" 64 16; }
g_pg() { run_two "$TMPD/go.pg_cpu" bash -c 'pg_line "$@"' _ "$GOBIN/pg" "$PG_CONN" "$DATA_SECS" 64 16; }

# pg_start: initdb and start a server in a temporary directory (as nobody
# when we are root: PostgreSQL refuses to run as root).
pg_start() {
    local bindir
    bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
    [ -x "$bindir/pg_ctl" ] || return 1
    PG_DIR=$(mktemp -d "${TMPDIR:-/tmp}/tern-pgbench.XXXXXX") || return 1
    local -a as=()
    if [ "$(id -u)" = 0 ]; then
        chown nobody "$PG_DIR" || return 1
        as=(runuser -u nobody --)
    fi
    local port
    port=$(free_port)
    "${as[@]}" "$bindir/initdb" -D "$PG_DIR/data" -A trust -U postgres -E UTF8 --locale=C --no-sync \
        >"$PG_DIR/initdb.log" 2>&1 || return 1
    "${as[@]}" "$bindir/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/log" -w -t 60 \
        -o "-k $PG_DIR -p $port -h 127.0.0.1 -c fsync=off -c max_connections=60 -c synchronous_commit=off" \
        start >&2 || return 1
    PG_STOP=("${as[@]}" "$bindir/pg_ctl" -D "$PG_DIR/data" -w -m immediate stop)
    PG_CONN="host=127.0.0.1 port=$port user=postgres dbname=postgres"
}

data_stop() {
    local p
    for p in ${NATS_PID:-} ${REDIS_PID:-}; do
        kill "$p" 2>/dev/null && wait "$p" 2>/dev/null
    done
    NATS_PID= REDIS_PID=
    if [ -n "${PG_DIR:-}" ]; then
        "${PG_STOP[@]}" >/dev/null 2>&1
        rm -rf "$PG_DIR"
        PG_DIR=
    fi
}

mod_version() { # mod_version <bench/go dir> <module>: the version go.mod pins
    awk -v m="$2" '$1 == m {print $2} $1 == "require" && $2 == m {print $3}' "$ROOT/bench/go/$1/go.mod" | head -1
}

suite_data() {
    build_c
    build_go nats
    build_go redis
    build_go pg
    export -f redis_line pg_line
    tmpdir
    trap 'data_stop; rm -rf "$TMPD"' EXIT
    log "== data suite: $ROUNDS rounds, $(nproc) CPUs"
    noise_note
    local nats
    nats=$(command -v nats-server || echo /usr/sbin/nats-server)
    if [ -x "$CBIN/events_nats_bench" ] && [ -x "$nats" ]; then
        local port
        port=$(free_port)
        NATS_ADDR=127.0.0.1:$port
        "$nats" -a 127.0.0.1 -p "$port" >"$TMPD/nats.log" 2>&1 &
        NATS_PID=$!
        local i
        for i in $(seq 100); do
            (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
            sleep 0.05
        done
        local nv
        nv=nats.go$(mod_version nats github.com/nats-io/nats.go | sed "s/^v//")
        log "   nats-server $("$nats" --version | awk '{print $NF}') on $NATS_ADDR, anchor $nv"
        measure nats_pub tern.nats_pub t_nats_pub go.nats_pub g_nats_pub
        emit nats_pub_msgs_per_s msgs/s tern.nats_pub go.nats_pub "$nv" tp
        measure nats_sub tern.nats_sub t_nats_sub go.nats_sub g_nats_sub
        emit nats_sub_msgs_per_s msgs/s tern.nats_sub go.nats_sub "$nv" tp
    else
        log "note: nats-server or $CBIN/events_nats_bench missing: NATS figures skipped"
    fi
    if [ -x "$CBIN/data_redis_get" ] && command -v redis-server >/dev/null; then
        REDIS_SOCK=$TMPD/redis.sock
        redis-server --port 0 --unixsocket "$REDIS_SOCK" --save '' --appendonly no \
            --daemonize no --dir "$TMPD" --loglevel warning >/dev/null 2>&1 &
        REDIS_PID=$!
        local i
        for i in $(seq 100); do [ -S "$REDIS_SOCK" ] && break; sleep 0.05; done
        local rv
        rv=go-redis$(mod_version redis github.com/redis/go-redis/v9 | sed "s/^v//")
        measure redis_get tern.redis t_redis go.redis g_redis
        emit redis_get_ops_per_s ops/s tern.redis go.redis "$rv" tp
        load_side tern.redis_cpu "$TMPD/tern.redis_cpu"
        load_side go.redis_cpu "$TMPD/go.redis_cpu"
        emit redis_client_cpu_ns_per_op ns/op tern.redis_cpu go.redis_cpu "$rv"
    else
        log "note: redis-server or $CBIN/data_redis_get missing: Redis figures skipped"
    fi
    if [ -x "$CBIN/data_pg_bench" ] && pg_start; then
        local pv
        pv=pgx$(mod_version pg github.com/jackc/pgx/v5 | sed "s/^v//")
        measure pg_select tern.pg t_pg go.pg g_pg
        emit pg_select_pk_qps queries/s tern.pg go.pg "$pv" tp
        load_side tern.pg_cpu "$TMPD/tern.pg_cpu"
        load_side go.pg_cpu "$TMPD/go.pg_cpu"
        emit pg_client_cpu_ns_per_query ns/query tern.pg_cpu go.pg_cpu "$pv"
    else
        log "note: $CBIN/data_pg_bench or PostgreSQL's binaries missing (or initdb failed): PostgreSQL figures skipped"
    fi
    data_stop
}

# ---- suite: grpc -----------------------------------------------------------
# Anchors: grpc-go (bench/go/grpc: helloworld.Greeter from the examples
# module, go.mod/go.sum pinned) and gRPC C++ (bench/grpc_cpp: the same
# Greeter on Debian's libgrpc++, its callback API, built here with g++ -O2
# from protoc and grpc_cpp_plugin output; skipped with a note where
# libgrpc++-dev is missing); tern: bench/grpc_greeter (the same Greeter
# on tern_grpc_server).  GRPC_LINK=static (the default) runs both servers
# as single static binaries, the form each ships in: tern's
# grpc_greeter_static (-static) and grpc-go built with CGO_ENABLED=0 (by
# default Go links libc dynamically here for its resolver);
# GRPC_LINK=dynamic runs grpc_greeter and Go's default build.  The link
# moves only the RSS figures: a dynamic grpc_greeter maps libcrypto's
# symbol tables and relocations (~1.2 MB resident) though it never starts
# TLS.  gRPC C++ is always dynamic (Debian ships no libgrpc++.a).  All serve h2c on one port; h2load posts a framed
# HelloRequest{name: "world"} to /helloworld.Greeter/SayHello.  h2load only
# sees :status, so before measuring each server answers one call from
# Python's grpcio (/usr/bin/python3, where installed) that must come back
# "Hello world" with status OK.
#   grpc_unary_rps             h2load -c GRPC_CONNS=16 -m GRPC_STREAMS=64
#                              -t H2_THREADS, DURATION s
#   grpc_unary_cpu_ns_per_rpc  the server's CPU (utime+stime) per RPC in
#                              those runs
#   grpc_server_rss_load_kb    the server's peak RSS (VmHWM) after those runs
# The next ones use the suite's own client, bench/go/grpc's `load` modes
# (grpc-go), the same for every server, and bench.Stream (written by hand
# on both sides on helloworld's messages; the gRPC C++ anchor has no
# streams here, so these two have grpc-go only):
#   grpc_stream_msgs_per_s     bench.Stream/Many, server streaming: one
#                              request, replies "Hello world" until the client
#                              cancels; GRPC_STREAM_N=16 calls on
#                              GRPC_STREAM_CONNS=4 connections read as fast as
#                              they come, DURATION s; replies/s at the client
#   grpc_stream_cpu_ns_per_msg the server's CPU per reply in those runs
#   grpc_bidi_msgs_per_s       bench.Stream/Echo, bidirectional: the same
#                              connections and calls, 32 requests in flight on
#                              each, one reply per request; replies/s
#   grpc_bidi_cpu_ns_per_msg   the server's CPU per reply in those runs
#   grpc_unary_p99_us_at_rate  SayHello at a fixed GRPC_RATE=5000/s over 16
#                              connections, open loop (latency from each
#                              call's due time), DURATION s; p99 in us
#   grpc_unary_p99_us_at_rate_h2load  the same rate from h2load (C, one
#                              event-loop thread: --rps GRPC_RATE/16 on each of
#                              16 connections, up to 8 calls in flight on
#                              each), DURATION s; p99 of its per-call times
#                              (--log-file: from a call's send to its end).
#                              The Go client above spends most of its p99 in
#                              its own scheduling and timers; this one less
#                              of it, so the servers' difference shows
#   grpc_server_rss_idle_kb    a freshly started server's VmRSS once it has
#                              answered one call (grpcio's check)
#   grpc_idle_rss_bytes_per_conn  that server's VmRSS growth with
#                              GRPC_IDLE_CONNS=500 connections open, each made
#                              ready by one SayHello, then idle for 2 s (tern
#                              trims an idle connection after 1 s); bytes per
#                              connection
GRPC_METRICS="grpc_unary_rps grpc_unary_cpu_ns_per_rpc grpc_server_rss_load_kb grpc_stream_msgs_per_s grpc_stream_cpu_ns_per_msg grpc_bidi_msgs_per_s grpc_bidi_cpu_ns_per_msg grpc_unary_p99_us_at_rate grpc_unary_p99_us_at_rate_h2load grpc_server_rss_idle_kb grpc_idle_rss_bytes_per_conn"
GRPC_CONNS=${GRPC_CONNS:-16}
GRPC_STREAMS=${GRPC_STREAMS:-64}
GRPC_STREAM_CONNS=${GRPC_STREAM_CONNS:-4}
GRPC_STREAM_N=${GRPC_STREAM_N:-16}
GRPC_RATE=${GRPC_RATE:-5000}
GRPC_IDLE_CONNS=${GRPC_IDLE_CONNS:-500}
GRPC_LINK=${GRPC_LINK:-static}

# grpc_check <port>: one real gRPC call through grpcio.
grpc_check() {
    [ -x /usr/bin/python3 ] || return 0
    /usr/bin/python3 - "$1" <<'PY' >&2
import sys
try:
    import grpc
except ImportError:
    sys.exit(0)
ch = grpc.insecure_channel("127.0.0.1:" + sys.argv[1])
call = ch.unary_unary("/helloworld.Greeter/SayHello")
resp = call(b"\x0a\x05world", timeout=5)
assert resp == b"\x0a\x0bHello world", resp
print("  grpcio SayHello: OK, 'Hello world'")
PY
}

# grpc_start <name>: start tern's or grpc-go's Greeter on a free port.
grpc_start() {
    local name=$1 port i
    port=$(free_port) || return 1
    case $name in
        tern) "$GRPC_TERN_BIN" --listen "127.0.0.1:$port" </dev/null >"$TMPD/grpc.$name.log" 2>&1 & ;;
        go) "$GRPC_GO_BIN" "127.0.0.1:$port" </dev/null >"$TMPD/grpc.$name.log" 2>&1 & ;;
        cpp) "$CPPBIN/greeter_server" "127.0.0.1:$port" </dev/null >"$TMPD/grpc.$name.log" 2>&1 & ;;
    esac
    SRV_PID[$name.grpc]=$!
    SRV_PORT[$name.grpc]=$port
    echo "$!" >>"$TMPD/http.pids"
    for ((i = 0; i < 100; i++)); do
        python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 0.2)" 2>/dev/null && break
        sleep 0.1
    done
    grpc_check "$port" || die "$name's Greeter did not answer a gRPC call right"
}

# grpc_run <name>: one h2load run; prints RPC/s (or NA); appends the
# server's CPU ns per RPC to $TMPD/grpc.<name>.cpu.
grpc_run() {
    local s=$1 dur=$DURATION cpuf=$TMPD/grpc.$1.cpu
    [ "${MEASURE_WARMUP:-0}" = 1 ] && dur=$WARMUP
    local pid=${SRV_PID[$s.grpc]} out=$TMPD/h2load.$s.grpc.out c0 c1 rc rps ok bad
    c0=$(cpu_ticks "$pid")
    timeout $((dur + 60)) h2load -c"$GRPC_CONNS" -m"$GRPC_STREAMS" -t"$H2_THREADS" -D"$dur" \
        -d "$TMPD/hello.bin" -H 'content-type: application/grpc' -H 'te: trailers' \
        "http://127.0.0.1:${SRV_PORT[$s.grpc]}/helloworld.Greeter/SayHello" >"$out" 2>&1
    rc=$?
    c1=$(cpu_ticks "$pid")
    rps=$(awk '/^finished in/ {sub(/,/, "", $4); print $4}' "$out")
    ok=$(awk '/^requests:/ {print $8}' "$out")
    bad=$(awk '/^requests:/ {b += $10 + $12 + $14} /^status codes:/ {b += $5 + $7 + $9} END {print b + 0}' "$out")
    if [ $rc -ne 0 ] || ! [[ ${rps:-} =~ ^[0-9.]+$ && ${ok:-} =~ ^[0-9]+$ ]] || [ "$ok" = 0 ] || [ "${bad:-0}" != 0 ]; then
        log "  ! h2load against $s: status $rc, $bad failed or not 2xx: $(tail -c 300 "$out" | tr '\n' ' ')"
        echo NA
        echo NA >>"$cpuf"
        echo NA >>"$TMPD/grpc.$s.hwm"
        return
    fi
    local cpu_ns
    cpu_ns=$(awk -v d=$((c1 - c0)) -v tck="$(getconf CLK_TCK)" -v n="$ok" 'BEGIN { printf "%.0f\n", d / tck * 1e9 / n }')
    echo "$cpu_ns" >>"$cpuf"
    awk '/^VmHWM:/ {print $2}' "/proc/$pid/status" >>"$TMPD/grpc.$s.hwm"
    log "    $s: $rps RPC/s, $ok RPCs; server CPU $cpu_ns ns/RPC"
    echo "$rps"
}

# grpc_stream_run stream|bidi <name>: one streaming run of the load
# client; prints replies/s (or NA); appends the server's CPU ns per reply
# to $TMPD/grpc_<mode>.<name>.cpu.
grpc_stream_run() {
    local mode=$1
    shift
    local s=$1 dur=$DURATION cpuf=$TMPD/grpc_$mode.$1.cpu
    [ "${MEASURE_WARMUP:-0}" = 1 ] && dur=$WARMUP
    local pid=${SRV_PID[$s.grpc]} out c0 c1 rc rate n
    c0=$(cpu_ticks "$pid")
    out=$(timeout $((dur + 60)) "$GOBIN/grpc" load "$mode" "127.0.0.1:${SRV_PORT[$s.grpc]}" \
        "$GRPC_STREAM_CONNS" "$GRPC_STREAM_N" "$dur" 2>"$TMPD/grpc_$mode.$s.err")
    rc=$?
    c1=$(cpu_ticks "$pid")
    read -r rate n <<<"$out"
    if [ $rc -ne 0 ] || ! [[ ${rate:-} =~ ^[0-9]+$ && ${n:-} =~ ^[0-9]+$ ]] || [ "$n" = 0 ]; then
        log "  ! $mode load against $s: status $rc: $(tail -c 300 "$TMPD/grpc_$mode.$s.err" | tr '\n' ' ')"
        echo NA
        echo NA >>"$cpuf"
        return
    fi
    local cpu_ns
    cpu_ns=$(awk -v d=$((c1 - c0)) -v tck="$(getconf CLK_TCK)" -v n="$n" 'BEGIN { printf "%.0f\n", d / tck * 1e9 / n }')
    echo "$cpu_ns" >>"$cpuf"
    log "    $s ($mode): $rate replies/s, $n replies; server CPU $cpu_ns ns/reply"
    echo "$rate"
}

# grpc_rate_run <name>: one fixed-rate unary run; prints the p99 in us (or NA).
grpc_rate_run() {
    local s=$1 dur=$DURATION out rc p50 p99 n
    [ "${MEASURE_WARMUP:-0}" = 1 ] && dur=$WARMUP
    out=$(timeout $((dur + 60)) "$GOBIN/grpc" load rate "127.0.0.1:${SRV_PORT[$s.grpc]}" \
        16 "$GRPC_RATE" "$dur" 2>"$TMPD/grpc_rate.$s.err")
    rc=$?
    read -r p50 p99 n <<<"$out"
    if [ $rc -ne 0 ] || ! [[ ${p99:-} =~ ^[0-9]+$ ]]; then
        log "  ! fixed-rate load against $s: status $rc: $(tail -c 300 "$TMPD/grpc_rate.$s.err" | tr '\n' ' ')"
        echo NA
        return
    fi
    log "    $s: $n calls at $GRPC_RATE/s: p50 $p50 us, p99 $p99 us"
    echo "$p99"
}

# grpc_rate_h2load_run <name>: the fixed rate from h2load; prints the p99
# in us (or NA).  h2load counts only :status, so a call that failed with a
# grpc-status would pass: the rate is far below what either server answers
# correctly (grpc_check and the unary runs check that).
grpc_rate_h2load_run() {
    local s=$1 dur=$DURATION out=$TMPD/h2rate.$1.out logf=$TMPD/h2rate.$1.log rc ok bad
    [ "${MEASURE_WARMUP:-0}" = 1 ] && dur=$WARMUP
    rm -f "$logf"
    timeout $((dur + 60)) h2load -c16 -m8 -t1 --rps=$(((GRPC_RATE + 15) / 16)) -D"$dur" --log-file="$logf" \
        -d "$TMPD/hello.bin" -H 'content-type: application/grpc' -H 'te: trailers' \
        "http://127.0.0.1:${SRV_PORT[$s.grpc]}/helloworld.Greeter/SayHello" >"$out" 2>&1
    rc=$?
    ok=$(awk '/^requests:/ {print $8}' "$out")
    bad=$(awk '/^requests:/ {b += $10 + $12 + $14} /^status codes:/ {b += $5 + $7 + $9} END {print b + 0}' "$out")
    if [ $rc -ne 0 ] || ! [[ ${ok:-} =~ ^[0-9]+$ ]] || [ "$ok" = 0 ] || [ "${bad:-0}" != 0 ] || [ ! -s "$logf" ]; then
        log "  ! h2load at $GRPC_RATE/s against $s: status $rc, $bad failed or not 2xx: $(tail -c 300 "$out" | tr '\n' ' ')"
        echo NA
        return
    fi
    local p50 p99 n
    read -r p50 p99 n < <(sort -n -k3,3 "$logf" | awk '{t[NR] = $3} END {
        i50 = int(NR * 0.50); i99 = int(NR * 0.99); if (i50 < 1) i50 = 1; if (i99 < 1) i99 = 1
        print t[i50], t[i99], NR }')
    log "    $s: $n calls at $GRPC_RATE/s (h2load): p50 $p50 us, p99 $p99 us"
    echo "$p99"
}

# grpc_idle_run <name>: start a fresh server, hold GRPC_IDLE_CONNS ready
# connections to it, print its VmRSS growth per connection, stop it.
grpc_idle_run() {
    local s=$1 pid r0 r1 cpid i fifo=$TMPD/grpc_idle.in out=$TMPD/grpc_idle.$1.out
    grpc_start "$s" >&2
    pid=${SRV_PID[$s.grpc]}
    sleep 0.5
    r0=$(vmrss_kb "$pid")
    echo "$r0" >>"$TMPD/grpc_idle.$s.rss0"
    rm -f "$fifo"
    mkfifo "$fifo"
    timeout 120 "$GOBIN/grpc" load idle "127.0.0.1:${SRV_PORT[$s.grpc]}" "$GRPC_IDLE_CONNS" <"$fifo" >"$out" 2>&1 &
    cpid=$!
    exec 9>"$fifo"
    for ((i = 0; i < 600; i++)); do
        grep -q '^ready' "$out" 2>/dev/null && break
        kill -0 "$cpid" 2>/dev/null || break
        sleep 0.1
    done
    if ! grep -q '^ready' "$out"; then
        log "  ! idle connections to $s: $(tail -c 300 "$out" | tr '\n' ' ')"
        exec 9>&-
        wait "$cpid" 2>/dev/null
        stop_server "$s.grpc"
        echo NA
        return
    fi
    sleep 2
    r1=$(vmrss_kb "$pid")
    exec 9>&-
    wait "$cpid" 2>/dev/null
    stop_server "$s.grpc"
    log "    $s: VmRSS $r0 kB -> $r1 kB with $GRPC_IDLE_CONNS idle connections"
    awk -v a="$r0" -v b="$r1" -v n="$GRPC_IDLE_CONNS" 'BEGIN { printf "%.0f\n", (b - a) * 1024 / n }'
}

# build_grpc_cpp: bench/grpc_cpp/greeter_server into $CPPBIN (0), or 1
# with a note when Debian's libgrpc++-dev, protoc or grpc_cpp_plugin is
# missing.
build_grpc_cpp() {
    CPPBIN=$BUILD_DIR/bench/grpc_cpp
    local proto=/usr/share/grpc-proto/grpc/examples
    if ! pkg-config --exists grpc++ protobuf || ! command -v protoc >/dev/null ||
        ! command -v grpc_cpp_plugin >/dev/null || [ ! -f "$proto/helloworld.proto" ]; then
        log "  (no gRPC C++ anchor: needs libgrpc++-dev, protobuf-compiler-grpc and grpc-proto: scripts/deps.sh bench)"
        return 1
    fi
    [ "${NO_BUILD:-0}" = 1 ] && [ -x "$CPPBIN/greeter_server" ] && return 0
    mkdir -p "$CPPBIN"
    if [ ! -x "$CPPBIN/greeter_server" ] || [ "$ROOT/bench/grpc_cpp/greeter_server.cc" -nt "$CPPBIN/greeter_server" ]; then
        log "== building bench/grpc_cpp with $(g++ --version | head -1), grpc++ $(pkg-config --modversion grpc++)"
        protoc -I"$proto" --cpp_out="$CPPBIN" --grpc_out="$CPPBIN" \
            --plugin=protoc-gen-grpc="$(command -v grpc_cpp_plugin)" helloworld.proto >&2 &&
            # shellcheck disable=SC2046
            g++ -std=c++17 -O2 -DNDEBUG -I"$CPPBIN" -o "$CPPBIN/greeter_server" \
                "$ROOT/bench/grpc_cpp/greeter_server.cc" "$CPPBIN/helloworld.pb.cc" "$CPPBIN/helloworld.grpc.pb.cc" \
                $(pkg-config --cflags --libs grpc++ protobuf) >&2 ||
            die "building bench/grpc_cpp failed"
    fi
    return 0
}

suite_grpc() {
    check_metrics "$GRPC_METRICS"
    command -v h2load >/dev/null || die "h2load not found (nghttp2-client)"
    tmpdir
    trap 'http_cleanup; rm -rf "$TMPD"' EXIT
    build_c
    build_go grpc
    [ -x "$CBIN/grpc_greeter" ] || die "$CBIN/grpc_greeter missing (needs protoc-c and grpc-proto)"
    GRPC_TERN_BIN=$CBIN/grpc_greeter GRPC_GO_BIN=$GOBIN/grpc
    if [ "$GRPC_LINK" = static ]; then
        build_go grpc grpc.static CGO_ENABLED=0
        if [ -x "$CBIN/grpc_greeter_static" ] && [ -x "$GOBIN/grpc.static" ]; then
            GRPC_TERN_BIN=$CBIN/grpc_greeter_static GRPC_GO_BIN=$GOBIN/grpc.static
        else
            log "  (no grpc_greeter_static (a static archive is missing, see cmake's output) or no $GOBIN/grpc.static (NO_BUILD=1 before a static run): GRPC_LINK=dynamic)"
            GRPC_LINK=dynamic
        fi
    fi
    H2_THREADS=${H2_THREADS:-2}
    DURATION=${DURATION:-5}
    WARMUP=${WARMUP:-2}
    printf '\x00\x00\x00\x00\x07\x0a\x05world' >"$TMPD/hello.bin"
    local ago acpp="" cpp=0
    ago=grpc-go$(awk '$1 == "google.golang.org/grpc" {print $2}' "$ROOT/bench/go/grpc/go.mod")
    if build_grpc_cpp; then
        cpp=1
        acpp=grpc-cpp$(pkg-config --modversion grpc++)
    fi
    log "== grpc suite: $ROUNDS rounds, ${DURATION} s per run, h2load -c$GRPC_CONNS -m$GRPC_STREAMS; anchors $ago ($(go_name))${acpp:+, $acpp}; servers linked $GRPC_LINK"
    noise_note
    grpc_start tern
    grpc_start go
    local -a sides=(tern.grpc "grpc_run tern" go.grpc "grpc_run go")
    if [ $cpp = 1 ]; then
        grpc_start cpp
        sides+=(cpp.grpc "grpc_run cpp")
    fi
    if want grpc_unary_rps || want grpc_unary_cpu_ns_per_rpc || want grpc_server_rss_load_kb; then
        measure "grpc unary (h2load -c$GRPC_CONNS -m$GRPC_STREAMS)" "${sides[@]}"
        for s in tern go cpp; do
            load_side $s.grpc.cpu "$TMPD/grpc.$s.cpu"
            load_side $s.grpc.hwm "$TMPD/grpc.$s.hwm"
        done
    fi
    local mode s
    for mode in stream bidi; do
        if want grpc_${mode}_msgs_per_s || want grpc_${mode}_cpu_ns_per_msg; then
            measure "grpc $mode ($GRPC_STREAM_N calls on $GRPC_STREAM_CONNS connections)" \
                tern.$mode "grpc_stream_run $mode tern" go.$mode "grpc_stream_run $mode go"
            load_side tern.$mode.cpu "$TMPD/grpc_$mode.tern.cpu"
            load_side go.$mode.cpu "$TMPD/grpc_$mode.go.cpu"
        fi
    done
    if want grpc_unary_p99_us_at_rate; then
        local -a rsides=(tern.rate "grpc_rate_run tern" go.rate "grpc_rate_run go")
        [ $cpp = 1 ] && rsides+=(cpp.rate "grpc_rate_run cpp")
        measure "grpc unary at $GRPC_RATE/s (p99)" "${rsides[@]}"
    fi
    if want grpc_unary_p99_us_at_rate_h2load; then
        local -a hsides=(tern.h2rate "grpc_rate_h2load_run tern" go.h2rate "grpc_rate_h2load_run go")
        [ $cpp = 1 ] && hsides+=(cpp.h2rate "grpc_rate_h2load_run cpp")
        measure "grpc unary at $GRPC_RATE/s from h2load (p99)" "${hsides[@]}"
    fi
    stop_server tern.grpc
    stop_server go.grpc
    stop_server cpp.grpc
    if want grpc_idle_rss_bytes_per_conn || want grpc_server_rss_idle_kb; then
        local -a isides=(tern.idle "grpc_idle_run tern" go.idle "grpc_idle_run go")
        [ $cpp = 1 ] && isides+=(cpp.idle "grpc_idle_run cpp")
        measure "grpc idle connections ($GRPC_IDLE_CONNS, fresh server each run)" "${isides[@]}"
        for s in tern go cpp; do
            load_side $s.idle.rss0 "$TMPD/grpc_idle.$s.rss0"
        done
    fi
    local -a anchors=(go "$ago")
    [ $cpp = 1 ] && anchors+=(cpp "$acpp")
    local i a an
    for ((i = 0; i < ${#anchors[@]}; i += 2)); do
        a=${anchors[$i]}
        an=${anchors[$((i + 1))]}
        want grpc_unary_rps && emit grpc_unary_rps RPC/s tern.grpc $a.grpc "$an" tp
        want grpc_unary_cpu_ns_per_rpc && emit grpc_unary_cpu_ns_per_rpc ns/RPC tern.grpc.cpu $a.grpc.cpu "$an"
        want grpc_server_rss_load_kb && emit grpc_server_rss_load_kb kB tern.grpc.hwm $a.grpc.hwm "$an"
        if [ $a = go ]; then
            for mode in stream bidi; do
                want grpc_${mode}_msgs_per_s && emit grpc_${mode}_msgs_per_s msgs/s tern.$mode go.$mode "$an" tp
                want grpc_${mode}_cpu_ns_per_msg && emit grpc_${mode}_cpu_ns_per_msg ns/msg tern.$mode.cpu go.$mode.cpu "$an"
            done
        fi
        want grpc_unary_p99_us_at_rate && emit grpc_unary_p99_us_at_rate us tern.rate $a.rate "$an"
        want grpc_unary_p99_us_at_rate_h2load && emit grpc_unary_p99_us_at_rate_h2load us tern.h2rate $a.h2rate "$an"
        want grpc_server_rss_idle_kb && emit grpc_server_rss_idle_kb kB tern.idle.rss0 $a.idle.rss0 "$an"
        want grpc_idle_rss_bytes_per_conn && emit grpc_idle_rss_bytes_per_conn B/conn tern.idle $a.idle "$an"
    done
    return 0
}

# ---- suite: gateway --------------------------------------------------------
# One upstream, examples/hello (BUILD_DIR/examples/hello, started as in the
# http suite), and in front of it, each on its own port:
#   tern     cmd/tern-gateway --kit=false with bench/gateway/bare.yaml.in:
#            one prefix route to the upstream, nothing else
#   tern.full the same gateway with the kit on (access log to a file,
#            metrics, tracing sampled at 1% to a port that refuses) and
#            bench/gateway/full.yaml.in: an HS256 JWT verified on every
#            request and a per-subject rate limit (set high enough never to
#            refuse)
#   nginx    bench/gateway/nginx.conf.in: proxy_pass to a keep-alive
#            upstream pool (keepalive 256, HTTP/1.1), workers = CPUs
#   go       bench/go/revproxy: net/http/httputil.ReverseProxy with an idle
#            pool of 1024 per host
# Per round (after one warm-up run each): direct (wrk straight to the
# upstream), tern, tern.full, nginx, go; wrk -t2 -c64 -d DURATION=5 GET
# /plaintext (13 bytes).  wrk, the proxy and the upstream share the 2 CPUs.
#   proxy_rps_c64            req/s through the proxy (nginx, go)
#   proxy_cpu_ns_per_req     the proxy's CPU (its processes only, /proc) per
#                            request (nginx, go)
#   proxy_added_p99_us       the run's wrk p99 minus the p99 of the direct run
#                            just before it, us (nginx, go)
#   gateway_full_rps_ratio   median req/s of tern.full / median of tern (goal
#                            0.9; the ratio column is goal/figure: <= 1 meets it)
GW_METRICS="proxy_rps_c64 proxy_cpu_ns_per_req proxy_added_p99_us gateway_full_rps_ratio"
GW_JWT_SECRET=bench-secret-0123456789abcdef0123456789
# The upstream's (examples/hello's) port, set by suite_gateway.
GW_UP_PORT=

b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }

# gw_token: an HS256 JWT for subject "bench", valid for a day.
gw_token() {
    local h p exp sig
    exp=$(($(date +%s) + 86400))
    h=$(printf '{"alg":"HS256","typ":"JWT"}' | b64url)
    p=$(printf '{"sub":"bench","iss":"bench","aud":"bench","exp":%s}' "$exp" | b64url)
    sig=$(printf '%s.%s' "$h" "$p" | openssl dgst -sha256 -hmac "$GW_JWT_SECRET" -binary | b64url)
    printf '%s.%s.%s' "$h" "$p" "$sig"
}

# gw_start <name>: start a proxy in front of the upstream (port GW_UP_PORT);
# checks that /plaintext answers the upstream's body through it.  Its pid
# and port go under the key <name>.gw: under <name> the bare gateway
# ("tern") would overwrite the upstream's entry (examples/hello, started
# as "tern"), and every proxy started after it, and the direct runs, would
# then go through the bare gateway instead of straight to the upstream.
gw_start() {
    local name=$1 port dir pid i got user_line= up=$GW_UP_PORT
    port=$(free_port) || die "no free port"
    dir=$(mktemp -d "$TMPD/gw.$name.XXXXXX") || die "mktemp failed"
    [ "$(id -u)" = 0 ] && user_line=1
    local -a hdr=()
    case $name in
        tern | tern.full)
            local cfg=bare kit=false
            [ "$name" = tern.full ] && cfg=full kit=true
            sed -e "s|@UPSTREAM@|$up|g" "$ROOT/bench/gateway/$cfg.yaml.in" >"$dir/gateway.yaml"
            BENCH_JWT_SECRET=$GW_JWT_SECRET OTEL_TRACES_SAMPLER=parentbased_traceidratio \
                OTEL_TRACES_SAMPLER_ARG=0.01 OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:9 \
                OTEL_SERVICE_NAME=bench \
                "$TGW_BIN" --config "$dir/gateway.yaml" --listen "127.0.0.1:$port" --kit="$kit" \
                </dev/null >"$dir/access.log" 2>"$dir/out.log" &
            [ "$name" = tern.full ] && hdr=(-H "Authorization: Bearer $GW_TOKEN")
            ;;
        nginx)
            sed -e "s|@PREFIX@|$dir|g" -e "s|@PORT@|$port|g" -e "s|@UPSTREAM@|$up|g" \
                -e "s|@WORKERS@|$(nproc)|g" -e "s|@USER_LINE@|${user_line:+user root;}|" \
                "$ROOT/bench/gateway/nginx.conf.in" >"$dir/nginx.conf"
            /usr/sbin/nginx -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf" </dev/null >"$dir/out.log" 2>&1 &
            ;;
        go) "$GOBIN/revproxy" --listen "127.0.0.1:$port" --upstream "127.0.0.1:$up" </dev/null >"$dir/out.log" 2>&1 & ;;
    esac
    pid=$!
    echo "$pid" >>"$TMPD/http.pids"
    SRV_PID[$name.gw]=$pid
    SRV_PORT[$name.gw]=$port
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        got=$(curl -s --max-time 1 "${hdr[@]}" "http://127.0.0.1:$port/plaintext" 2>/dev/null)
        [ "$got" = "$HTTP_BODY" ] && { log "  $name: pid $pid, port $port"; return 0; }
        sleep 0.1
    done
    log "  ! $name did not proxy /plaintext within 10 s (got '${got:-}'); its output:"
    tail -n 5 "$dir"/*.log >&2
    [ "${name%%.*}" = tern ] || die "the $name anchor did not come up"
    stop_server "$name.gw"
    return 1
}

# gw_run <name>: one wrk run through a proxy (or "direct"); prints req/s or
# NA; appends CPU ns/request and the added p99 to side files.
gw_run() {
    local s=$1 dur=$DURATION port pid out=$TMPD/wrk.gw.$1.out c0=0 c1=0 rc
    [ "${MEASURE_WARMUP:-0}" = 1 ] && dur=$WARMUP
    local -a hdr=()
    [ "$s" = tern.full ] && hdr=(-H "Authorization: Bearer $GW_TOKEN")
    if [ "$s" = direct ]; then
        port=$GW_UP_PORT
        pid=
    else
        port=${SRV_PORT[$s.gw]:-}
        pid=${SRV_PID[$s.gw]:-}
        if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then
            echo NA >>"$TMPD/gw.$s.cpu"
            echo NA >>"$TMPD/gw.$s.added"
            echo NA
            return
        fi
        c0=$(cpu_ticks "$pid")
    fi
    timeout $((dur + 60)) wrk -t2 -c64 -d"${dur}s" --latency "${hdr[@]}" \
        "http://127.0.0.1:$port/plaintext" >"$out" 2>&1
    rc=$?
    [ -n "$pid" ] && c1=$(cpu_ticks "$pid")
    local rps reqs non2xx p99
    rps=$(awk '/^Requests\/sec:/ {print $2}' "$out")
    reqs=$(awk '/ requests in / {print $1}' "$out")
    non2xx=$(awk '/Non-2xx or 3xx responses:/ {print $NF}' "$out")
    p99=$(lat_us "$(awk '$1 == "99%" {print $2}' "$out")")
    if [ $rc -ne 0 ] || ! [[ ${rps:-} =~ ^[0-9.]+$ && ${reqs:-} =~ ^[1-9][0-9]*$ ]] ||
        { [ -n "$non2xx" ] && [ "$non2xx" != 0 ]; }; then
        log "  ! wrk through $s: status $rc, ${non2xx:-0} not 2xx: $(tail -c 300 "$out" | tr '\n' ' ')"
        [ "$s" = direct ] && echo NA >"$TMPD/gw.direct.p99"
        [ "$s" = direct ] || { echo NA >>"$TMPD/gw.$s.cpu"; echo NA >>"$TMPD/gw.$s.added"; }
        echo NA
        return
    fi
    if [ "$s" = direct ]; then
        echo "$p99" >"$TMPD/gw.direct.p99"
        log "    direct: $rps req/s, p99 $p99 us"
    else
        local cpu_ns added
        cpu_ns=$(awk -v d=$((c1 - c0)) -v tck="$(getconf CLK_TCK)" -v n="$reqs" 'BEGIN { printf "%.0f\n", d / tck * 1e9 / n }')
        added=$(awk -v p="$p99" -v d="$(cat "$TMPD/gw.direct.p99" 2>/dev/null)" \
            'BEGIN { if (p == "NA" || d == "" || d == "NA") print "NA"; else printf "%.1f\n", p - d }')
        echo "$cpu_ns" >>"$TMPD/gw.$s.cpu"
        echo "$added" >>"$TMPD/gw.$s.added"
        log "    $s: $rps req/s, p99 $p99 us (+$added over direct), proxy CPU $cpu_ns ns/req"
    fi
    echo "$rps"
}

suite_gateway() {
    check_metrics "$GW_METRICS"
    command -v wrk >/dev/null || die "wrk not found"
    command -v curl >/dev/null || die "curl not found"
    DURATION=${DURATION:-5}
    WARMUP=${WARMUP:-2}
    tmpdir
    trap 'http_cleanup; rm -rf "$TMPD"' EXIT
    trap 'exit 130' INT TERM
    build_c
    if [ "${NO_BUILD:-0}" != 1 ]; then
        log "== building cmd/tern-gateway (target tern-gateway)"
        cmake --build "$BUILD_DIR" --target tern-gateway -j "$(nproc)" >&2 || die "building tern-gateway failed"
    fi
    build_go revproxy
    TGW_BIN=$BUILD_DIR/cmd/tern-gateway/tern-gateway
    TERN_HELLO=$BUILD_DIR/examples/hello
    [ -x "$TGW_BIN" ] || die "$TGW_BIN missing"
    [ -x "$TERN_HELLO" ] || die "$TERN_HELLO missing (the upstream)"
    TERN_OK=1
    GW_TOKEN=$(gw_token)
    ulimit -n "$(ulimit -Hn)" 2>/dev/null
    local ago ang
    ago=$(go_name)
    ang=nginx$(/usr/sbin/nginx -v 2>&1 | sed -n 's|.*nginx/\([0-9.]*\).*|\1|p')
    log "== gateway suite: $ROUNDS rounds, wrk -t2 -c64, ${DURATION} s per run; upstream examples/hello; anchors $ang, $ago (httputil.ReverseProxy)"
    noise_note
    ensure_server tern
    [ "$TERN_OK" = 1 ] || die "the upstream (examples/hello) did not come up"
    GW_UP_PORT=${SRV_PORT[tern]}
    gw_start tern
    gw_start tern.full
    gw_start nginx
    gw_start go
    measure "gateway (wrk -c64 /plaintext through each proxy)" \
        direct "gw_run direct" tern.gw "gw_run tern" tern.full "gw_run tern.full" \
        nginx.gw "gw_run nginx" go.gw "gw_run go"
    local s
    for s in tern tern.full nginx go; do
        load_side "$s.gw.cpu" "$TMPD/gw.$s.cpu"
        load_side "$s.gw.added" "$TMPD/gw.$s.added"
        stop_server "$s.gw"
    done
    stop_server tern
    want proxy_rps_c64 && {
        emit proxy_rps_c64 req/s tern.gw nginx.gw "$ang" tp
        emit proxy_rps_c64 req/s tern.gw go.gw "$ago" tp
    }
    want proxy_cpu_ns_per_req && {
        emit proxy_cpu_ns_per_req ns/req tern.gw.cpu nginx.gw.cpu "$ang"
        emit proxy_cpu_ns_per_req ns/req tern.gw.cpu go.gw.cpu "$ago"
    }
    want proxy_added_p99_us && {
        emit proxy_added_p99_us us tern.gw.added nginx.gw.added "$ang"
        emit proxy_added_p99_us us tern.gw.added go.gw.added "$ago"
    }
    if want gateway_full_rps_ratio; then
        # shellcheck disable=SC2086
        local full bare
        full=$(median ${RES[tern.full]:-})
        bare=$(median ${RES[tern.gw]:-})
        RES[tern.ratio]=" $(awk -v f="$full" -v b="$bare" 'BEGIN { if (f == "NA" || b == "NA" || b == 0) print "NA"; else printf "%.3f\n", f / b }')"
        RES[goal.ratio]=" 0.9"
        emit gateway_full_rps_ratio ratio tern.ratio goal.ratio goal tp
        log "   (tern.full: JWT + rate limit + kit; tern: bare; medians $full / $bare req/s)"
    fi
    return 0
}

# ---- suite: shop -------------------------------------------------------------
# The shop (shop/, issue 20's Measure table).  Nothing outside measures the
# same system, so most anchors are goals (anchor name `goal`, BENCH.md); the
# start-up time has a Go net/http hello (bench/go/http) measured beside it.
#   shop_checkout_orders_per_s  `shop all` on SQLite (fresh data dir, seeded,
#                    payments' defaults: 50 ms, no failures) and shop-load's
#                    mix (browse 60 / product 25 / checkout 10 / login 5,
#                    SHOP_USERS=20 users, one P; a step lasts SHOP_DURATION=5 s
#                    or as long as 100 checkouts take): the total rate starts
#                    at SHOP_RATE0=100 req/s and doubles while a step passes
#                    (checkout p99 <= 50 ms, no errors on any route, the
#                    books balanced), or halves while it fails (down to
#                    SHOP_RATE_MIN=10), then SHOP_BISECT=2 bisections
#                    between the last pass and the first fail;
#                    the figure is the checkouts answered per second at the
#                    highest passing rate (each route's p99 there on stderr).
#                    The gateway's per-user and per-address rate limits are
#                    taken out of its YAML for this run (they would measure
#                    the limiter); scrypt keeps the shop's cost (N=16384).
#                    The goal is "reported": the anchor column is NA.
#   shop_idle_rss_bytes  each role alone (`shop <role>`, on SQLite, its data
#                    made by the warm-up run), VmRSS after ready + 1 s idle;
#                    the largest role.  Goal 5 MiB.  Per role on stderr.
#                    SHOP_ROLE_BIN is the binary started here and for
#                    shop_ready_ms; by default the static one that
#                    shop_binary_bytes measures (what the image ships; it
#                    sheds the shared libraries' pages: ~11 MB a role
#                    dynamic, ~5 static), else BUILD_DIR's shop.
#   shop_ready_ms    exec to /readyz 200 (bench/shop/ready.py, polling every
#                    0.5 ms), the slowest role; goal 20 ms, and the Go hello
#                    (exec to GET /plaintext 200) beside it.
#   shop_binary_bytes  the static stripped binary: SHOP_STATIC_BIN, else
#                    when shop/deploy/build-static.sh exists its
#                    build-static-amd64/shop-amd64 (the script is run when
#                    that is missing, unless NO_BUILD=1); else BUILD_DIR's
#                    shop stripped (a dynamic binary: stderr says which).
#                    Goal 8 MiB.
#   shop_image_bytes `docker image inspect` of SHOP_IMAGE (tern-shop:amd64,
#                    shop/deploy/build-image.sh's tag); NA when it is absent.
#                    Goal 10 MiB.
# A checkout search takes 10-15 s per step at 100 req/s and up (shop start,
# sign-ups with scrypt, the run, settling), longer below: 1-2 minutes per
# round on a quiet machine.

SHOP_ROLES="users catalog inventory orders payments gateway"

shop_build() {
    [ "${NO_BUILD:-0}" = 1 ] && return 0
    if [ ! -f "$BUILD_DIR/CMakeCache.txt" ]; then
        log "== configuring $BUILD_DIR (Release)"
        cmake -S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release >&2 || die "cmake configure failed"
    fi
    log "== building the shop (targets shop, shop-load)"
    cmake --build "$BUILD_DIR" --target shop shop-load -j "$(nproc)" >&2 || die "building the shop failed"
}

# shop_env <dir>: SHOP_ENV, the environment of a shop on free ports with
# its data in <dir>/data and the gateway's YAML (limits removed) in <dir>;
# SHOP_GW its gateway's URL.
shop_env() {
    local dir=$1 i r
    local -a p=()
    for i in 0 1 2 3 4 5; do p+=("$(free_port)"); done
    sed -e "s/127.0.0.1:7001/127.0.0.1:${p[0]}/; s/127.0.0.1:7002/127.0.0.1:${p[1]}/g" \
        -e "s/127.0.0.1:7003/127.0.0.1:${p[2]}/; s/127.0.0.1:7004/127.0.0.1:${p[3]}/" \
        -e "s/127.0.0.1:7005/127.0.0.1:${p[4]}/" -e '/^ *ratelimit:/d' \
        "$ROOT/shop/config/gateway.yaml" >"$dir/gateway.yaml"
    SHOP_ENV=(SHOP_DATA_DIR="$dir/data" SHOP_GATEWAY_CONFIG="$dir/gateway.yaml" SHOP_LOG_LEVEL=warn)
    i=0
    for r in USERS CATALOG INVENTORY ORDERS PAYMENTS GATEWAY; do
        SHOP_ENV+=("SHOP_${r}_ADDR=127.0.0.1:${p[$i]}" "SHOP_${r}_ADMIN=")
        i=$((i + 1))
    done
    SHOP_GW=http://127.0.0.1:${p[5]}
}

# shop_step <rate> <duration s>: `shop all` fresh, shop-load at rate;
# prints "pass|fail checkouts_per_s"; the JSON report in $TMPD/step.json.
shop_step() {
    local rate=$1 dur=$2 dir pid i ok=0
    dir=$(mktemp -d "$TMPD/step.XXXXXX")
    shop_env "$dir"
    env "${SHOP_ENV[@]}" "$SHOP_BIN" all </dev/null >"$dir/shop.log" 2>&1 &
    pid=$!
    for ((i = 0; i < 150; i++)); do
        [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$SHOP_GW/api/products?pageSize=1")" = 200 ] &&
            { ok=1; break; }
        sleep 0.1
    done
    if [ $ok = 1 ]; then
        timeout "$RUN_TIMEOUT" "$SHOP_LOAD" -gateway "$SHOP_GW" -rate "$rate" -duration "${dur}s" \
            -users "${SHOP_USERS:-20}" -settle 30s -quiet -json "$dir/load.json" >"$dir/load.out" 2>&1
        ok=$?
        cp "$dir/load.json" "$TMPD/step.json" 2>/dev/null
    else
        log "  ! shop all did not serve the catalog (log: $(tail -3 "$dir/shop.log" | tr '\n' ' '))"
        ok=2
    fi
    kill -TERM $pid 2>/dev/null
    wait $pid 2>/dev/null
    python3 - "$dir/load.json" "$ok" <<'PY'
import json, sys
try:
    j = json.load(open(sys.argv[1]))
except Exception:
    print("fail NA"); sys.exit()
r = j["routes"]
good = sys.argv[2] == "0" and r["checkout"]["p99_ms"] <= 50 and j["all"]["errors"] == 0
print("pass" if good else "fail", round(r["checkout"]["ok_per_s"], 1))
PY
    rm -rf "$dir"
}

# shop_route_p99s: each route's p99 (ms) of the last step's report.
shop_route_p99s() {
    python3 -c 'import json, sys
j = json.load(open(sys.argv[1]))
print(" ".join("%s %.1f" % (k, v["p99_ms"]) for k, v in j["routes"].items()), "(ms, p99)")' "$1" 2>/dev/null
}

# shop_dur <rate>: seconds of a step at rate: SHOP_DURATION, or longer so
# that it holds at least 100 checkouts (10% of the mix), so that its p99 is
# a p99 and not the slowest of a handful.
shop_dur() {
    local min=$(((1000 + $1 - 1) / $1)) d=${SHOP_DURATION:-5}
    [ "$min" -gt "$d" ] && d=$min
    echo "$d"
}

# shop_try <rate>: one step, logged; sets verdict and v, keeps a passing
# step's report as $TMPD/best.json.
shop_try() {
    read -r verdict v <<<"$(shop_step "$1" "$(shop_dur "$1")")"
    log "    step $1 req/s ($(shop_dur "$1") s): $verdict, $v checkouts/s; $(shop_route_p99s "$TMPD/step.json")"
    [ "$verdict" = pass ] && cp "$TMPD/step.json" "$TMPD/best.json"
}

# t_shop_checkout: one search for the highest passing rate; the checkouts
# per second there.  Up from SHOP_RATE0 by doubling while steps pass (down
# by halving, to SHOP_RATE_MIN, while they fail), then SHOP_BISECT
# bisections.  The warm-up is one short step at the first rate.
t_shop_checkout() {
    local rate=${SHOP_RATE0:-100} max=${SHOP_RATE_MAX:-6400} min=${SHOP_RATE_MIN:-10}
    local good=0 bad=0 best=NA verdict v i mid
    if [ "${MEASURE_WARMUP:-0}" = 1 ]; then
        read -r verdict v <<<"$(shop_step "$rate" 2)"
        log "    warm-up step $rate req/s: $verdict, $v checkouts/s"
        echo "$v"
        return
    fi
    rm -f "$TMPD/best.json"
    shop_try "$rate"
    if [ "$verdict" = pass ]; then
        good=$rate best=$v
        while [ $((rate * 2)) -le "$max" ]; do
            rate=$((rate * 2))
            shop_try "$rate"
            [ "$verdict" = pass ] || { bad=$rate; break; }
            good=$rate best=$v
        done
    else
        bad=$rate
        while [ $((rate / 2)) -ge "$min" ]; do
            rate=$((rate / 2))
            shop_try "$rate"
            [ "$verdict" = pass ] && { good=$rate best=$v; break; }
            bad=$rate
        done
    fi
    for ((i = 0; i < ${SHOP_BISECT:-2} && good > 0 && bad > good + 1; i++)); do
        mid=$(((good + bad) / 2))
        shop_try "$mid"
        if [ "$verdict" = pass ]; then good=$mid best=$v; else bad=$mid; fi
    done
    if [ "$good" -gt 0 ]; then
        echo "$good req/s: $(shop_route_p99s "$TMPD/best.json")" >>"$TMPD/shop.best"
    else
        echo "none (no step passed down to $min req/s)" >>"$TMPD/shop.best"
    fi
    echo "$best"
}

# t_shop_roles: every role alone, ready.py --idle 1: the largest idle RSS
# (stdout), the slowest ready time (to $TMPD/shop.ready), and each role's
# figures to $TMPD/role.<role>.
t_shop_roles() {
    local r out ms rss maxms=NA maxrss=NA dir=$TMPD/roles
    [ -f "$dir/gateway.yaml" ] || die "t_shop_roles: shop_env $dir first"
    for r in $SHOP_ROLES; do
        local up=${r^^} addr=
        local e
        for e in "${SHOP_ENV[@]}"; do
            [[ $e == SHOP_${up}_ADDR=* ]] && addr=${e#*=}
        done
        out=$(env "${SHOP_ENV[@]}" SHOP_DATA_DIR="$dir/data-$r" \
            timeout "$RUN_TIMEOUT" python3 "$ROOT/bench/shop/ready.py" --idle 1 "http://$addr/readyz" -- \
            "$SHOP_ROLE_BIN" "$r" 2>>"$dir/ready.log")
        read -r ms rss <<<"$out"
        [[ ${ms:-} =~ ^[0-9.]+$ && ${rss:-} =~ ^[0-9]+$ ]] || { log "  ! shop $r: no readiness (ready.py: '$out')"; ms=NA rss=NA; }
        [ "${MEASURE_WARMUP:-0}" = 1 ] || echo "$ms $rss" >>"$TMPD/role.$r"
        [ "$ms" != NA ] && { [ "$maxms" = NA ] || awk -v a="$ms" -v b="$maxms" 'BEGIN {exit !(a > b)}'; } && maxms=$ms
        [ "$rss" != NA ] && { [ "$maxrss" = NA ] || [ "$rss" -gt "$maxrss" ]; } && maxrss=$rss
    done
    echo "$maxms" >>"$TMPD/shop.ready"
    echo "$maxrss"
}

t_go_ready() {
    local port out
    port=$(free_port)
    out=$(timeout "$RUN_TIMEOUT" python3 "$ROOT/bench/shop/ready.py" --idle 1 "http://127.0.0.1:$port/plaintext" -- \
        "$GOBIN/http" --listen "127.0.0.1:$port" 2>/dev/null)
    [ "${MEASURE_WARMUP:-0}" = 1 ] || echo "${out#* }" >>"$TMPD/go.rss"
    [[ ${out%% *} =~ ^[0-9.]+$ ]] && echo "${out%% *}" || echo NA
}

# shop_static: the static binary's path on stdout (built when missing,
# unless NO_BUILD=1), or nothing.
shop_static() {
    local bin=${SHOP_STATIC_BIN:-}
    if [ -z "$bin" ] && [ -f "$ROOT/shop/deploy/build-static.sh" ]; then
        if [ -x "$ROOT/build-static-amd64/shop-amd64" ]; then
            bin=$ROOT/build-static-amd64/shop-amd64
        elif [ "${NO_BUILD:-0}" != 1 ]; then
            log "== building the static shop (shop/deploy/build-static.sh amd64; minutes)"
            (cd "$ROOT" && JOBS=$(nproc) shop/deploy/build-static.sh amd64 >&2) && bin=$ROOT/build-static-amd64/shop-amd64
        fi
    fi
    [ -n "$bin" ] && [ -x "$bin" ] && echo "$bin"
    return 0
}

# shop_binary: the size of the shop's binary to measure (stdout); which one on stderr.
shop_binary() {
    local bin=$SHOP_STATIC
    if [ -n "$bin" ]; then
        log "   shop_binary_bytes: $bin (static: $(file -b "$bin" | cut -d, -f1-6))"
        stat -c %s "$bin"
        return
    fi
    strip -o "$TMPD/shop.stripped" "$SHOP_BIN" || { echo NA; return; }
    log "   shop_binary_bytes: $SHOP_BIN stripped: a DYNAMIC binary (shared libssl, libsqlite3, ...)"
    stat -c %s "$TMPD/shop.stripped"
}

suite_shop() {
    command -v curl >/dev/null || die "curl not found"
    tmpdir
    trap 'exit 130' INT TERM
    shop_build
    build_go http
    SHOP_BIN=$BUILD_DIR/shop/shop
    SHOP_LOAD=$BUILD_DIR/shop/load/shop-load
    SHOP_STATIC=$(shop_static)
    SHOP_ROLE_BIN=${SHOP_ROLE_BIN:-${SHOP_STATIC:-$SHOP_BIN}}
    [ -x "$SHOP_BIN" ] || die "$SHOP_BIN missing (build target shop)"
    [ -x "$SHOP_LOAD" ] || die "$SHOP_LOAD missing (build target shop-load)"
    [ -x "$GOBIN/http" ] || die "$GOBIN/http missing"
    grep -q '^CMAKE_BUILD_TYPE:STRING=Release' "$BUILD_DIR/CMakeCache.txt" ||
        log "warning: $BUILD_DIR is not a Release build ($(grep '^CMAKE_BUILD_TYPE' "$BUILD_DIR/CMakeCache.txt")): figures mean little"
    local anchor
    anchor=$(go_name)
    [ -n "$anchor" ] || anchor=go
    log "== shop suite: $ROUNDS rounds, $(nproc) CPUs, anchors are goals (and $anchor for start-up)"
    noise_note

    measure shop_checkout tern.checkout t_shop_checkout
    RES[goal.checkout]=" NA"
    emit shop_checkout_orders_per_s orders/s tern.checkout goal.checkout goal tp
    [ -f "$TMPD/shop.best" ] && log "   highest passing total rate per round, with each route's p99 there:" &&
        while read -r line; do log "     $line"; done <"$TMPD/shop.best"
    # the median above is of the rounds that found a passing rate only
    log "   rounds in which no step passed (NA, left out of the median): $(grep -c '^none' "$TMPD/shop.best" 2>/dev/null)"

    # one environment (ports, data dirs) for every round: the warm-up makes the data
    mkdir -p "$TMPD/roles"
    shop_env "$TMPD/roles"
    log "   roles alone: $SHOP_ROLE_BIN ($(file -b "$SHOP_ROLE_BIN" | grep -o 'statically linked\|dynamically linked'))"
    measure shop_roles tern.rss t_shop_roles go.ready t_go_ready
    load_side tern.ready "$TMPD/shop.ready"
    RES[goal.rss]=" 5242880"
    emit shop_idle_rss_bytes B tern.rss goal.rss goal
    local r
    for r in $SHOP_ROLES; do
        log "   $r: ready ms, idle RSS bytes per round: $(tr '\n' ';' <"$TMPD/role.$r" 2>/dev/null)"
    done
    log "   Go hello idle RSS bytes per round: $(tr '\n' ' ' <"$TMPD/go.rss" 2>/dev/null)"
    RES[goal.ready]=" 20"
    emit shop_ready_ms ms tern.ready goal.ready goal
    emit shop_ready_ms ms tern.ready go.ready "$anchor"

    RES[tern.binary]=" $(shop_binary)"
    RES[goal.binary]=" 8388608"
    emit shop_binary_bytes B tern.binary goal.binary goal
    log "   (beside it: the Go hello, not stripped: $(stat -c %s "$GOBIN/http") B)"

    local image=${SHOP_IMAGE:-tern-shop:amd64} size=NA
    if command -v docker >/dev/null && size=$(docker image inspect -f '{{.Size}}' "$image" 2>/dev/null); then
        log "   shop_image_bytes: $image"
    else
        log "   shop_image_bytes: no image $image (shop/deploy/build-image.sh makes it): NA"
        size=NA
    fi
    RES[tern.image]=" $size"
    RES[goal.image]=" 10485760"
    emit shop_image_bytes B tern.image goal.image goal
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
    http) suite_http ;;
    kit) suite_kit ;;
    h2) suite_h2 ;;
    tls) suite_tls ;;
    data) suite_data ;;
    grpc) suite_grpc ;;
    gateway) suite_gateway ;;
    shop) suite_shop ;;
    all)
        # Suites are added here as they are written (startup).
        suite_runtime
        suite_csp
        suite_http
        suite_kit
        suite_h2
        suite_tls
        suite_data
        suite_grpc
        suite_gateway
        suite_shop
        ;;
    *) usage ;;
esac
log "== done in $(($(date +%s) - start)) s"
