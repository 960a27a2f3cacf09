#!/usr/bin/env bash
# build-image.sh - the shop's image (shop/deploy/Dockerfile) with this
# machine's Docker engine.
#
#   shop/deploy/build-image.sh [amd64|arm64] [TAG]     (TAG: tern-shop:<arch>)
#
# Makes debian:bookworm first when missing (make-base.sh).  The build
# context is the files git knows (tracked, and new ones not ignored), so
# no build tree or .git goes to the engine; it is sent as a tar on stdin
# (the legacy builder: this engine has no BuildKit client here).
# Prints the tag and the image's size in bytes.  TARGET=build tags the build
# stage instead (its /build tree has shop/shop-pgcheck: test.sh takes it).
set -euo pipefail
cd "$(dirname "$0")/../.."
arch=${1:-amd64}
tag=${2:-tern-shop:$arch}
shop/deploy/make-base.sh >&2
log=${TMPDIR:-/tmp}/shop-image-$arch${TARGET:+-$TARGET}.log
# Only what the build reads, so that editing the deployment's own files
# (or the docs, benchmarks, fuzzers) does not rebuild the binary
git ls-files -z --cached --others --exclude-standard |
  while IFS= read -r -d '' f; do
    case "$f" in
      shop/deploy/Dockerfile|shop/deploy/build-static.sh|shop/deploy/static.cmake) ;;
      shop/deploy/libpq-static.sh|shop/deploy/pgcheck.c) ;;
      shop/deploy/*|docs/*|bench/*|fuzz/*|.ci/*) continue ;;
    esac
    [ -e "$f" ] && printf '%s\0' "$f"
  done |
  tar --null -T - -c |
  DOCKER_BUILDKIT=0 docker build -f shop/deploy/Dockerfile --build-arg ARCH="$arch" \
    --build-arg JOBS="${JOBS:-2}" ${TARGET:+--target "$TARGET"} -t "$tag" - >"$log" 2>&1 ||
  { tail -n 30 "$log" >&2; echo "build-image.sh: docker build failed (log: $log)" >&2; exit 1; }
# the engine labelled the cross-built image with its own architecture
[ "$arch" = amd64 ] || /usr/bin/python3 shop/deploy/image-arch.py "$tag" arm64 v8
echo "$tag $(docker image inspect -f '{{.Size}}' "$tag")"
