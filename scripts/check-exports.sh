#!/usr/bin/env bash
# check-exports.sh LIBTERN.A [INCLUDE_DIR]
#
# The library exports nothing but its API: every defined global symbol of
# the archive is either public (tern_*, and then declared in a header of
# include/tern/) or internal across files (tern__*).  Anything else would
# land in every user's program and could collide with theirs (an
# `arena_alloc` of their own), and a tern_ name no header declares is an
# internal function wearing the public prefix.  Run by CTest (test
# "exports", label build); exits 1 and lists the offenders.
set -euo pipefail
lib=${1:?usage: check-exports.sh libtern.a [include-dir]}
inc=${2:-$(dirname "$0")/../include}
NM=${NM:-nm}

# defined (not U), global (upper-case type letter) symbols, less those the
# toolchain adds to every object (sanitizer instrumentation, LTO markers)
syms=$("$NM" -g --defined-only "$lib" 2>/dev/null | awk 'NF == 3 && $2 ~ /^[A-Z]$/ { print $3 }' |
       grep -v -E '^_{2,3}(odr_)?(asan|tsan|ubsan|lsan|sancov)|^__gnu_lto_' | sort -u)
[ -n "$syms" ] || { echo "check-exports: no symbols in $lib" >&2; exit 1; }

bad=0
unprefixed=$(grep -v -E '^tern_' <<<"$syms" || true)
if [ -n "$unprefixed" ]; then
  echo "check-exports: global symbols without the tern_ / tern__ prefix (make them static or rename them tern__<module>_<verb>):"
  sed 's/^/  /' <<<"$unprefixed"
  bad=1
fi

# a tern_ (public-prefix) symbol must be declared in a public header
public=$(grep -E '^tern_[^_]' <<<"$syms" || true)
declared=$(cat "$inc"/tern/*.h | grep -oE '\btern_[a-zA-Z0-9_]+' | sort -u)
undeclared=$(comm -23 <(sort -u <<<"$public") <(sort -u <<<"$declared") || true)
if [ -n "$undeclared" ]; then
  echo "check-exports: tern_ symbols no header of $inc/tern declares (internal: rename them tern__...):"
  sed 's/^/  /' <<<"$undeclared"
  bad=1
fi

[ "$bad" = 0 ] && echo "check-exports: $(wc -l <<<"$syms") symbols, all tern_ (public) or tern__ (internal)"
exit "$bad"
