#!/usr/bin/env bash
# libpq-static.sh - a static libpq the static shop can link: built from
# Debian's own source package (postgresql-15) without the parts Debian's
# libpq.a drags in and ships no archive for (GSSAPI/Kerberos, LDAP), so a
# -static link needs nothing but OpenSSL and glibc.
#
#   shop/deploy/libpq-static.sh [amd64|arm64] [DIR]
#
# DIR (default build-libpq-<arch>; TERN_LIBPQ_STATIC_DIR overrides) gets
#   src/     the .dsc and tarballs, fetched with apt-get source from the
#            mirror this machine's apt uses (a private deb-src list: the host's
#            apt configuration is left alone)
#   build/   configure + make of src/port, src/common, src/interfaces/libpq
#            (removed with the unpacked tree once prefix/ is made)
#   prefix/  include/ (libpq-fe.h ...), lib/libpq.a, libpgcommon.a,
#            libpgport.a, lib/pkgconfig/libpq.pc
# and prints the prefix, which CMake takes as TERN_LIBPQ_STATIC_DIR.
# Cached: when prefix/ holds a build of the same version, arch and flags
# it does nothing.  JOBS (default 2) bounds make.  Needs dpkg-dev (in
# build-essential), perl, and libssl-dev for the arch.
set -euo pipefail
cd "$(dirname "$0")/../.."
arch=${1:-amd64}
dir=${2:-${TERN_LIBPQ_STATIC_DIR:-build-libpq-$arch}}
jobs=${JOBS:-2}
pkg=postgresql-15
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

# No readline/zlib/ICU (libpq uses none of them), no GSSAPI or LDAP (the
# reason Debian's libpq.a cannot be linked statically), no NLS (no
# message catalogs in a FROM scratch image).  OpenSSL: TLS to the server
# and SCRAM's primitives.  Sections per function: the static link keeps
# only the code the shop reaches.
conf=(--without-readline --without-zlib --without-icu --without-gssapi --without-ldap --without-pam
      --without-systemd --without-llvm --without-lz4 --without-zstd --disable-nls --with-openssl)
cflags="-Os -ffunction-sections -fdata-sections"
case "$arch" in
  amd64) host=(); cc=${CC:-gcc} ;;
  arm64) host=(--host=aarch64-linux-gnu); cc=aarch64-linux-gnu-gcc ;;
  *) echo "libpq-static.sh: arch is amd64 or arm64, not '$arch'" >&2; exit 2 ;;
esac

# ---- the source package ------------------------------------------------------------
# The mirror apt already uses (deb822 or one-line sources, as make-base.sh)
mirror=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null |
           grep -v '^[[:space:]]*#' | grep -oE 'https?://[^ ]*/debian/?( |$)' | head -n1 | tr -d ' ' || true)
mirror=${mirror:-http://deb.debian.org/debian}
mirror=${mirror%/}
apt=$dir/apt
aptopts=(-o Dir::Etc::SourceList="$apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
         -o Dir::State::Lists="$apt/lists" -o Dir::Cache="$apt/cache" -o Debug::NoLocking=1)
dsc=$(ls "$dir"/src/${pkg}_*.dsc 2>/dev/null | head -n1 || true)
if [ -z "$dsc" ]; then
  mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$dir/src"
  key=/usr/share/keyrings/debian-archive-keyring.gpg
  {
    echo "deb-src [signed-by=$key] $mirror bookworm main"
    echo "deb-src [signed-by=$key] $mirror bookworm-updates main"
    echo "deb-src [signed-by=$key] ${mirror%/debian}/debian-security bookworm-security main"
  } >"$apt/sources.list"
  apt-get "${aptopts[@]}" update -qq >&2
  # Newest first; a version the mirror lists but does not serve (a
  # security update missing from a snapshot mirror) falls back to the next
  versions=$(apt-cache "${aptopts[@]}" showsrc "$pkg" | sed -n 's/^Version: //p' | sort -rV | uniq)
  [ -n "$versions" ] || { echo "libpq-static.sh: $pkg not in the deb-src lists of $mirror" >&2; exit 1; }
  for v in $versions; do
    if (cd "$dir/src" && apt-get "${aptopts[@]}" source -qq --download-only "$pkg=$v" >/dev/null 2>&1); then
      break
    fi
    echo "libpq-static.sh: $pkg $v not served, trying an older version" >&2
    rm -f "$dir"/src/${pkg}_*
  done
  dsc=$(ls "$dir"/src/${pkg}_*.dsc 2>/dev/null | head -n1 || true)
  [ -n "$dsc" ] || { echo "libpq-static.sh: could not download $pkg's source" >&2; exit 1; }
fi
version=$(sed -n 's/^Version: //p' "$dsc")

stamp="$pkg $version $arch $cc ${conf[*]} $cflags"
prefix=$dir/prefix
if [ -f "$prefix/lib/libpq.a" ] && [ "$(cat "$prefix/.stamp" 2>/dev/null)" = "$stamp" ]; then
  echo "$prefix"
  exit 0
fi

# ---- build ---------------------------------------------------------------------------
# dpkg-source applies Debian's patches: the same libpq as Debian's libpq5.
# --no-check: the .dsc's own signature is its uploader's (no keyring for
# that here); apt-get source already checked every file's hash against the
# Sources index, signed by the archive key.
tree=$dir/src/$pkg-$version
rm -rf "$tree"
(cd "$dir/src" && dpkg-source --no-check -x "$(basename "$dsc")" "$tree" >/dev/null)
rm -rf "$dir/build" "$prefix"
mkdir -p "$dir/build"
log=$dir/build.log
echo "libpq-static.sh: $pkg $version for $arch (log: $log)" >&2
(
  cd "$dir/build"
  CC=$cc CFLAGS=$cflags "$tree/configure" --prefix="$prefix" "${host[@]}" "${conf[@]}"
  # only the static archives: no shared library, no server
  make -C src/port -j "$jobs" libpgport.a
  make -C src/common -j "$jobs" libpgcommon.a
  make -C src/interfaces/libpq -j "$jobs" all-static-lib libpq.pc
) >"$log" 2>&1 || { tail -n 30 "$log" >&2; echo "libpq-static.sh: build failed (log: $log)" >&2; exit 1; }

mkdir -p "$prefix/lib/pkgconfig" "$prefix/include"
cp "$dir/build/src/port/libpgport.a" "$dir/build/src/common/libpgcommon.a" \
   "$dir/build/src/interfaces/libpq/libpq.a" "$prefix/lib/"
cp "$dir/build/src/interfaces/libpq/libpq.pc" "$prefix/lib/pkgconfig/"
cp "$tree/src/interfaces/libpq/libpq-fe.h" "$tree/src/interfaces/libpq/libpq-events.h" \
   "$tree/src/include/postgres_ext.h" "$dir/build/src/include/pg_config_ext.h" "$prefix/include/"
echo "$stamp" >"$prefix/.stamp"
# the unpacked tree (190 MB) and the objects are not needed again: the
# tarballs stay, for a rebuild with other flags
rm -rf "$tree" "$dir/build"
echo "$prefix"
