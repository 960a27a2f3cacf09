#!/bin/sh
# kit_metrics_promtool.sh <test_kit_metrics> - lint a real scrape (runtime,
# process and HTTP server and client metrics, taken by the HTTP test of
# test_kit_metrics) with `promtool check metrics`, which checks the text
# format and Prometheus' naming conventions.  Exits 77 (skipped) when
# promtool is not installed (Debian: package prometheus).
command -v promtool >/dev/null 2>&1 || {
    echo "promtool not found (apt-get install prometheus): skipped"
    exit 77
}
[ -x "$1" ] || { echo "usage: $0 <test_kit_metrics binary>"; exit 2; }
out=$(mktemp) || exit 1
trap 'rm -f "$out"' EXIT
TERN_METRICS_SCRAPE=$out "$1" http_middleware_and_client_through_a_real_server || exit 1
[ -s "$out" ] || { echo "the test wrote no scrape"; exit 1; }
promtool check metrics <"$out" || { echo "the scrape:"; cat "$out"; exit 1; }
echo "promtool check metrics: ok ($(grep -c '^[^#]' "$out") samples)"
