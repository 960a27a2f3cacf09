#!/usr/bin/env bash
# make-base.sh - the image every shop image is built FROM, made here: no
# image registry is reachable, so debian:bookworm is debootstrap's minbase
# from the Debian mirror this machine's apt uses, imported into Docker.
#
#   shop/deploy/make-base.sh [TAG]      (default debian:bookworm)
#
# Cached: does nothing when the image exists (SHOP_BASE_REBUILD=1 makes it
# again).  Needs root (debootstrap) and debootstrap (scripts/deps.sh).
set -euo pipefail
tag=${1:-debian:bookworm}
suite=bookworm

if [ -z "${SHOP_BASE_REBUILD:-}" ] && docker image inspect "$tag" >/dev/null 2>&1; then
  echo "make-base: $tag exists"
  exit 0
fi

# The mirror apt already uses (deb822 or one-line sources), so the image
# sees the same package versions as the host.
mirror=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null |
           grep -v '^[[:space:]]*#' | grep -oE 'https?://[^ ]*/debian/?( |$)' | head -n1 | tr -d ' ' || true)
mirror=${mirror:-http://deb.debian.org/debian}
mirror=${mirror%/}

root=$(mktemp -d /tmp/shop-base.XXXXXX)
trap 'rm -rf "$root"' EXIT
echo "make-base: debootstrap $suite (minbase) from $mirror" >&2
debootstrap --variant=minbase --arch=amd64 "$suite" "$root" "$mirror" >/tmp/shop-base-debootstrap.log 2>&1 ||
  { tail -n 20 /tmp/shop-base-debootstrap.log >&2; exit 1; }

# The updates and security suites too, as on the host; no caches in the image.
cat >"$root/etc/apt/sources.list" <<SRC
deb $mirror $suite main
deb $mirror $suite-updates main
deb ${mirror%/debian}/debian-security $suite-security main
SRC
# apt in a container: no recommends, no docs, no package lists kept
cat >"$root/etc/apt/apt.conf.d/90shop" <<'APT'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
APT
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/tmp/*

tar -C "$root" --numeric-owner -c . |
  docker import --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
                --change 'CMD ["/bin/bash"]' - "$tag" >/dev/null
echo "make-base: $tag $(docker image inspect -f '{{.Size}}' "$tag") bytes"
