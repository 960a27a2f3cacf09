#!/usr/bin/env bash
# Install the Debian 12 packages tern needs to build, test and benchmark.
# Idempotent: installs only what is missing.  Needs root or sudo.
#   scripts/deps.sh          build + test
#   scripts/deps.sh bench    also the benchmark anchors (Go)
#   scripts/deps.sh cross    also the aarch64 cross toolchain and qemu-user
set -euo pipefail

pkgs=(build-essential cmake pkg-config clang libclang-rt-14-dev valgrind
      libjansson-dev libyaml-dev zlib1g-dev libssl-dev libnghttp2-dev openssl curl
      python3 python3-h2 python3-websockets nghttp2-client nghttp2-server sslscan prometheus doxygen
      libpq-dev postgresql libhiredis-dev redis-server libsqlite3-dev sqlite3
      protobuf-compiler libprotobuf-dev libprotoc-dev protobuf-c-compiler libprotobuf-c-dev
      protobuf-compiler-grpc grpc-proto python3-grpcio python3-protobuf python3-jwt
      nats-server libc-ares-dev dnsmasq-base etcd-server
      debootstrap docker-compose python3-jsonschema python3-yaml    # the shop's deployment (shop/deploy/)
      libgoogle-perftools-dev    # tern-gateway links its tcmalloc_minimal (cmd/tern-gateway/CMakeLists.txt)
      dpkg-dev bzip2 xz-utils)   # shop/deploy/libpq-static.sh: apt-get source postgresql-15, unpacked
for what in "$@"; do
  case "$what" in
    bench) pkgs+=(golang-go wrk nginx-light h2o libgrpc++-dev) ;;
    cross) pkgs+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user
                 libjansson-dev:arm64 libyaml-dev:arm64 zlib1g-dev:arm64
                 libssl-dev:arm64 libnghttp2-dev:arm64
                 libhiredis-dev:arm64 libsqlite3-dev:arm64
                 libprotobuf-c-dev:arm64 libc-ares-dev:arm64) ;;
    *) echo "deps.sh: unknown group '$what' (bench, cross)" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

# h2spec, the HTTP/2 conformance suite, from the Go module proxy (v2.6.0,
# which the HTTP/2 issue names, is not served there; v2.2.1 is)
install_h2spec() {
  command -v h2spec >/dev/null && return 0
  local go=/usr/local/go/bin/go
  [ -x "$go" ] || go=$(command -v go || true)
  [ -n "$go" ] || { echo "deps.sh: no Go, so no h2spec (its tests will be skipped)" >&2; return 0; }
  local dir; dir=$(mktemp -d)
  (cd "$dir" && GOBIN=/usr/local/bin GOFLAGS=-mod=mod \
     "$go" install github.com/summerwind/h2spec/cmd/h2spec@v2.2.1+incompatible) >&2 ||
    echo "deps.sh: h2spec failed to install" >&2
  rm -rf "$dir"
}

if [ ${#missing[@]} -eq 0 ]; then install_h2spec; exit 0; fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "deps.sh: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  sudo=sudo
fi
echo "deps.sh: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# arm64 libraries come from Debian's multiarch archive
if printf '%s\n' "${missing[@]}" | grep -q ':arm64$' &&
   ! dpkg --print-foreign-architectures | grep -qx arm64; then
  $sudo dpkg --add-architecture arm64
fi
$sudo apt-get update -qq || true
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
install_h2spec
