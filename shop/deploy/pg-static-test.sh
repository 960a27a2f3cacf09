#!/usr/bin/env bash
# pg-static-test.sh - the static libpq (libpq-static.sh) against a real
# PostgreSQL that accepts only TLS and SCRAM-SHA-256: the
# static `shop-pgcheck` (pgcheck.c, linked as `shop` is) connects, by IP
# and by host name, on the host and - when the shop's image exists - in a
# FROM scratch container (the image's root, read-only, non-root, no
# capabilities), where there is no shared library and no NSS module.  An
# arm64 SHOP_PGCHECK runs under qemu-aarch64 on the host.
#
#   shop/deploy/pg-static-test.sh [SHOP_PGCHECK]
#
# Without SHOP_PGCHECK it builds one (build-static.sh amd64).  The server is
# Debian's postgresql-15 (scripts/deps.sh), run as nobody when we are root
# (PostgreSQL refuses root), in a temporary directory, stopped at exit.
# Exit 77 (skipped) without PostgreSQL's programs.
set -euo pipefail
cd "$(dirname "$0")/../.."
bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)
[ -x "$bindir/initdb" ] || { echo "pg-static-test.sh: skipped: no PostgreSQL server (scripts/deps.sh)"; exit 77; }
check=${1:-}
if [ -z "$check" ]; then
  read -r _ _ < <(shop/deploy/build-static.sh amd64)
  check=build-static-amd64/shop/shop-pgcheck
fi
[ -x "$check" ] || { echo "pg-static-test.sh: no $check" >&2; exit 1; }
file -L "$check" | grep -q 'statically linked' || { echo "FAIL $check is not static: $(file -L "$check")" >&2; exit 1; }
# an arm64 probe (build-static.sh arm64) runs under qemu-user, on the host only
run=("$check")
if file -L "$check" | grep -q 'ARM aarch64'; then
  command -v qemu-aarch64 >/dev/null || { echo "pg-static-test.sh: skipped: no qemu-aarch64"; exit 77; }
  run=(qemu-aarch64 "$check")
fi

fail() { echo "FAIL $*" >&2; [ -f "${log:-}" ] && tail -n 20 "$log" >&2; exit 1; }
ok() { echo "ok   $*"; }
tmp=$(mktemp -d /tmp/pg-static.XXXXXX)
as=()
if [ "$(id -u)" = 0 ]; then
  as=(setpriv --reuid=nobody --regid=nogroup --clear-groups)
  chown nobody:nogroup "$tmp"
fi
data=$tmp/data
log=$tmp/pg.log
container=tern-pgcheck-$$
cleanup() {
  docker rm -f "$container" >/dev/null 2>&1 || true
  "${as[@]}" "$bindir/pg_ctl" -D "$data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT

# ---- a server that demands TLS and SCRAM ---------------------------------------------
password=pgcheck-$$-$RANDOM
printf '%s\n' "$password" >"$tmp/pw"
[ "$(id -u)" = 0 ] && chown nobody:nogroup "$tmp/pw"
"${as[@]}" "$bindir/initdb" -D "$data" -U shop --pwfile="$tmp/pw" --auth-local=trust \
  --auth-host=scram-sha-256 >/dev/null || fail "initdb"
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost \
  -keyout "$data/server.key" -out "$data/server.crt" >/dev/null 2>&1 || fail "openssl req"
chmod 600 "$data/server.key"
[ "$(id -u)" = 0 ] && chown nobody:nogroup "$data/server.key" "$data/server.crt"
# only hostssl: a client without TLS is refused, not let in
cat >"$data/pg_hba.conf" <<'HBA'
local    all all                 trust
hostssl  all all 127.0.0.1/32    scram-sha-256
HBA
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"${as[@]}" "$bindir/pg_ctl" -D "$data" -l "$log" -w -t 30 \
  -o "-p $port -k $tmp -c listen_addresses=127.0.0.1 -c ssl=on -c password_encryption=scram-sha-256" start >/dev/null ||
  fail "pg_ctl start"
ok "PostgreSQL $("$bindir/postgres" -V | awk '{print $3}') on port $port: TLS and SCRAM-SHA-256 only"

# ---- on the host ---------------------------------------------------------------------
conn="host=127.0.0.1 port=$port user=shop password=$password dbname=postgres sslmode=require"
out=$("${run[@]}" "$conn") || fail "shop-pgcheck over TLS + SCRAM: $out"
echo "$out" | grep -q '^server 15.* ssl true TLSv1.[23] user shop$' || fail "unexpected: $out"
ok "static shop-pgcheck on the host: $out"
out=$("${run[@]}" "postgresql://shop:$password@localhost:$port/postgres?sslmode=require") ||
  fail "shop-pgcheck by host name (localhost): $out"
ok "by host name, a postgresql:// URL: $out"
if out=$("${run[@]}" "host=127.0.0.1 port=$port user=shop password=$password dbname=postgres sslmode=disable" 2>&1); then
  fail "a connection without TLS was let in: $out"
fi
echo "$out" | grep -q 'no pg_hba.conf entry' || fail "without TLS: unexpected error: $out"
ok "without TLS: refused by the server (the client reports it: $(echo "$out" | head -c 80)...)"
if out=$("${run[@]}" "host=127.0.0.1 port=$port user=shop password=wrong dbname=postgres sslmode=require" 2>&1); then
  fail "a wrong password was let in"
fi
echo "$out" | grep -q 'password authentication failed' || fail "wrong password: unexpected error: $out"
ok "a wrong password: refused (SCRAM)"

# ---- in the FROM scratch image ----------------------------------------------------------
image=${SHOP_IMAGE:-tern-shop:amd64}
if [ "${run[0]}" != "$check" ]; then
  echo "skip container: an arm64 probe (this engine runs amd64 containers only)"
  exit 0
fi
if ! docker image inspect "$image" >/dev/null 2>&1; then
  echo "skip container: no image $image (build-image.sh amd64)"
  exit 0
fi
# the host's network (the server listens on it), the server by a name
# that only the container's /etc/hosts knows
out=$(docker run --rm --name "$container" --read-only --user 65532:65532 --cap-drop ALL \
        --security-opt no-new-privileges --network host --add-host "pg.test:127.0.0.1" \
        -v "$(cd "$(dirname "$check")" && pwd)/$(basename "$check"):/shop-pgcheck:ro" --entrypoint /shop-pgcheck \
        "$image" "postgresql://shop:$password@pg.test:$port/postgres?sslmode=require" 2>&1) ||
  fail "shop-pgcheck in $image: $out"
echo "$out" | grep -q '^server 15.* ssl true' || fail "in the container: unexpected: $out"
ok "in $image (FROM scratch, read-only, uid 65532), by host name: $out"
