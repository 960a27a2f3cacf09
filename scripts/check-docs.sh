#!/usr/bin/env bash
# Generate the API reference from include/tern/ with Doxygen and fail if a
# public function has no documentation (a comment right above it, or above
# the run of declarations it belongs to; see scripts/doxy-filter.py).
#   scripts/check-docs.sh [OUT_DIR]     (default: build/docs)
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$src/build/docs}
command -v doxygen >/dev/null || { echo "check-docs: doxygen is not installed (scripts/deps.sh)" >&2; exit 1; }
mkdir -p "$out"
TERN_SRC=$src TERN_DOCS_OUT=$out doxygen "$src/docs/Doxyfile"
missing=$(grep -E "\(function\) of file .* is not documented" "$out/warnings.log" || true)
if [ -n "$missing" ]; then
  echo "check-docs: public functions without documentation:" >&2
  echo "$missing" | sed -E "s|^$src/||; s| warning: Member | |; s| \(function\) of file .*||" >&2
  exit 1
fi
echo "check-docs: every public function documented; reference in $out/html/index.html" >&2
