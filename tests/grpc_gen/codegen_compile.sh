#!/usr/bin/env bash
# codegen_compile.sh PLUGIN PROTOC PROTOC_C GRPC_PROTO_DIR PROTOBUF_DIR INCLUDE_DIR SRC_DIR [CLANG]
#
# protoc-gen-tern-grpc's output compiles cleanly wherever users compile it:
#  - for codegen.proto (dotted package, nested types, all four method kinds,
#    imports), c_package.proto (protoc-c's renaming option) and for grpc-proto's interop, health and reflection files, every
#    .tern-grpc.c (which includes protoc-c's headers) compiles as C17 with -O2 (for the flow warnings) -Wall -Wextra -Wpedantic
#    -Werror under
#    gcc and clang, and every generated header as C++17 (g++);
#  - the plugin's own errors reach protoc and the user: two methods whose C
#    names clash, an option the plugin does not take; run without protoc, it
#    says how to use it.
# Test grpc_codegen_compile (label grpc).
set -euo pipefail
plugin=$1 protoc=$2 protoc_c=$3 grpc_proto=$4 pbinc=$5 include=$6 src=$7 clang=${8:-}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0

gen() {     # gen OUT -I... files...
  local out=$1; shift
  mkdir -p "$out"
  "$protoc_c" --c_out="$out" "$@"
  "$protoc" --plugin=protoc-gen-tern-grpc="$plugin" --tern-grpc_out="$out" "$@"
}
gen "$tmp/a" -I"$src" -I"$pbinc" "$src/codegen.proto" "$pbinc/google/protobuf/descriptor.proto" \
    "$pbinc/google/protobuf/empty.proto"
# protoc-c's c_package option (protobuf-c/protobuf-c.proto beside protoc's own files)
gen "$tmp/c" -I"$src" -I"$pbinc" "$src/c_package.proto"
gen "$tmp/b" -I"$grpc_proto" "$grpc_proto"/grpc/testing/{test,messages,empty}.proto \
    "$grpc_proto/grpc/health/v1/health.proto" "$grpc_proto/grpc/reflection/v1/reflection.proto"

ccs=(gcc)
[ -n "$clang" ] && ccs+=("$clang")
n=0
for dir in "$tmp/a" "$tmp/b" "$tmp/c"; do
  while IFS= read -r c; do
    for cc in "${ccs[@]}"; do
      if ! out=$("$cc" -std=c17 -O2 -Wall -Wextra -Wpedantic -Werror -c -I"$include" -I"$dir" "$c" -o "$tmp/x.o" 2>&1); then
        echo "FAIL $cc ${c#"$tmp"/}:"; echo "$out" | head -20; fail=1
      fi
      n=$((n + 1))
    done
  done < <(find "$dir" -name '*.tern-grpc.c' | sort)
  while IFS= read -r h; do
    if ! out=$(g++ -std=c++17 -Wall -Wextra -Werror -fsyntax-only -I"$include" -I"$dir" -x c++ "$h" 2>&1); then
      echo "FAIL g++ ${h#"$tmp"/}:"; echo "$out" | head -20; fail=1
    fi
    n=$((n + 1))
  done < <(find "$dir" -name '*.tern-grpc.h' | sort)
done
echo "compiled: $n (file, compiler) pairs with ${ccs[*]} and g++"

# errors come back through protoc, which exits 1 naming the file
expect_error() {    # expect_error WHAT PATTERN protoc-args...
  local what=$1 pattern=$2; shift 2
  if out=$("$protoc" --plugin=protoc-gen-tern-grpc="$plugin" "$@" 2>&1); then
    echo "FAIL $what: protoc succeeded"; fail=1
  elif ! grep -q -- "$pattern" <<<"$out"; then
    echo "FAIL $what: protoc said: $out"; fail=1
  else
    echo "ok   $what: $out"
  fi
}
mkdir -p "$tmp/e"
cat > "$tmp/e/members.proto" <<'PROTO'
syntax = "proto3";
package clash;
message M {}
service S { rpc GetThing(M) returns (M); rpc Get_Thing(M) returns (M); }
PROTO
cat > "$tmp/e/globals.proto" <<'PROTO'
syntax = "proto3";
package clash;
message M {}
service S { rpc Watch(M) returns (stream M); rpc WatchOpen(M) returns (M); }
PROTO
expect_error "two methods, one C member" "both named get_thing" --tern-grpc_out="$tmp/e" -I"$tmp/e" "$tmp/e/members.proto"
expect_error "a stub name taken twice" "s_watch_open would be defined twice" --tern-grpc_out="$tmp/e" -I"$tmp/e" "$tmp/e/globals.proto"
expect_error "an unknown option" "takes no options" --tern-grpc_out=foo=1:"$tmp/e" -I"$src" "$src/codegen.proto"

if "$plugin" --help >/dev/null 2>&1; then echo "FAIL: the plugin ran with arguments"; fail=1; fi
if echo "not a request" | "$plugin" >/dev/null 2>&1; then echo "FAIL: the plugin took garbage"; fail=1; fi
exit $fail
