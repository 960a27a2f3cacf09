#!/usr/bin/env bash
# check-headers.sh CC CXX VIEWS "LAYERS"
#
# The public headers (include/tern/*.h) as a user meets them:
#  - each compiles alone, in C17 with -Wall -Wextra -Werror, included
#    twice (its guard), seeing only the public headers of its own layer
#    and those below it (VIEWS/<layer>/include, cmake/layers.cmake), so a
#    public header cannot include one of a higher layer either;
#  - none but tern.h (the everything-header) drags in jansson: json_t is
#    declared, and that declaration agrees with jansson's own header (the
#    header then <jansson.h> compiles);
#  - all of them together compile as C++17 (extern "C", no C-only types),
#    with and without <jansson.h> after them.
# CXX may be empty: the C++ part is then skipped (exit 77, CTest's skip).
# Run by CTest (test "public_headers", label build).
set -uo pipefail
CC=${1:?usage: check-headers.sh CC CXX VIEWS LAYERS}
CXX=${2-}
VIEWS=${3:?}
LAYERS=${4:?}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
seen=" "
cflags=(-std=c17 -Wall -Wextra -Werror -fsyntax-only)

for layer in $LAYERS; do
  inc=$VIEWS/$layer/include
  for h in "$inc"/tern/*.h; do
    n=$(basename "$h")
    case "$seen" in *" $n "*) continue ;; esac     # a lower layer's header
    seen="$seen$n "
    {
      printf '#include <tern/%s>\n#include <tern/%s>\n' "$n" "$n"
      [ "$n" = tern.h ] || printf '#ifdef JANSSON_H\n#error "includes jansson.h: declare json_t instead"\n#endif\n'
      printf 'int tern_header_check_%s;\n' "${n%.h}"
    } > "$tmp/alone.c"
    if ! out=$("$CC" "${cflags[@]}" -I "$inc" "$tmp/alone.c" 2>&1); then
      echo "FAIL $n alone (C17, layer $layer's public view):"; echo "$out" | head -20; fail=1
    fi
    printf '#include <tern/%s>\n#include <jansson.h>\n' "$n" > "$tmp/jansson.c"
    if ! out=$("$CC" "${cflags[@]}" -I "$inc" "$tmp/jansson.c" 2>&1); then
      echo "FAIL $n followed by <jansson.h> (C17):"; echo "$out" | head -20; fail=1
    fi
  done
done
echo "C17: $(wc -w <<<"$seen") public headers checked one by one"

top=$VIEWS/${LAYERS##* }/include
if [ -z "$CXX" ]; then
  echo "no C++ compiler: the C++ check is skipped"
  [ "$fail" = 0 ] && exit 77
  exit 1
fi
for h in "$top"/tern/*.h; do printf '#include <tern/%s>\n' "$(basename "$h")"; done > "$tmp/all.cc"
printf 'int main() { return 0; }\n' >> "$tmp/all.cc"
cp "$tmp/all.cc" "$tmp/all_jansson.cc"
printf '#include <jansson.h>\n' >> "$tmp/all_jansson.cc"
for f in all.cc all_jansson.cc; do
  if ! out=$("$CXX" -std=c++17 -Wall -Wextra -Werror -fsyntax-only -I "$top" "$tmp/$f" 2>&1); then
    echo "FAIL every header as C++17 ($f):"; echo "$out" | head -30; fail=1
  fi
done
[ "$fail" = 0 ] && echo "C++17: every header together compiles ($CXX)"
exit "$fail"
