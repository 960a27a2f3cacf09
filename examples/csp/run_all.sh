#!/bin/sh
# Run every CSP example built in a build directory ($1, default: build) and
# fail if any of them fails or hangs.
set -u
build=${1:-build}
dir=$build/examples/csp
failed=""
for ex in async_fetch fanout_gather select_default_timeout waitgroup_fanin once_init \
          mutex_counter worker_pool pubsub_bus pipeline_cancel; do
    echo "=== $ex ==="
    if [ ! -x "$dir/$ex" ]; then
        echo "run_all.sh: $dir/$ex not built" >&2
        failed="$failed $ex"
        continue
    fi
    # A deadlocked example must fail the run, not stall it.
    timeout 60 "$dir/$ex"
    rc=$?
    if [ $rc -ne 0 ]; then
        echo "run_all.sh: $ex exited with $rc" >&2
        failed="$failed $ex"
    fi
done
if [ -n "$failed" ]; then
    echo "FAILED:$failed" >&2
    exit 1
fi
echo "all CSP examples passed"
