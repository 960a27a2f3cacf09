#!/usr/bin/env bash
# build-static.sh - the shop as one static, stripped binary, for the
# FROM scratch image and for arm64 through the cross toolchain.
#
#   shop/deploy/build-static.sh [amd64|arm64] [OUT]
#
# Builds in build-static-<arch>/ (BUILD overrides) with SHOP_STATIC
# (shop/CMakeLists.txt, shop/deploy/static.cmake): every dependency from
# its Debian archive (.a), without PostgreSQL (no complete static libpq on
# Debian).  Copies the binary to OUT (default build-static-<arch>/shop-<arch>)
# and prints its path and size.  JOBS (default 2) bounds the build.
set -euo pipefail
cd "$(dirname "$0")/../.."
arch=${1:-amd64}
jobs=${JOBS:-2}
build=${BUILD:-build-static-$arch}
# MinSizeRel: the size bound is the goal (issue 20: <= 8 MB); LTO is on
# for every optimized gcc build
common=(-DCMAKE_BUILD_TYPE=MinSizeRel -DTERN_PG=OFF -DSHOP_STATIC=ON -DTERN_BENCH=OFF)

case "$arch" in
  amd64)
    cmake -S . -B "$build" "${common[@]}" >/dev/null
    ;;
  arm64)
    # protoc-gen-tern-grpc runs on the host: a native tree builds it
    host=${HOST_BUILD:-build-static-amd64}
    cmake -S . -B "$host" "${common[@]}" >/dev/null
    cmake --build "$host" -j "$jobs" --target protoc-gen-tern-grpc >/dev/null
    cmake -S . -B "$build" "${common[@]}" -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake \
          -DTERN_GRPC_PLUGIN="$PWD/$host/cmd/protoc-gen-tern-grpc/protoc-gen-tern-grpc" >/dev/null
    ;;
  *) echo "build-static.sh: arch is amd64 or arm64, not '$arch'" >&2; exit 2 ;;
esac
# glibc warns that getaddrinfo and dlopen in a static program want its
# shared libraries at run time: not for what the shop does (numeric
# addresses, and names through /etc/hosts and DNS, resolve in the FROM
# scratch image: test.sh and compose.yaml use both; OpenSSL loads no
# engines), so those warnings are left out of the build's output
cmake --build "$build" -j "$jobs" --target shop 2>&1 |
  grep -v -e 'in statically linked applications requires' -e 'in function `' -e '^\[' >&2 || true
bin="$build/shop/shop"
[ -x "$bin" ] || { echo "build-static.sh: no $bin" >&2; exit 1; }
out=${2:-$build/shop-$arch}
cp "$bin" "$out"
echo "$out $(stat -c %s "$out")"
