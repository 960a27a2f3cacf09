#!/usr/bin/env bash
# build-static.sh - the shop as one static, stripped binary, for the
# FROM scratch image and for arm64 through the cross toolchain.
#
#   shop/deploy/build-static.sh [amd64|arm64] [OUT]
#
# Builds in build-static-<arch>/ (BUILD overrides) with SHOP_STATIC
# (shop/CMakeLists.txt, shop/deploy/static.cmake): every dependency from
# its Debian archive (.a), except libpq: Debian's libpq.a wants static
# Kerberos and LDAP, which Debian does not ship, so libpq-static.sh builds
# one from Debian's source package without them (cached in
# build-libpq-<arch>/; LIBPQ_DIR overrides; the tree also has
# shop/shop-pgcheck, pg-static-test.sh's probe).  Copies the binary to OUT (default
# build-static-<arch>/shop-<arch>) and prints its path and size.  JOBS
# (default 2) bounds the build.
set -euo pipefail
cd "$(dirname "$0")/../.."
arch=${1:-amd64}
jobs=${JOBS:-2}
build=${BUILD:-build-static-$arch}
# MinSizeRel: the size bound is the goal (issue 20: <= 8 MB); LTO is on
# for every optimized gcc build
common=(-DCMAKE_BUILD_TYPE=MinSizeRel -DSHOP_STATIC=ON -DTERN_BENCH=OFF)
case "$arch" in amd64|arm64) ;; *) echo "build-static.sh: arch is amd64 or arm64, not '$arch'" >&2; exit 2 ;; esac
# every role may use PostgreSQL: the shop needs libpq, a static one here
libpq=$(shop/deploy/libpq-static.sh "$arch" "${LIBPQ_DIR:-build-libpq-$arch}")
pg=(-DTERN_PG=ON -DTERN_LIBPQ_STATIC_DIR="$libpq")

case "$arch" in
  amd64)
    cmake -S . -B "$build" "${common[@]}" "${pg[@]}" >/dev/null
    ;;
  arm64)
    # protoc-gen-tern-grpc runs on the host: a native tree builds it (the
    # amd64 tree as it is configured, so as not to flip its PostgreSQL)
    host=${HOST_BUILD:-build-static-amd64}
    [ -f "$host/CMakeCache.txt" ] || cmake -S . -B "$host" "${common[@]}" -DTERN_PG=OFF >/dev/null
    cmake --build "$host" -j "$jobs" --target protoc-gen-tern-grpc >/dev/null
    cmake -S . -B "$build" "${common[@]}" "${pg[@]}" -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake \
          -DTERN_GRPC_PLUGIN="$PWD/$host/cmd/protoc-gen-tern-grpc/protoc-gen-tern-grpc" >/dev/null
    ;;
esac
# glibc warns that getaddrinfo and dlopen in a static program want its
# shared libraries at run time: not for what the shop does (numeric
# addresses, and names through /etc/hosts and DNS, resolve in the FROM
# scratch image: test.sh and compose.yaml use both; OpenSSL loads no
# engines; libpq asks getpwuid_r for the OS user only when the conninfo
# names no user, so SHOP_PG_URL names one), so those warnings are left out
# of the build's output
targets=(shop shop-pgcheck)
cmake --build "$build" -j "$jobs" --target "${targets[@]}" 2>&1 |
  grep -v -e 'in statically linked applications requires' -e 'in function `' -e '^\[' >&2 || true
bin="$build/shop/shop"
[ -x "$bin" ] || { echo "build-static.sh: no $bin" >&2; exit 1; }
out=${2:-$build/shop-$arch}
cp "$bin" "$out"
echo "$out $(stat -c %s "$out")"
