#!/bin/bash
# First start: the cluster (scram-sha-256 from anywhere on the container's
# network), the shop's role and database; then PostgreSQL in the foreground.
set -euo pipefail
user=${POSTGRES_USER:-shop} db=${POSTGRES_DB:-shop}
: "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD}"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  pw=$(mktemp); printf '%s\n' "$POSTGRES_PASSWORD" >"$pw"
  initdb -D "$PGDATA" -U postgres --auth-local=trust --auth-host=scram-sha-256 --pwfile="$pw" >/dev/null
  rm -f "$pw"
  echo "host all all 0.0.0.0/0 scram-sha-256" >>"$PGDATA/pg_hba.conf"
  pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
  psql -v ON_ERROR_STOP=1 -U postgres -q \
    -c "CREATE ROLE \"$user\" LOGIN PASSWORD '${POSTGRES_PASSWORD//\'/\'\'}'" \
    -c "CREATE DATABASE \"$db\" OWNER \"$user\""
  pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
fi
exec postgres -D "$PGDATA" -c listen_addresses='*'
