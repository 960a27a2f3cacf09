#!/bin/bash
# allocator_check.sh BINARY tcmalloc|glibc: the binary links the allocator
# its build chose (cmd/tern-gateway/CMakeLists.txt).  readelf, not ldd, so
# that a cross build's binary is checked without running it.
set -euo pipefail
bin=$1 want=$2
needed=$(readelf -d "$bin" | awk '/NEEDED/ {print $NF}' | tr -d '[]')
has=glibc
grep -q '^libtcmalloc_minimal\.so' <<<"$needed" && has=tcmalloc
if [ "$has" != "$want" ]; then
    echo "allocator_check: $bin links $has's malloc, the build chose $want; its libraries:" >&2
    echo "$needed" >&2
    exit 1
fi
echo "allocator_check: $bin uses $want's malloc"
