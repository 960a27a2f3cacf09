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
# Prints the tag and the image's size in bytes.
set -euo pipefail
cd "$(dirname "$0")/../.."
arch=${1:-amd64}
tag=${2:-tern-shop:$arch}
shop/deploy/make-base.sh >&2
log=${TMPDIR:-/tmp}/shop-image-$arch.log
git ls-files -z --cached --others --exclude-standard |
  while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
  tar --null -T - -c |
  DOCKER_BUILDKIT=0 docker build -f shop/deploy/Dockerfile --build-arg ARCH="$arch" \
    --build-arg JOBS="${JOBS:-2}" -t "$tag" - >"$log" 2>&1 ||
  { tail -n 30 "$log" >&2; echo "build-image.sh: docker build failed (log: $log)" >&2; exit 1; }
echo "$tag $(docker image inspect -f '{{.Size}}' "$tag")"
