#!/usr/bin/env bash
# install_grpc.sh BUILD_DIR SRC_DIR: tern's gRPC code generation as an
# installed user meets it.  tern is installed into a temporary prefix
# (library, headers, the CMake package with TernGrpc.cmake, the plugin in
# bin/); a project of its own builds examples/greeter's files with
# find_package(tern) and tern_grpc_generate, exactly as the README shows;
# then the greeter session runs (examples/greeter/greeter_check.sh).
# Test grpc_install (label grpc); not for sanitizer, fuzz or cross builds,
# whose libtern.a a plain build cannot link.
set -euo pipefail
build=$1 src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >"$tmp/install.log" || { cat "$tmp/install.log"; exit 1; }
[ -x "$tmp/prefix/bin/protoc-gen-tern-grpc" ] || { echo "FAIL: the plugin was not installed"; exit 1; }
[ -n "$(find "$tmp/prefix" -name TernGrpc.cmake)" ] || { echo "FAIL: TernGrpc.cmake was not installed"; exit 1; }

mkdir "$tmp/app"
cp "$src/examples/greeter/helloworld.proto" "$src/examples/greeter/greeter_server.c" \
   "$src/examples/greeter/greeter_client.c" "$tmp/app/"
cat > "$tmp/app/CMakeLists.txt" <<'CMAKE'
cmake_minimum_required(VERSION 3.18)
project(greeter C)
find_package(tern REQUIRED)
add_library(helloworld_grpc STATIC)
tern_grpc_generate(helloworld_grpc helloworld.proto)
target_link_libraries(helloworld_grpc PUBLIC tern::tern)
add_executable(greeter_server greeter_server.c)
add_executable(greeter_client greeter_client.c)
target_link_libraries(greeter_server PRIVATE helloworld_grpc)
target_link_libraries(greeter_client PRIVATE helloworld_grpc)
CMAKE
# PATH without the build tree: the plugin must come from the package
if ! (cd "$tmp/app" && cmake -S . -B build -DCMAKE_PREFIX_PATH="$tmp/prefix" >"$tmp/cfg.log" 2>&1 &&
      cmake --build build >"$tmp/build.log" 2>&1); then
  cat "$tmp/cfg.log" "$tmp/build.log" 2>/dev/null | tail -40
  echo "FAIL: the installed package does not build the greeter"
  exit 1
fi
grep -q "protoc-gen-tern-grpc" "$tmp/app/build/CMakeCache.txt"
bash "$src/examples/greeter/greeter_check.sh" "$tmp/app/build/greeter_server" "$tmp/app/build/greeter_client"
